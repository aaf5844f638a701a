"""Rate limiting for the public pages of the consent area (sign-up forms).

One row per counted request: (bucket, key, at). Counting rows in the
database, not in process memory, keeps the limit honest across gunicorn
workers and restarts. Keys are keyed hashes (an IP address is personal data),
and rows older than a day are pruned as new ones arrive.
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
from peewee import Model


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    def utcnow():
        return datetime.datetime.utcnow()

    class RateLimitHit(Base):
        bucket = CharField()  # what is limited, e.g. "signup" or "confirm-mail"
        key = CharField()  # HMAC of who or what is limited (an IP address, an email address)
        at = DateTimeField(default=utcnow, index=True)

        class Meta:
            indexes = ((("bucket", "key", "at"), False),)

    db.create_tables([RateLimitHit])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "rate_limit_hit"')
