"""The REST API: the keys a team's scripts and apps sign in with, each key's request counter per minute,
and the answers kept for retries with the same Idempotency-Key."""
from peewee import BigIntegerField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

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


class ApiRateWindow(BaseModel):
    """How many requests a key made in one minute (`window`: minutes since the epoch). One counter per key and
    minute in the database, so the limit holds across every web process; old minutes are pruned as new ones start."""
    api_key = ForeignKeyField(ApiKey, on_delete="CASCADE", index=False)
    window = BigIntegerField()
    hits = IntegerField(default=0)

    class Meta:
        indexes = ((("api_key", "window"), True),)


class IdempotencyRecord(BaseModel):
    """A POST made with an Idempotency-Key: what was asked (`fingerprint`, SHA-256 of method, path and body)
    and, once answered, the answer (`status` None while the first request is still running), so a retry
    gets the same answer instead of doing the work twice."""
    api_key = ForeignKeyField(ApiKey, on_delete="CASCADE", index=False)
    key = CharField(max_length=255)
    fingerprint = CharField(max_length=64)
    status = IntegerField(null=True)
    body = TextField(default="")
    location = CharField(default="")
    created_at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("api_key", "key"), True),)
