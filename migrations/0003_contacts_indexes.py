"""Indexes the contact pages need beyond those of 0002.

subscription(list_id, contact_id): the contact list filtered by a list walks
the list's subscriptions in contact-id order (the keyset), so "newest 50
contacts of this list" is an index range scan instead of a sort of every
subscriber. 0002 has (contact_id, list_id) and (list_id, status, contact_id),
which serve a single subscription status but not "any status" in id order.
"""


def up(migrator, db):
    migrator.migrate(migrator.add_index("subscription", ("list_id", "contact_id"), False))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("subscription", "subscription_list_id_contact_id"))
