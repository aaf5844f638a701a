"""Every model, in dependency order. No view code here.

The schema itself is created by the numbered files in migrations/; these
classes must agree with them (tests build the database through the
migrations and then use these models, so a mismatch fails loudly).
"""
import datetime
import enum
import secrets

from peewee import BlobField
from peewee import BooleanField
from peewee import CharField
from peewee import DateField
from peewee import DateTimeField
from peewee import FloatField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.db import server_default


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def new_token():
    return secrets.token_urlsafe(32)


ROLES = ("admin", "manager", "author", "guest")
ROLE_LABELS = {"admin": "Administrator", "manager": "Manager", "author": "Author", "guest": "Guest"}


class User(BaseModel):
    email = CharField(unique=True)  # stored lower-cased
    name = CharField(default="")
    password_hash = CharField()
    # flask-login's id: a random token, rotated on password change, so that
    # changing the password signs out every other session and a reused rowid
    # can never resurrect an old cookie.
    session_token = CharField(unique=True, default=new_token)
    is_instance_admin = BooleanField(default=False)
    totp_secret = TextField(null=True)  # encrypted; set once 2FA is confirmed
    totp_last_step = IntegerField(default=0)  # refuses replay of a used code
    current_team_id = IntegerField(null=True)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)

    # flask-login protocol
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self):
        return self.session_token

    @property
    def has_2fa(self):
        return bool(self.totp_secret)


class RecoveryCode(BaseModel):
    user = ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = CharField()
    used_at = DateTimeField(null=True)


class PasswordReset(BaseModel):
    user = ForeignKeyField(User, backref="password_resets", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)


class LoginFailure(BaseModel):
    """One failed sign-in (or second factor, "2fa:<address>"), or one request for a password-reset link
    ("reset:<address>"); the throttles count recent rows per address and per IP."""
    email = CharField(index=True)
    ip = CharField(index=True)
    at = DateTimeField(default=utcnow, index=True)


class Team(BaseModel):
    name = CharField()
    time_zone = CharField(default="UTC")
    default_from_name = CharField(default="")
    default_from_email = CharField(default="")
    postal_address = TextField(default="")  # printed in every campaign footer (CAN-SPAM)
    created_at = DateTimeField(default=utcnow)
    # AI writing help (migration 0047): an instance administrator's switch, and the team's own monthly
    # budget in US dollars (None = the instance default, app.ai.costs.budget_usd).
    ai_enabled = BooleanField(default=True)
    ai_monthly_budget_usd = FloatField(null=True)


class Membership(BaseModel):
    user = ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    team = ForeignKeyField(Team, backref="memberships", on_delete="CASCADE")
    role = CharField()  # one of ROLES
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "team"), True),)

    @property
    def role_label(self):
        return ROLE_LABELS[self.role]


class Invite(BaseModel):
    team = ForeignKeyField(Team, backref="invites", on_delete="CASCADE")
    email = CharField()
    role = CharField()
    token_hash = CharField(unique=True)
    invited_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    accepted_at = DateTimeField(null=True)


class InstanceSetting(BaseModel):
    """Instance-wide settings edited in the UI (base URL, sender, outbound SMTP)."""
    key = CharField(unique=True)
    value = JSONField(empty=None)  # any JSON value


class CaughtMessage(BaseModel):
    """A message received by the local mail catcher, shown in the Outbox."""
    received_at = DateTimeField(default=utcnow, index=True)
    mail_from = CharField()
    recipients = JSONField(empty=list)
    subject = TextField(default="")
    size = IntegerField()
    raw = BlobField()


# --- Contacts ---------------------------------------------------------------

class ContactStatus(enum.StrEnum):
    """Contact.status; the values are the stored strings. Only an active contact is mailed."""
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"


CONTACT_STATUSES = tuple(ContactStatus)  # in the order the forms offer them
# Addresses in these states are never (re-)subscribed by an import or a form.
BLOCKED_STATUSES = tuple(status for status in ContactStatus if status != ContactStatus.ACTIVE)
FIELD_TYPES = ("text", "number", "date", "boolean")
SUBSCRIPTION_STATUSES = ("unconfirmed", "subscribed", "unsubscribed")
# A public list has a sign-up form and appears in the preference center; a private one is the team's own
# (customers, beta testers) and appears nowhere public. See migration 0037 for the defaults.
LIST_VISIBILITIES = ("public", "private")


