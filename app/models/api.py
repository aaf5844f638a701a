"""The REST API: the keys a team's scripts and apps sign in with."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField

from app.db import BaseModel
from app.models.common import utcnow
from app.models.teams import ROLE_LABELS
from app.models.teams import Team
from app.models.teams import User


class ApiKey(BaseModel):
    """A secret that acts for a team with one of its roles. Only the SHA-256 of the key is kept (key_hash);
    `prefix`, its first characters, tells keys apart in a list without revealing them."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    role = CharField()  # one of ROLES
    prefix = CharField()
    key_hash = CharField(unique=True)
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("team", "id"), False),)

    @property
    def role_label(self):
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def revoked(self):
        return self.revoked_at is not None
