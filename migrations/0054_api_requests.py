"""The API's per-key request bookkeeping.

api_rate_window     requests of one key in one minute (window = minutes since the epoch), unique per key and
                    minute: the fixed-window counter behind LOFT_API_RATE_PER_MINUTE, shared by every web process.
idempotency_record  a POST sent with an Idempotency-Key, unique per key and Idempotency-Key: the fingerprint of
                    what was asked and, once answered (status not NULL), the answer a retry gets back.
Both go with their API key.
"""
import datetime

from peewee import BigIntegerField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class ApiKey(Base):
        class Meta:
            table_name = "api_key"

    class ApiRateWindow(Base):
        id = IdField()
        api_key = ForeignKeyField(ApiKey, on_delete="CASCADE", index=False)
        window = BigIntegerField()
        hits = IntegerField(default=0)

        class Meta:
            indexes = ((("api_key", "window"), True),)

    class IdempotencyRecord(Base):
        id = IdField()
        api_key = ForeignKeyField(ApiKey, on_delete="CASCADE", index=False)
        key = CharField(max_length=255)
        fingerprint = CharField(max_length=64)
        status = IntegerField(null=True)
        body = TextField(default="")
        location = CharField(default="")
        created_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

        class Meta:
            indexes = ((("api_key", "key"), True),)

    db.create_tables([ApiRateWindow, IdempotencyRecord])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "idempotency_record"')
    db.execute_sql('DROP TABLE IF EXISTS "api_rate_window"')