class Contact(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    email = CharField()  # normalised: trimmed, lower-cased; unique per team
    domain = CharField()  # the part after @, for domain suppression and per-domain limits
    name = CharField(default="")
    status = CharField(default=ContactStatus.ACTIVE)  # a ContactStatus
    attributes = JSONField()  # keyed by CustomField.key; segments query it by path
    source = CharField(default="")  # import, form, api, manual
    consent_source = CharField(default="")
    consent_at = DateTimeField(null=True)
    consent_ip = CharField(default="")
    consent_text = TextField(default="")  # the wording the person agreed to
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    last_activity_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("team", "email"), True),
            (("team", "status", "id"), False),
            (("team", "created_at"), False),
            (("team", "domain"), False),
        )


class CustomField(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    key = CharField()  # slug used in attributes JSON and templates: {{ contact.company }}
    label = CharField()
    type = CharField(default="text")  # one of FIELD_TYPES
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "key"), True),)


class MailingList(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    description = TextField(default="")
    double_opt_in = BooleanField(default=True)  # public sign-ups must confirm by email
    public_id = CharField(unique=True, default=new_token)  # hosted sign-up form URL; unguessable
    created_at = DateTimeField(default=utcnow)
    # New lists are private: a list is only exposed to the public by a decision (migration 0037 kept
    # the lists that existed public, since their forms were already in use).
    visibility = CharField(default="private")  # one of LIST_VISIBILITIES

    @property
    def is_public(self):
        return self.visibility == "public"


class Subscription(BaseModel):
    contact = ForeignKeyField(Contact, on_delete="CASCADE")
    list = ForeignKeyField(MailingList, on_delete="CASCADE")
    status = CharField(default="subscribed")  # one of SUBSCRIPTION_STATUSES
    created_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField(null=True)
    unsubscribed_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("contact", "list"), True),
            (("list", "status", "contact"), False),
            (("list", "contact"), False),  # migration 0003: the list filter in contact-id order
        )


TAG_NAME_MAX = 64


class Tag(BaseModel):
    """A team's label for contacts ("customer", "vip"). Names are unique per team ignoring case;
    name_key holds the lower-cased name so that rule is one unique index that SQLite and
    PostgreSQL enforce alike (their lower() disagree outside ASCII). Migration 0044."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()  # as the person typed it, trimmed: at most TAG_NAME_MAX characters, no commas
    name_key = CharField()  # name.lower(): the case-insensitive identity
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "name_key"), True),)


class ContactTag(BaseModel):
    contact = ForeignKeyField(Contact, on_delete="CASCADE")
    tag = ForeignKeyField(Tag, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("contact", "tag"), True),  # a contact's tags
            (("tag", "contact"), False),  # a tag's contacts in id order: filters, counts, segment rules
        )


class Segment(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    rules = JSONField(default=lambda: {"op": "and", "rules": []})  # a tree, compiled to one SQL query
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class Suppression(BaseModel):
    """A suppressed address or whole domain, stored as a keyed hash so it
    survives erasure of the contact: they are never mailed again."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    kind = CharField()  # "email" or "domain"
    value_hash = CharField()  # HMAC-SHA256 of the normalised value
    hint = CharField(default="")  # a non-identifying hint for the UI, e.g. "j…@example.com"
    reason = CharField(default="manual")  # manual, unsubscribed, bounced, complained, erased, import
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "kind", "value_hash"), True),)


class EventType(enum.StrEnum):
    """Every type of Event row; the values are the strings stored in `event.type`.

    Written only through app.events. A StrEnum member is its string, so
    `Event.type == EventType.SENT` and `"sent" == EventType.SENT` both hold.
    """
    # A contact's own record (app.contacts, app.consent)
    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    SUBSCRIBED = "subscribed"
    CONFIRMED = "confirmed"
    REMOVED_FROM_LIST = "removed_from_list"
    UNSUBSCRIBED = "unsubscribed"
    # A campaign's message to the contact (app.sending, app.bounces, app.tracking)
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    OPENED = "opened"
    CLICKED = "clicked"


