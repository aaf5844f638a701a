"""Notification preferences: what a person wants to hear of a team, by email and in the app (migration 0066).
Only choices that differ from their role's defaults (app/notices/preferences.py) are stored."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField

from app.db import BaseModel
from app.models.common import utcnow
from app.models.teams import Team
from app.models.teams import User


class NotificationPreference(BaseModel):
    """One person's choice for one event of one team: both channels, stored whole."""
    user = ForeignKeyField(User, on_delete="CASCADE", index=False)
    team = ForeignKeyField(Team, on_delete="CASCADE")
    event = CharField()  # a key of app.notices.preferences.EVENTS
    by_email = BooleanField()
    in_app = BooleanField()
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "team", "event"), True),)
