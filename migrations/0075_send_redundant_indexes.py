"""send loses two indexes that others already cover: send_campaign_id (every lookup by campaign is served by the
unique (campaign_id, contact_id) index, or by (campaign_id, status, id)) and send_smtp_account_id (served by
(smtp_account_id, sent_at)), the same leading column each time. send is the biggest table, and every Send row
written (a campaign's freeze, an automation's email) and every result recorded (the account and the sent time)
updated them too: inserting Sends costs about 15 % less without them (docs/benchmarks.md), and the disk holds two
indexes fewer of the table with the most rows."""


def up(migrator, db):
    migrator.migrate(migrator.drop_index("send", "send_campaign_id"),
                     migrator.drop_index("send", "send_smtp_account_id"))


def down(migrator, db):
    migrator.migrate(migrator.add_index("send", ("campaign_id",), False),
                     migrator.add_index("send", ("smtp_account_id",), False))