class Event(BaseModel):
    """Something that happened to a contact: the timeline and the raw material of analytics.

    Written only by app.events (record, record_many, the bulk fast path)."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    campaign_id = IntegerField(null=True, index=True)
    type = CharField()  # an EventType value
    at = DateTimeField(default=utcnow)
    data = JSONField()  # personal parts are removed on erasure

    class Meta:
        indexes = (
            (("contact", "at"), False),
            (("team", "type", "at"), False),
        )


class ImportJob(BaseModel):
    """One CSV import: the uploaded file, the chosen mapping, live progress, the result."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    filename = CharField()
    path = CharField()  # where the upload is stored on disk (var/imports/...)
    encoding = CharField(default="")
    delimiter = CharField(default=",")
    mapping = JSONField()  # column index -> field
    list_ids = JSONField(empty=list)
    mode = CharField(default="add")  # "add" (new only) or "upsert" (add and update)
    status = CharField(default="uploaded")  # uploaded, queued, running, done, failed
    total_rows = IntegerField(default=0)
    processed_rows = IntegerField(default=0)
    created = IntegerField(default=0)
    updated = IntegerField(default=0)
    skipped = IntegerField(default=0)
    rejected = IntegerField(default=0)
    error = TextField(default="")
    rejects_path = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    # migration 0005_imports
    has_header = BooleanField(default=True)
    duplicates = IntegerField(default=0)  # later rows repeating an address (the first one is imported)
    blocked = IntegerField(default=0)  # not (re-)subscribed: unsubscribed, bounced, complained or suppressed
    partial = IntegerField(default=0)  # imported without one or more bad optional values (migration 0037)
    heartbeat_at = DateTimeField(null=True)  # written with every chunk; a stale one means the worker died


class AuditLog(BaseModel):
    """Who did what to personal data (exports, erasures, suppression changes)."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    action = CharField()
    target = CharField(default="")
    data = JSONField()
    at = DateTimeField(default=utcnow, index=True)


class RateLimitHit(BaseModel):
    """One counted request of a public page (migration 0004_consent): the per-IP
    sign-up limit counts these rows, so it holds across gunicorn workers."""
    bucket = CharField()  # what is limited, e.g. "signup" or "confirm-mail"
    key = CharField()  # HMAC of who or what is limited (an IP address, an email address)
    at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("bucket", "key", "at"), False),)


# --- Campaigns and sending --------------------------------------------------

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
    # {"sample_percent", "metric": "clicks"|"opens", "wait_minutes", "tests": a key of campaigns.services.AB_TESTS}
    ab_test = JSONField()
    # migration 0045: {"enabled", "source", "medium", "campaign", "content"} added to every web link (app/content/utm.py)
    utm = JSONField()
    ab_decided_at = DateTimeField(null=True)
    scheduled_at = DateTimeField(null=True)  # UTC
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    state_reason = TextField(default="")  # why it paused or failed, in words
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
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    variant = ForeignKeyField(Variant, null=True, on_delete="SET NULL")
    email = CharField()  # frozen at publish
    status = CharField(default=SendStatus.QUEUED)  # a SendStatus; written only by app.sending.ledger
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL")
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


# --- Feedback intake: bounce mailboxes and provider webhooks (migration 0021_intake) ---

class BounceMailbox(BaseModel):
    """An IMAP mailbox where bounces and complaints arrive (usually the SMTP account's own inbox).

    Messages with a UID above last_uid (within uid_validity) have not been looked at yet; bounces,
    complaints and auto-replies are moved to processed_folder, other mail is left where it is.
    """
    team = ForeignKeyField(Team, on_delete="CASCADE")
    smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL")
    name = CharField(default="")
    preset = CharField(default="generic")  # icloud, generic
    host = CharField()
    port = IntegerField(default=993)
    security = CharField(default="ssl")  # ssl, starttls, none (loopback only)
    username = CharField(default="")
    password = TextField(default="")  # encrypted with app.security.encrypt
    folder = CharField(default="INBOX")
    processed_folder = CharField(default="Loft/Processed")
    enabled = BooleanField(default=True)
    uid_validity = IntegerField(default=0)
    last_uid = IntegerField(default=0)
    last_checked_at = DateTimeField(null=True)
    last_error = TextField(default="")
    last_summary = JSONField()  # counts of the last check
    created_at = DateTimeField(default=utcnow)


class ProviderHook(BaseModel):
    """A provider's bounce/complaint webhook for one team: /feedback/hooks/<provider>/<token>."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    provider = CharField()  # ses, sendgrid, postmark, mailgun, generic
    token = CharField(unique=True, default=new_token)  # the secret part of the URL
    secret = TextField(default="")  # encrypted: Mailgun signing key, SendGrid public key, Postmark or generic secret
    username = CharField(default="")  # Postmark basic-auth user name
    created_at = DateTimeField(default=utcnow)
    last_received_at = DateTimeField(null=True)
    received_count = IntegerField(default=0)
    last_error = TextField(default="")

    class Meta:
        indexes = ((("team", "provider"), True),)


class HookNonce(BaseModel):
    """A signature token a webhook already used (Mailgun token, generic signature): replays are refused."""
    hook = ForeignKeyField(ProviderHook, on_delete="CASCADE")
    nonce = CharField()
    at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("hook", "nonce"), True),)


