"""Index for the per-account sending limits of SMTP accounts.

send(smtp_account_id, sent_at): app.senders.accounts.sent_counts() counts the
messages each account sent in the last hour and 24 hours, for its per-hour and
per-day caps and the accounts page. Without it that count scans the whole
ledger, which grows by every recipient of every campaign.
"""


def up(migrator, db):
    migrator.migrate(migrator.add_index("send", ("smtp_account_id", "sent_at"), False))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("send", "send_smtp_account_id_sent_at"))
