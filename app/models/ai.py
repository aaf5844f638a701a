"""AI: generations, their cost, and the builder's jobs."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.campaigns import Campaign
from app.models.common import utcnow
from app.models.teams import Team
from app.models.teams import User


class AiGeneration(BaseModel):
    """One answer an AI provider gave (app.ai.generate): what was asked, what came back and what it
    cost. The cache key is (team, prompt, version, model, input_hash); a cache hit adds to cache_hits
    instead of writing a row. `inputs` holds only what the writer typed, never a contact's data."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    prompt = CharField()
    version = CharField()
    model = CharField()
    input_hash = CharField()  # sha256 hex of the canonical JSON of inputs + prompt@version + model
    inputs = JSONField()
    output = JSONField()  # {"text": ..., "data": ...}
    input_tokens = IntegerField(default=0)
    output_tokens = IntegerField(default=0)
    cost_micros = IntegerField(default=0)  # millionths of a US dollar
    latency_ms = IntegerField(default=0)
    finish_reason = CharField(default="stop")
    cache_hits = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("team", "prompt", "version", "model", "input_hash"), False),
            (("team", "created_at"), False),
        )


# --- AI: builder jobs (app/ai/jobs.py, migration 0048) ---


class AiJob(BaseModel):
    """One piece of AI help the campaign builder asked for (app.ai.jobs), run by a background task the
    page polls: queued -> running -> done | failed | cancelled. `inputs` are the prompt's inputs (what the
    writer typed, or the campaign's own text); `context` is what the kind needs besides them (a selection's
    place, for example), never sent. `previous` holds what accepting the result replaced, for undo."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    campaign = ForeignKeyField(Campaign, null=True, on_delete="CASCADE", index=False)
    kind = CharField()  # "subject_lines", "draft" or "rewrite": app.ai.jobs.PROMPTS
    state = CharField(default="queued")
    inputs = JSONField()
    context = JSONField()
    regenerate = BooleanField(default=False)  # bypass the cache
    result = JSONField()  # the Generation's fields, and what the kind adds (subject lines: "items")
    error = TextField(default="")  # why it failed, in words
    generation = ForeignKeyField(AiGeneration, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    accepted_at = DateTimeField(null=True)
    previous = JSONField(empty=None, null=True)

    class Meta:
        indexes = (
            (("team", "id"), False),
            (("campaign", "id"), False),
        )
