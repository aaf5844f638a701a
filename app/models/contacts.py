"""Contacts and what hangs off them: fields, lists, subscriptions, tags, segments,
suppressions, the event timeline, imports, the audit log and rate-limit hits."""
import enum

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.db import server_default
from app.models.common import new_token
from app.models.common import utcnow
from app.models.teams import Team
from app.models.teams import User


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
    # The last address check (app/contacts/validity.py, migration 0061): "" never checked, else valid, risky
    # or invalid; the reasons are app.deliverability.validation's codes joined by commas ("role,typo").
    # A server default as well (migration 0061): raw many-row INSERTs (imports, the API's bulk) leave them out.
    validation_status = CharField(default="", constraints=[server_default("")])
    validation_reasons = CharField(default="", constraints=[server_default("")])
    validation_suggestion = CharField(default="", constraints=[server_default("")])  # a typo's fix, else ""
    validation_checked_at = DateTimeField(null=True)

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
    # A transactional message (app.transactional): no contact, no campaign; data names the TxMessage
    TX_SENT = "tx_sent"
    TX_FAILED = "tx_failed"
    TX_BOUNCED = "tx_bounced"
    TX_OPENED = "tx_opened"
    TX_CLICKED = "tx_clicked"


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


VALIDATION_JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class ValidationJob(BaseModel):
    """One "Validate this list" run (app/contacts/validity.py, tasks/contacts.py; migration 0061): progress and
    counts. Each verdict is stored on its contact; the job's results are its list's contacts checked since it
    started. `active_list` holds the list's id while the job is queued or running and NULL after: a unique
    column, so a second job for the same list cannot start beside it on either database."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    list = ForeignKeyField(MailingList, on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    active_list = IntegerField(null=True, unique=True)
    state = CharField(default="queued")  # one of VALIDATION_JOB_STATES
    total = IntegerField(default=0)
    done = IntegerField(default=0)
    valid = IntegerField(default=0)
    risky = IntegerField(default=0)
    invalid = IntegerField(default=0)
    reasons = JSONField()  # {reason code: contacts}
    after_id = IntegerField(default=0)  # the last contact id checked: the next chunk starts after it
    error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    heartbeat_at = DateTimeField(null=True)  # written with every chunk; a stale one means the worker died

    class Meta:
        indexes = ((("list", "id"), False),)


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
