"""DMARC aggregate reports (app/deliverability/dmarc/store.py).

dmarc_report   one report per (team, org_name, report_id): policy domain, reporter, date range, the
               published policy (JSON), its record and message counts, where it came from
dmarc_record   its rows: source IP, message count, disposition, aligned DKIM / SPF, identifiers and the raw
               auth results, with team, domain and day copied for the digest's (team, domain, day) reads
"""
import datetime

from peewee import BooleanField
from peewee import CharField
from peewee import DateField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class DmarcReport(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        domain = CharField()
        org_name = CharField(default="")
        report_id = CharField()
        email = CharField(default="")
        begin = DateTimeField()
        end = DateTimeField()
        policy = JSONField(empty=dict)
        errors = JSONField(empty=list)
        records = IntegerField(default=0)
        total_messages = IntegerField(default=0)
        origin = CharField(default="upload")
        received_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = ((("team", "org_name", "report_id"), True), (("team", "domain", "begin"), False))

    class DmarcRecord(Base):
        id = IdField()
        report = ForeignKeyField(DmarcReport, on_delete="CASCADE")
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        domain = CharField()
        day = DateField()
        source_ip = CharField()
        count = IntegerField()
        disposition = CharField(default="")
        dkim_aligned = BooleanField(default=False)
        spf_aligned = BooleanField(default=False)
        header_from = CharField(default="")
        envelope_from = CharField(default="")
        dkim_results = TextField(default="")
        spf_results = TextField(default="")
        reasons = TextField(default="")

        class Meta:
            indexes = ((("team", "domain", "day"), False),)

    db.create_tables([DmarcReport, DmarcRecord])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "dmarc_record"')
    db.execute_sql('DROP TABLE IF EXISTS "dmarc_report"')