# --- Outgoing webhooks and in-app notices (migration 0023_webhooks) ------------

WEBHOOK_EVENT_TYPES = ("sent", "delivered", "bounced", "opened", "clicked", "unsubscribed", "complained")
WEBHOOK_DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookEndpoint(BaseModel):
    """A team's URL that receives signed JSON events of the chosen types."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    url = TextField()
    description = CharField(default="")
    event_types = JSONField(empty=list)  # a subset of WEBHOOK_EVENT_TYPES
    secret = TextField(default="")  # encrypted with app.security.encrypt; signs every request
    enabled = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)


class WebhookDelivery(BaseModel):
    """One event for one endpoint; pending until a 2xx answer, retried with backoff, then failed."""
    endpoint = ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
    event_id = IntegerField()
    event_type = CharField()
    payload = TextField()  # the exact JSON body sent (signed as is)
    status = CharField(default="pending")  # one of WEBHOOK_DELIVERY_STATUSES
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    last_status_code = IntegerField(null=True)
    last_error = TextField(default="")
    response_excerpt = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    delivered_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("endpoint", "event_id"), True),
            (("status", "next_attempt_at"), False),
            (("endpoint", "id"), False),
        )


class WebhookCursor(BaseModel):
    """The highest Event id a consumer has processed (outbox pattern); one row per consumer name."""
    name = CharField(unique=True)
    last_event_id = IntegerField(default=0)


class Notice(BaseModel):
    """An in-app alert for a team; its email to the Administrators leaves from a periodic task."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    kind = CharField(default="alert")  # alert, autopause, mailbox, ...
    subject = TextField()
    text = TextField(default="")
    campaign_id = IntegerField(null=True)
    data = JSONField()  # e.g. the rates an auto-pause saw
    created_at = DateTimeField(default=utcnow)
    read_at = DateTimeField(null=True)
    dismissed_at = DateTimeField(null=True)
    emailed_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("team", "dismissed_at", "id"), False),
            (("campaign_id", "kind"), False),
            (("emailed_at",), False),
        )


# --- Brand kit and sign-up forms (app/brand/, app/consent/signup_forms.py), migration 0043 ---

class BrandKit(BaseModel):
    """A team's logo, colours, font and footer: applied to block emails and to its public pages.
    Empty values mean Loft's defaults; app/brand/services.py validates every value before it is used."""
    team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
    public_key = CharField(unique=True, default=new_token)  # names the public stylesheet, not the team
    logo_url = TextField(default="")  # "/m/<key>.<ext>" from the media library, or an https:// URL
    primary_color = CharField(default="")  # "#rrggbb"
    background_color = CharField(default="")
    text_color = CharField(default="")
    font = CharField(default="")  # a key of app.brand.services.FONTS
    footer_text = TextField(default="")
    updated_at = DateTimeField(default=utcnow)


class SignupForm(BaseModel):
    """A sign-up form built by the team: the lists it subscribes to, the fields it asks, its wording."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    public_id = CharField(unique=True, default=new_token)  # the hosted page /f/<public_id>; unguessable
    list_ids = JSONField(empty=list)
    fields = JSONField(empty=list)  # [{"key": "name" or a CustomField key, "label": ..., "required": bool}]
    title = CharField(default="")
    intro = TextField(default="")
    consent_text = TextField(default="")
    button_label = CharField(default="")
    success_message = TextField(default="")
    colors = JSONField()  # {"primary": "#rrggbb", ...}; a missing colour is the brand kit's
    popup_delay = IntegerField(default=0)  # seconds before the popup opens by itself; 0 = on a click only
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "id"), False),)


class FormSignup(BaseModel):
    """One subscription a sign-up form brought: what the form's sign-up count counts."""
    form = ForeignKeyField(SignupForm, on_delete="CASCADE")
    contact = ForeignKeyField(Contact, on_delete="CASCADE")
    list = ForeignKeyField(MailingList, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("form", "contact", "list"), True),)


