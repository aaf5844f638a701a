"""Deliverability: the stored DNS health of each sender domain, and the campaigns it paused."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.campaigns import Campaign
from app.models.campaigns import SenderDomain
from app.models.common import utcnow
from app.models.teams import Team


class DomainHealth(BaseModel):
    """The last DNS health check of one sender domain (app/deliverability/gate.py writes it).

    status is the worst check (pass / warn / fail / unknown); gate_reason, when not empty, is why mail
    from the domain would be rejected, in words with the records to publish; failing_since starts a
    failure episode and alerted_at says its one alert went out (both cleared when it passes again)."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    sender_domain = ForeignKeyField(SenderDomain, on_delete="CASCADE", unique=True)
    checked_at = DateTimeField(null=True)
    status = CharField(default="unknown")
    results = JSONField(empty=list)  # [Check.as_dict(), ...]
    gate_reason = TextField(default="")
    gate_reasons = JSONField(empty=dict)  # From domain ("" the domain itself) -> its reason, when it has one
    failing_since = DateTimeField(null=True)
    alerted_at = DateTimeField(null=True)


class DomainPause(BaseModel):
    """A campaign the domain gate paused: only these are resumed by it, and only while the campaign is
    still paused with the gate's own reason (a person's pause or resume since wins)."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE", unique=True)
    sender_domain = ForeignKeyField(SenderDomain, on_delete="CASCADE")
    reason = TextField(default="")
    paused_at = DateTimeField(default=utcnow)
