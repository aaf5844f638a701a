"""DMARC aggregate reports a team received (app/deliverability/dmarc/store.py writes them).

DmarcReport is one report as a receiver sent it, stored once per (team, org_name, report_id): the
same report mailed twice, or uploaded after the mailbox read it, is not counted again. DmarcRecord
is one of its rows, with the team, the policy domain and the report's first day copied onto it so
the digest reads one table by (team, domain, day)."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import utcnow
from app.models.teams import Team


class DmarcReport(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    domain = CharField()  # policy_published/domain
    org_name = CharField(default="")
    report_id = CharField()
    email = CharField(default="")
    begin = DateTimeField()  # UTC
    end = DateTimeField()
    policy = JSONField(empty=dict)  # policy_published as sent: p, sp, adkim, aspf, pct, fo, np ...
    errors = JSONField(empty=list)  # report_metadata/error
    records = IntegerField(default=0)
    total_messages = IntegerField(default=0)
    origin = CharField(default="upload")  # upload | mailbox | cli
    received_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "org_name", "report_id"), True), (("team", "domain", "begin"), False))


class DmarcRecord(BaseModel):
    report = ForeignKeyField(DmarcReport, on_delete="CASCADE")
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    domain = CharField()
    day = DateField()  # the report's first day (UTC)
    source_ip = CharField()
    count = IntegerField()
    disposition = CharField(default="")  # none | quarantine | reject
    dkim_aligned = BooleanField(default=False)  # policy_evaluated dkim = pass
    spf_aligned = BooleanField(default=False)  # policy_evaluated spf = pass
    header_from = CharField(default="")
    envelope_from = CharField(default="")
    dkim_results = TextField(default="")  # "domain:selector:result" joined by spaces, as auth_results had them
    spf_results = TextField(default="")  # "domain:scope:result" ...
    reasons = TextField(default="")  # policy override reasons (forwarded, mailing_list, ...)

    class Meta:
        indexes = ((("team", "domain", "day"), False),)
