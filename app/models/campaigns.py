"""Campaigns and sending: sender domains, SMTP accounts, templates, campaigns and their
variants and links, the Send ledger, sending runs and permits, usage, drafts and media."""
import enum
import secrets

from peewee import BooleanField
from peewee import CharField
from peewee import DateField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import new_token
from app.models.common import utcnow
from app.models.contacts import Contact
from app.models.teams import Team
from app.models.teams import User


class CampaignState(enum.StrEnum):
    """Campaign.state; the values are the stored strings. Changed only by app.campaigns.states,
    which holds the legal moves."""
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"  # a run sends it (or will, as soon as a worker is free)
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SendStatus(enum.StrEnum):
    """Send.status; the values are the stored strings. Written only by app.sending.ledger, whose
    docstring draws the moves between them."""
    QUEUED = "queued"  # waiting for a run
    CLAIMED = "sending"  # taken by a run, attempts already counted; stored as "sending"
    DEFERRED = "deferred"  # a temporary failure; tried again at next_attempt_at
    HELD = "held"  # the rest of an A/B test's audience, waiting for the winner
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    SKIPPED = "skipped"  # never sent: the contact left, was erased or suppressed after publishing


TLS_MODES = ("tls", "starttls", "none")


class SenderDomain(BaseModel):
    """A domain a team sends from; campaigns may only use verified ones."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    domain = CharField()
    verified_at = DateTimeField(null=True)
    verification_token = CharField(default=new_token)
    dkim_selector = CharField(default="loft")
    dkim_private_key = TextField(default="")  # encrypted PEM
    dns_status = JSONField()  # last SPF/DKIM/DMARC check
    # A warm-up plan for everything sent From the domain (app/senders/warmup.py, migration 0062); NULL = none.
    warmup_started_on = DateField(null=True)
    warmup_preset = CharField(default="double")  # double, fixed, custom
    warmup_first_day = IntegerField(default=50)
    warmup_growth_percent = IntegerField(default=100)
    warmup_target = IntegerField(default=0)  # where the ramp ends; 0 = FULL_VOLUME
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "domain"), True),)


class SmtpAccount(BaseModel):
    """An outbound SMTP server and login a team sends through, with its limits."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    preset = CharField(default="generic")  # icloud, generic
    host = CharField()
    port = IntegerField(default=587)
    tls_mode = CharField(default="starttls")  # one of TLS_MODES; "none" only for loopback hosts
    username = CharField(default="")
    password = TextField(default="")  # encrypted with app.security.encrypt
    per_second = IntegerField(default=0)  # 0 = no limit
    per_hour = IntegerField(default=0)
    per_day = IntegerField(default=0)
    max_connections = IntegerField(default=4)
    weight = IntegerField(default=1)  # share of traffic when rotating across accounts
    # Warm-up (app/senders/warmup.py): from this UTC day on, a daily cap that starts at warmup_first_day
    # and grows by warmup_growth_percent a day until it reaches per_day; NULL = no warm-up.
    warmup_started_on = DateField(null=True)
    warmup_first_day = IntegerField(default=50)
    warmup_growth_percent = IntegerField(default=50)
    warmup_preset = CharField(default="custom")  # migration 0062: double, fixed, custom
    warmup_target = IntegerField(default=0)  # where the ramp ends; 0 = per_day (or FULL_VOLUME)
    transactional = BooleanField(default=False)  # "Use for transactional mail" (app/transactional/)
    status = CharField(default="active")  # active, paused
    paused_reason = TextField(default="")
    paused_until = DateTimeField(null=True)
    last_test_at = DateTimeField(null=True)
    last_test_result = JSONField()  # {"ok", "summary"} of the last test; {} before one
    # Reachability as the sending engine last found it (app/senders/health.py): "", "ok", "failing".
    connection_state = CharField(default="")
    last_error = TextField(default="")
    failing_since = DateTimeField(null=True)
    connected_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)


class Template(BaseModel):
    """A reusable layout/content starting point; built-in ones have team NULL."""
    team = ForeignKeyField(Team, null=True, on_delete="CASCADE")
    name = CharField()
    kind = CharField(default="html")  # the body's format, "html", "markdown" or "blocks", as Campaign.kind
    body = TextField(default="")
    blocks = JSONField(empty=None, null=True)  # the block document of a "blocks" body (app/content/blocks)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class Campaign(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    state = CharField(default=CampaignState.DRAFT)  # a CampaignState; changed only by app.campaigns.states
    from_name = CharField(default="")
    from_email = CharField(default="")
    reply_to = CharField(default="")
    subject = TextField(default="")
    preheader = TextField(default="")
    kind = CharField(default="html")  # the body's format, "html", "markdown" or "blocks", as Template.kind
    body = TextField(default="")
    blocks = JSONField(empty=None, null=True)  # the block document of a "blocks" body; body is its rendering
    template = ForeignKeyField(Template, null=True, on_delete="SET NULL")
    audience = JSONField(default=lambda: {"lists": [], "segments": [], "exclude_lists": [], "exclude_segments": []})
    track_opens = BooleanField(default=True)
    track_clicks = BooleanField(default=True)
    # {"sample_percent", "metric": "clicks"|"opens", "wait_minutes", "tests": a key of campaigns.ab_testing.AB_TESTS}
    ab_test = JSONField()
    # migration 0045: {"enabled", "source", "medium", "campaign", "content"} added to every web link (app/content/utm.py)
    utm = JSONField()
    ab_decided_at = DateTimeField(null=True)
    scheduled_at = DateTimeField(null=True)  # UTC
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    state_reason = TextField(default="")  # why it paused or failed, in words
    # Migration 0062: a warm-up plan used up today's allowance; the engine's scheduled run continues then (UTC).
    waiting_until = DateTimeField(null=True)
    frozen_at = DateTimeField(null=True)  # audience and content frozen at publish
    total = IntegerField(default=0)  # recipients in the frozen audience
    sent = IntegerField(default=0)
    failed = IntegerField(default=0)
    cursor = IntegerField(default=0)  # highest Send id handed to a batch
    parent = ForeignKeyField("self", null=True, on_delete="SET NULL")  # resend to non-openers / newcomers
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "state"), False), (("state", "scheduled_at"), False))


