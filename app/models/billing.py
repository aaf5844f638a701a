"""Billing: messages sent per team, month (in the team's time zone), stream and sender domain, and the
cap alerts sent (migration 0065). Written only by app/usage.py and app/billing/."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField

from app.db import BaseModel
from app.models.common import utcnow
from app.models.teams import Team

STREAMS = ("marketing", "transactional")


class UsageCount(BaseModel):
    """Messages sent: one row per (team, month "YYYY-MM" in the team's time zone, stream, sender domain)."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    month = CharField()
    stream = CharField()  # one of STREAMS
    domain = CharField(default="")  # the From domain, lower-case; "" when not known (rows from before 0065)
    messages = IntegerField(default=0)

    class Meta:
        indexes = ((("team", "month", "stream", "domain"), True),)


class UsageAlert(BaseModel):
    """A cap alert sent (level 80 or 100): at most one per team, month and level."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    month = CharField()
    level = IntegerField()
    sent_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "month", "level"), True),)