# --- Reports: aggregates fed by app/reports/rollup.py, migration 0022_reports ---

class ReportCursor(BaseModel):
    """How far an aggregator has read a table by id ("events", "contacts")."""
    name = CharField(unique=True)
    last_id = IntegerField(default=0)


class CampaignStat(BaseModel):
    """Counters of one campaign and A/B variant (variant_id 0: none)."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    variant_id = IntegerField(default=0)
    sent = IntegerField(default=0)
    bounced_hard = IntegerField(default=0)
    bounced_soft = IntegerField(default=0)
    bounced_other = IntegerField(default=0)  # policy blocks, our own auth failures, account limits
    bounced_unique = IntegerField(default=0)  # sends with at least one bounce: sent - this = delivered
    opens_total = IntegerField(default=0)  # human-likely opens
    opens_machine = IntegerField(default=0)  # privacy-proxy prefetches and the like
    opens_unique = IntegerField(default=0)
    clicks_total = IntegerField(default=0)  # human-likely clicks
    clicks_bot = IntegerField(default=0)  # link scanners
    clicks_unique = IntegerField(default=0)
    unsubscribes = IntegerField(default=0)
    complaints = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "variant_id"), True),)


class HourStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    hour = CharField()  # "YYYY-MM-DD HH" in UTC
    opens = IntegerField(default=0)
    clicks = IntegerField(default=0)
    opens_unique = IntegerField(default=0)
    clicks_unique = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "hour"), True),)


class LinkStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    link_id = IntegerField()
    clicks = IntegerField(default=0)
    clicks_unique = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "link_id"), True),)


class DomainStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    domain = CharField()
    sent = IntegerField(default=0)
    bounced = IntegerField(default=0)
    opened = IntegerField(default=0)
    clicked = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "domain"), True),)


class CountryStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    country = CharField()  # ISO 3166 code; "" when unknown
    opened = IntegerField(default=0)
    clicked = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "country"), True),)


class ClientStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    client = CharField()
    device = CharField()
    opened = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "client", "device"), True),)


class TeamDay(BaseModel):
    """A team's daily totals (UTC days): they outlive the raw events (retention)."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    day = CharField()  # "YYYY-MM-DD"
    sent = IntegerField(default=0, constraints=[server_default(0)])
    opens = IntegerField(default=0, constraints=[server_default(0)])  # unique human opens first seen that day
    clicks = IntegerField(default=0, constraints=[server_default(0)])
    bounces = IntegerField(default=0, constraints=[server_default(0)])
    complaints = IntegerField(default=0, constraints=[server_default(0)])
    unsubscribes = IntegerField(default=0, constraints=[server_default(0)])
    new_contacts = IntegerField(default=0, constraints=[server_default(0)])

    class Meta:
        indexes = ((("team", "day"), True),)


class ContactCount(BaseModel):
    """A team's contacts, counted by the report aggregator's minute task (migration 0046): the dashboard
    reads this row instead of counting a million contacts per page view."""
    team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
    total = IntegerField(default=0)
    active = IntegerField(default=0)
    counted_at = DateTimeField(default=utcnow)


class SendMark(BaseModel):
    """The first human open, click and bounce of a send (Event ids): the unique counts."""
    send = ForeignKeyField(Send, primary_key=True, on_delete="CASCADE")
    opened_id = IntegerField(null=True)
    clicked_id = IntegerField(null=True)
    bounced_id = IntegerField(null=True)


class LinkMark(BaseModel):
    """The first human click of a link by a send: unique clicks per link."""
    send = ForeignKeyField(Send, on_delete="CASCADE", index=False)
    link_id = IntegerField()
    event_id = IntegerField()

    class Meta:
        indexes = ((("send", "link_id"), True),)


class HealthProbe(BaseModel):
    """One row (id 1) that /health rewrites: proof the database takes writes (migration 0033)."""
    checked_at = DateTimeField(null=True)


# --- AI: generations, cost and team limits (app/ai/generate.py, migration 0047) ---


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