class Variant(BaseModel):
    """One arm of an A/B test: what it changes of the campaign (empty = the campaign's own)."""
    campaign = ForeignKeyField(Campaign, backref="variants", on_delete="CASCADE")
    label = CharField()  # "A" to "D"
    subject = TextField(default="")
    body = TextField(default="")
    is_winner = BooleanField(default=False)
    from_name = CharField(default="")  # migration 0045
    send_at = DateTimeField(null=True)  # UTC; a send-time test sends this variant's share then (migration 0045)
    preheader = TextField(default="")  # a subject test's preheader for this variant ("" = the campaign's; 0048)


class Link(BaseModel):
    """A tracked link of a frozen campaign: clicks redirect to url, looked up server-side."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    url = TextField()

    class Meta:
        indexes = ((("campaign", "url"), False),)


class Send(BaseModel):
    """The per-recipient ledger: one row per campaign and contact, written before
    the SMTP call, so a restart never mails anyone twice or skips anyone."""
    # No index of its own: (campaign, contact) and (campaign, status, id) begin with it (migration 0075).
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    variant = ForeignKeyField(Variant, null=True, on_delete="SET NULL")
    email = CharField()  # frozen at publish
    status = CharField(default=SendStatus.QUEUED)  # a SendStatus; written only by app.sending.ledger
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL", index=False)  # see (account, sent_at)
    message_id = CharField(default="")
    error = TextField(default="")
    sent_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("campaign", "contact"), True),
            (("campaign", "status", "id"), False),
            (("message_id",), False),
            (("smtp_account", "sent_at"), False),  # migration 0011_sending: per-account hourly/daily counts
        )


class SendRun(BaseModel):
    """One live engine run of a campaign (migration 0049): several may send one campaign at once.
    A heartbeat older than the lease means the run died; app/sending/lease.py removes such rows."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
    token = CharField(unique=True)
    heartbeat_at = DateTimeField()

    class Meta:
        indexes = ((("campaign", "id"), False), (("team", "heartbeat_at"), False))


class SendPermit(BaseModel):
    """Messages a live run may still send through an SMTP account with an hourly or daily cap
    (migration 0051). app/sending/shares.py grants them in small blocks, counting the ledger and every
    live run's permits; a run uses one per message recorded as sent. A dead run's permits stop
    counting once its heartbeat is older than the lease, and go with its SendRun row."""
    run = ForeignKeyField(SendRun, on_delete="CASCADE", index=False)
    account = ForeignKeyField(SmtpAccount, on_delete="CASCADE")
    held = IntegerField(default=0)

    class Meta:
        indexes = ((("run", "account"), True),)


class Usage(BaseModel):
    """Messages sent per team and month (YYYY-MM), for billing and dashboards."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    month = CharField()
    messages_sent = IntegerField(default=0)

    class Meta:
        indexes = ((("team", "month"), True),)


class TemplateDraft(BaseModel):
    """Unsaved editor text shown by the template editor's live preview (migration 0012).

    One row per person, team and template ("new" for one not saved yet),
    replaced at every pause in typing; the preview URL carries the random token.
    """
    team = ForeignKeyField(Team, on_delete="CASCADE")
    user = ForeignKeyField(User, on_delete="CASCADE")
    slot = CharField()  # the template id being edited, or "new"
    name = CharField(default="")
    kind = CharField(default="html")
    body = TextField(default="")
    blocks = JSONField(empty=None, null=True)  # migration 0041_blocks
    token = CharField(unique=True, default=lambda: secrets.token_urlsafe(24))
    updated_at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("user", "team", "slot"), True),)


class BlockRevision(BaseModel):
    """A block document as it was before a change, for undo (migration 0041_blocks): the last 30 per owner.

    owner_type names the owner's table ("campaign", "template", "template_draft"); no foreign key, as
    one column points at three tables (app/content/blocks/store.py deletes them with their owner)."""
    owner_type = CharField()
    owner_id = IntegerField()
    document = JSONField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("owner_type", "owner_id", "id"), False),)


class MediaItem(BaseModel):
    """An image in a team's media library (migration 0042_media), served publicly at /m/<key>.<ext>.

    The stored file is a re-encoded copy without metadata, at most 1200 px wide; sha256 is the digest
    of the upload as received, so the same file uploaded twice is one item."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    key = CharField(unique=True)  # random and unguessable: the public path is all a reader sees
    extension = CharField()  # png, jpg, gif or webp
    name = CharField()  # the uploaded file's name, for people
    content_type = CharField()
    width = IntegerField()
    height = IntegerField()
    bytes = IntegerField()  # size of the stored file
    sha256 = CharField()
    uploaded_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "sha256"), True), (("team", "id"), False))

    @property
    def path(self):
        """The public path of the file, as emails keep it (made absolute when an email is prepared)."""
        return f"/m/{self.key}.{self.extension}"
