"""JSON document columns become JSONB on PostgreSQL; nothing changes on SQLite.

The earlier migrations created every JSON column as TEXT (on SQLite JSON is TEXT anyway, and the app's
JSONField reads and writes the same bytes). On PostgreSQL a TEXT column would refuse the `->` / `#>>`
operators the app's JSON queries compile to, so each one is converted in place: "" (how an empty
document was once stored) becomes JSON null, which JSONField reads back as its empty value. Columns
added by later migrations are JSONFields in their frozen models, JSONB from the start.
"""
from peewee import SqliteDatabase

JSON_COLUMNS = (
    ("ai_generation", "inputs"), ("ai_generation", "output"),
    ("ai_job", "context"), ("ai_job", "inputs"), ("ai_job", "previous"), ("ai_job", "result"),
    ("audit_log", "data"),
    ("block_revision", "document"),
    ("bounce_mailbox", "last_summary"),
    ("campaign", "ab_test"), ("campaign", "audience"), ("campaign", "blocks"), ("campaign", "utm"),
    ("caught_message", "recipients"),
    ("contact", "attributes"),
    ("event", "data"),
    ("import_job", "list_ids"), ("import_job", "mapping"),
    ("instance_setting", "value"),
    ("notice", "data"),
    ("segment", "rules"),
    ("sender_domain", "dns_status"),
    ("signup_form", "colors"), ("signup_form", "fields"), ("signup_form", "list_ids"),
    ("smtp_account", "last_test_result"),
    ("template", "blocks"),
    ("template_draft", "blocks"),
    ("webhook_endpoint", "event_types"),
)


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    for table, column in JSON_COLUMNS:
        db.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE jsonb '
                       f'USING (CASE WHEN "{column}" = \'\' THEN \'null\' ELSE "{column}" END)::jsonb')


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    for table, column in JSON_COLUMNS:
        db.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE text USING "{column}"::text')
