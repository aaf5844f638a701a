"""Transactional email: one message to one address, accepted, stored, then sent on its own queue.

    accept(team, *, api_key, message)                    check a JSON message, build it, store it "queued"
    submit_raw(api_key, *, mail_from, recipients, raw)   the same rules for a whole RFC 5322 message (SMTP
                                                         submission): one TxMessage per recipient
    deliver(tx_id)                                       send one queued message -> TxAttempt (sent, retry, failed)
    status_history(tx)                                   [(status, at, detail)], oldest first

A recipient is an address, not a Contact: a receipt's buyer has not joined the audience, and a
transactional message must not make them one. What the team's marketing learnt about the address still
counts where it must: a hard bounce, a complaint or a suppression entry refuses the message; an
unsubscribe from marketing does not (a receipt is no newsletter).

The SMTP conversation itself, on a connection kept per account, is app/transactional/outbound.py.

Nothing here enqueues (services never do): the caller queues `tasks.transactional.send_tx` for each
TxMessage it got back.
"""
import base64
import binascii
import datetime
import email.policy
import email.utils
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser

from flask import current_app

from app import events
from app import usage
from app import settings as instance_settings
from app.addresses import InvalidEmail
from app.addresses import normalise_email
from app.addresses import one_address
from app.addresses import one_line
from app.consent import suppression
from app.content.fields import base_context
from app.content.fields import contact_context
from app.content.fields import sample_contact
from app.content.prepare import prepare
from app.content.sandbox import CLICK_TOKEN
from app.content.sandbox import MAX_SUBJECT
from app.content.sandbox import OPEN_TOKEN
from app.content.sandbox import Record
from app.content.sandbox import RenderError
from app.content.sandbox import render
from app.content.sources import Source
from app.content.sources import builtin_layout
from app.content.sources import source_of
from app.db import db
from app.errors import Problem
from app.metrics.definitions import MESSAGES
from app.teams import standing
from app.models import Contact
from app.models import SmtpAccount
from app.models import ContactStatus
from app.models import EventType
from app.models import Template
from app.models import TxEvent
from app.models import TxMessage
from app.models import TxStatus
from app.models import utcnow
from app.senders import accounts
from app.senders import domains
from app.senders import smtp_client
from app.senders import warmup
from app.sending import shares
from app.sending.tuning import Settings
from app.transactional import outbound
from app.transactional import tracking as tx_tracking

# Headers a message may add. Everything that routes or authenticates mail (To, Cc, Bcc, From, Sender,
# Received, Return-Path, DKIM-Signature, ...) is Loft's to write, and List-Unsubscribe belongs to marketing.
ALLOWED_HEADERS = frozenset(("in-reply-to", "references", "auto-submitted", "x-priority", "importance"))
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
MAX_TAGS = 10
MAX_HEADERS = 20
MAX_ATTACHMENTS = 20
MAX_DATA_CHARS = 100_000
MAX_DATA_DEPTH = 5
STALL_MARGIN = 300  # seconds past the longest retry delay before a queued message counts as lost
MAX_SUBMITTED_RECIPIENTS = 50  # one message submitted over SMTP becomes one TxMessage per recipient
FIELDS = frozenset(("to", "to_name", "from", "from_name", "reply_to", "subject", "html", "markdown",
                    "template_id", "data", "headers", "tags", "attachments", "track_opens", "track_clicks"))
# What a whole message submitted over SMTP may not bring along: Loft writes the routing and signature
# headers itself, and a Bcc must never reach the recipients it hides.
STRIPPED_HEADERS = ("bcc", "return-path", "received", "dkim-signature", "list-unsubscribe",
                    "list-unsubscribe-post", "x-loft-token", tx_tracking.HEADER.lower())
SUPPRESSION_REASONS_THAT_ALLOW = ("unsubscribed",)  # a marketing unsubscribe; every other entry refuses


class TxError(Problem):
    """Why a transactional message was refused: `errors` holds the message per field."""


class TxRefused(TxError):
    """The team may not send now (suspended, or at its monthly cap: app/teams/standing.py)."""
    status = 409


def refuse_unless_standing(team):
    refusal = standing.sending_refusal(team.id if hasattr(team, "id") else team, stream="transactional")
    if refusal:
        raise TxRefused(refusal)


@dataclass
class TxAttempt:
    """What deliver() did: the new status, the server's words, and when to try again (seconds) if at all."""
    status: str
    detail: str = ""
    retry_in: int | None = None


# --- Checks ---------------------------------------------------------------------------------------

def _address(value, field, errors, required=False, sender=False):
    """The normalised address, else "" with the reason in errors[field]. A sender may be on a special-use
    domain (.test, .localhost): it must be on a verified sender domain of the team anyway."""
    if value in (None, ""):
        if required:
            errors[field] = "Give one email address."
        return ""
    if not isinstance(value, str):
        errors[field] = "Give one email address as text." if field != "to" else \
            "Give one recipient as text: a transactional message goes to one address."
        return ""
    if not one_address(value):
        errors[field] = f"“{value[:100]}” is not one plain email address (no names, lists or line breaks)."
        return ""
    try:
        return normalise_email(value, allow_test_domains=sender)
    except InvalidEmail as error:
        errors[field] = f"“{value[:100]}” is not a valid email address: {error.message}"
        return ""


def _name(value, field, errors):
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not one_line(value) or len(value) > 200:
        errors[field] = "Give a name of at most 200 characters on one line."
        return ""
    return value.strip()


def _sender(team, value, name, errors):
    """(from_email, from_name): the given address on a verified domain of the team, else its default sender."""
    from_email = _address(value, "from", errors, sender=True)
    if "from" in errors:
        return "", ""
    if not from_email:
        from_email = (team.default_from_email or "").strip().lower()
        name = name or team.default_from_name or ""
        if not from_email:
            errors["from"] = ("Give a From address: this team has no default sender (Team settings), and the "
                              "address must be on one of its verified sender domains.")
            return "", ""
    if not domains.is_verified_sender(team.id, from_email):
        domain = from_email.rpartition("@")[2]
        errors["from"] = (f"The domain {domain} is not a verified sender domain of this team, so Loft will not "
                          f"send as {from_email}. Verify it under Sending → Sender domains.")
    return from_email, name


def _headers(value, errors):
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        errors["headers"] = "Give headers as an object of name: value."
        return {}
    if len(value) > MAX_HEADERS:
        errors["headers"] = f"At most {MAX_HEADERS} headers."
        return {}
    clean = {}
    for name, text in value.items():
        lowered = name.lower() if isinstance(name, str) else ""
        if not _HEADER_NAME.match(lowered) or not (lowered in ALLOWED_HEADERS or
                                                   (lowered.startswith("x-") and not lowered.startswith("x-loft"))):
            errors[f"headers.{name}"] = (f"“{str(name)[:64]}” cannot be set: only X-… headers (not X-Loft-…) and "
                                         f"{', '.join(sorted(ALLOWED_HEADERS))} may be added.")
            continue
        if not isinstance(text, str) or not one_line(text) or len(text) > 900:
            errors[f"headers.{name}"] = "A header value is text of at most 900 characters on one line."
            continue
        clean[name] = text
    return clean


def _tags(value, errors):
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        errors["tags"] = f"Give at most {MAX_TAGS} tags as a list of text."
        return []
    for tag in value:
        if not isinstance(tag, str) or not _TAG.match(tag):
            errors["tags"] = ("A tag is 1 to 64 letters, digits, “_”, “.”, “:” or “-”, starting with a letter or "
                              f"digit, not {str(tag)[:70]!r}.")
            return []
    return list(dict.fromkeys(value))


def _attachments(value, errors):
    """[(filename, content type, bytes)], with the decoded total under LOFT_TX_MAX_BYTES."""
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        errors["attachments"] = f"Give at most {MAX_ATTACHMENTS} attachments as a list."
        return []
    limit = current_app.config["TX_MAX_BYTES"]
    found, total = [], 0
    for index, item in enumerate(value):
        field = f"attachments.{index}"
        if not isinstance(item, dict):
            errors[field] = "An attachment is an object with filename, content (base64) and content_type."
            continue
        filename = item.get("filename")
        if (not isinstance(filename, str) or not filename.strip() or len(filename) > 200 or not one_line(filename)
                or "/" in filename or "\\" in filename):
            errors[f"{field}.filename"] = "Give a file name of at most 200 characters, without folders."
            continue
        content_type = item.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type.lower()):
            errors[f"{field}.content_type"] = "Give a media type such as application/pdf."
            continue
        content = item.get("content")
        try:
            data = base64.b64decode(content, validate=True) if isinstance(content, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            errors[f"{field}.content"] = "Give the file's content in base64."
            continue
        total += len(data)
        found.append((filename.strip(), content_type.lower(), data))
    if total > limit:
        errors["attachments"] = f"The attachments come to {total:,} bytes; at most {limit:,} bytes in all."
    return found


def _data(value, errors):
    """The personalisation data as the sandbox reads it: objects become Records (keys only, no methods)."""
    if value in (None, {}):
        return Record({})
    if not isinstance(value, dict):
        errors["data"] = "Give data as an object, e.g. {\"order\": {\"number\": 1042}}."
        return Record({})
    budget = [MAX_DATA_CHARS]

    def convert(item, depth):
        if depth > MAX_DATA_DEPTH:
            raise ValueError(f"data is nested more than {MAX_DATA_DEPTH} levels deep")
        if isinstance(item, dict):
            budget[0] -= sum(len(str(key)) for key in item)
            return Record({str(key): convert(inner, depth + 1) for key, inner in item.items()})
        if isinstance(item, list):
            return [convert(inner, depth + 1) for inner in item]
        if isinstance(item, str):
            budget[0] -= len(item)
        elif item is not None and not isinstance(item, (int, float, bool)):
            raise ValueError("data holds only objects, lists, text, numbers, true, false and null")
        if budget[0] < 0:
            raise ValueError(f"data is longer than {MAX_DATA_CHARS:,} characters")
        return item

    try:
        return convert(value, 1)
    except ValueError as error:
        errors["data"] = f"{str(error)[0].upper()}{str(error)[1:]}."
        return Record({})


def _content(team, message, errors):
    """(source, template or None): what to render, from a template of the team or the given HTML/Markdown."""
    template_id = message.get("template_id")
    given = [key for key in ("html", "markdown") if message.get(key) not in (None, "")]
    if template_id is not None:
        if given:
            errors["template_id"] = "Give a template_id or html or markdown, not both."
            return None, None
        template = None
        if isinstance(template_id, int) and not isinstance(template_id, bool):
            template = Template.get_or_none((Template.id == template_id) & (Template.team == team.id))
        if template is None:
            errors["template_id"] = f"This team has no template {str(template_id)[:20]}."
            return None, None
        return source_of(template), template
    if len(given) != 1:
        errors["html"] = "Give the body as html or markdown (one of them), or a template_id."
        return None, None
    body = message[given[0]]
    if not isinstance(body, str):
        errors[given[0]] = "Give the body as text."
        return None, None
    return Source(body, given[0]), None


def _choice(message, field, setting, errors):
    """A message's track_opens / track_clicks: true or false as given, else the instance's default. Tracking
    is off by default for transactional mail: a receipt or a password reset is not marketing to measure, so
    it is tracked only when the sender asks (per message, or for the instance with LOFT_TX_TRACK_*)."""
    value = message.get(field)
    if value is not None and not isinstance(value, bool):
        errors[field] = f"Give {field} as true or false."
        return False
    return tx_tracking.wanted(value, setting)


def _subject(message, template, errors):
    subject = message.get("subject")
    if subject in (None, "") and template is not None:
        subject = template.name
    if not isinstance(subject, str) or not subject.strip():
        errors["subject"] = "Give a subject."
        return ""
    if not one_line(subject) or len(subject) > MAX_SUBJECT:
        errors["subject"] = f"A subject is one line of at most {MAX_SUBJECT} characters."
        return ""
    return subject


def check_recipient(team, address):
    """Raise TxError when the team must not mail this address: it hard-bounced, complained or is on the
    suppression list for any reason but a marketing unsubscribe."""
    contact = Contact.get_or_none((Contact.team == team.id) & (Contact.email == address))
    if contact is not None and contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED,
                                                  ContactStatus.SUPPRESSED):
        words = {ContactStatus.BOUNCED: "its mail hard-bounced", ContactStatus.COMPLAINED: "it reported this "
                 "team's mail as spam", ContactStatus.SUPPRESSED: "it is suppressed"}[contact.status]
        raise TxError(f"Loft will not send to {address}: {words}.", field="to")
    for entry in suppression.entries_for(team.id, address):
        if entry.kind == "email" and entry.reason in SUPPRESSION_REASONS_THAT_ALLOW:
            continue
        what = f"the domain {entry.hint}" if entry.kind == "domain" else address
        raise TxError(f"Loft will not send to {address}: {what} is on this team's suppression list "
                      f"({entry.reason}).", field="to")


# --- Building -------------------------------------------------------------------------------------

def _message_id(from_email):
    return f"tx.{secrets.token_urlsafe(18)}@{from_email.rpartition('@')[2]}"


def _render(team, source, subject, to_email, to_name, from_name, from_email, data, tracking=None):
    """(subject, html, text) through the campaigns' sandbox, without the marketing footer; with the open pixel
    and tracked links when `tracking` (a tx_tracking.Tracking) asks for them."""
    base_url = instance_settings.base_url().rstrip("/")
    layout = source.layout
    if layout is None and source.kind == "markdown":
        layout = builtin_layout("_transactional_markdown_layout")
    opens, clicks = (tracking.opens, tracking.clicks) if tracking is not None else (False, False)
    prepared = prepare(source.body, source.kind, subject, layout=layout, base_url=base_url, marketing_footer=False,
                       track_opens=opens, track_clicks=clicks, link_id=tracking.link_id if clicks else None)
    context = base_context(team, base_url, subject, from_name, from_email)
    context.update({"unsubscribe_url": "", "preferences_url": "", "webview_url": ""})
    if tracking is not None:
        context.update({OPEN_TOKEN: tracking.open_token, CLICK_TOKEN: tracking.click_token})
    context.update(contact_context(sample_contact(to_email, to_name), []))
    context["data"] = data
    rendered_subject = one_line_text(render(prepared.subject_template, context, MAX_SUBJECT * 4))[:MAX_SUBJECT]
    return rendered_subject, render(prepared.html_template, context), render(prepared.text_template, context)


def one_line_text(text):
    return " ".join(text.split())


def _build(*, from_name, from_email, to_name, to_email, reply_to, subject, html, text, headers, attachments,
           message_id):
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr((from_name, from_email))
    message["To"] = email.utils.formataddr((to_name, to_email))
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def _store(team, api_key, template, *, from_email, from_name, reply_to, to_email, subject, tags, raw, message_id,
           detail, track=(False, False)):
    """Store one queued message. `raw` is its bytes, or for a tracked message (`track`: opens, clicks) a
    function of its Tracking that builds them, called once the row has the id its tokens carry: a build that
    raises leaves nothing stored."""
    tracked = any(track)
    with db.atomic():
        tx = TxMessage.create(team=team.id, api_key=api_key, template=template, from_email=from_email,
                              from_name=from_name, reply_to=reply_to, to_email=to_email, subject=subject, tags=tags,
                              status=TxStatus.QUEUED, message_id=message_id, raw=b"" if tracked else raw,
                              size=0 if tracked else len(raw), track_opens=track[0], track_clicks=track[1])
        if tracked:
            tracking = tx_tracking.Tracking(team.id, tx.id, *track)
            built = raw(tracking)
            (TxMessage.update(raw=built, size=len(built), links=tracking.links)
             .where(TxMessage.id == tx.id).execute())
            detail = detail.format(size=len(built))
        TxEvent.create(tx_message=tx, status=TxStatus.QUEUED, detail=detail)
    return tx


def accept(team, *, api_key, message):
    """Check `message` (the JSON object of POST /api/v1/tx), build it and store it as queued.

    Raises TxError with a message per field; nothing is stored unless every check passed."""
    refuse_unless_standing(team)
    if not isinstance(message, dict):
        raise TxError("Send a JSON object.")
    errors = {}
    unknown = sorted(set(message) - FIELDS)
    if unknown:
        errors[unknown[0]] = f"Unknown field “{unknown[0][:64]}”; the fields are {', '.join(sorted(FIELDS))}."
    to_email = _address(message.get("to"), "to", errors, required=True)
    to_name = _name(message.get("to_name"), "to_name", errors)
    from_name = _name(message.get("from_name"), "from_name", errors)
    from_email, from_name = _sender(team, message.get("from"), from_name, errors)
    reply_to = _address(message.get("reply_to"), "reply_to", errors, sender=True)
    headers = _headers(message.get("headers"), errors)
    tags = _tags(message.get("tags"), errors)
    attachments = _attachments(message.get("attachments"), errors)
    data = _data(message.get("data"), errors)
    source, template = _content(team, message, errors)
    subject = _subject(message, template, errors)
    track = (_choice(message, "track_opens", "TX_TRACK_OPENS", errors),
             _choice(message, "track_clicks", "TX_TRACK_CLICKS", errors))
    if errors:
        raise TxError(errors=errors)
    check_recipient(team, to_email)
    message_id = _message_id(from_email)

    def build(tracking=None):
        try:
            rendered_subject, html, text = _render(team, source, subject, to_email, to_name, from_name, from_email,
                                                   data, tracking)
        except RenderError as error:
            field = "template_id" if template is not None else ("html" if message.get("html") else "markdown")
            raise TxError(f"The message cannot be rendered: {error}", field=field) from None
        built = _build(from_name=from_name, from_email=from_email, to_name=to_name, to_email=to_email,
                       reply_to=reply_to, subject=rendered_subject, html=html, text=text, headers=headers,
                       attachments=attachments, message_id=message_id)
        return rendered_subject, built

    if any(track):
        # The subject has no links, so it is the same with and without tracking: rendered once here to
        # store it, and the body built with the tokens of the stored row.
        stored_subject, _untracked = build()
        return _store(team, api_key, template, from_email=from_email, from_name=from_name, reply_to=reply_to,
                      to_email=to_email, subject=stored_subject, tags=tags, raw=lambda tracking: build(tracking)[1],
                      message_id=message_id, detail="accepted, {size:,} bytes", track=track)
    subject, raw = build()
    return _store(team, api_key, template, from_email=from_email, from_name=from_name, reply_to=reply_to,
                  to_email=to_email, subject=subject, tags=tags, raw=raw, message_id=message_id,
                  detail=f"accepted, {len(raw):,} bytes")


def max_raw_bytes():
    """The largest whole message submit_raw takes: the attachment limit once base64-encoded, plus the text."""
    return current_app.config["TX_MAX_BYTES"] * 4 // 3 + 1_000_000


def submit_raw(api_key, *, mail_from, recipients, raw):
    """A whole message submitted over SMTP by `api_key`'s team: one TxMessage per recipient, all or none.

    The From header must be on a verified sender domain of the team (the envelope sender, if any, too);
    Bcc, Received, Return-Path, DKIM-Signature and List-Unsubscribe headers are removed; a Message-ID and
    Date are added when missing. An X-Loft-Track header ("opens", "clicks", "opens, clicks", "none") asks for
    tracking, else the instance's LOFT_TX_TRACK_* defaults apply; it is removed too. Raises TxError naming the
    refused recipient or header."""
    team = api_key.team
    refuse_unless_standing(team)
    if len(raw) > max_raw_bytes():
        raise TxError(f"The message is {len(raw):,} bytes; at most {max_raw_bytes():,}.", field="raw")
    if not recipients:
        raise TxError("Name at least one recipient.", field="recipients")
    if len(recipients) > MAX_SUBMITTED_RECIPIENTS:
        raise TxError(f"At most {MAX_SUBMITTED_RECIPIENTS} recipients per message.", field="recipients")
    message = BytesParser(policy=email.policy.SMTP).parsebytes(raw)
    errors = {}
    senders = email.utils.getaddresses(message.get_all("From", []))
    from_email = ""
    if len(senders) != 1 or not senders[0][1]:
        errors["from"] = "The message needs exactly one From address."
    else:
        from_email, from_name = _sender(team, senders[0][1], senders[0][0], errors)
    if mail_from and "from" not in errors:
        envelope = _address(mail_from, "mail_from", errors, sender=True)
        if envelope and not domains.is_verified_sender(team.id, envelope):
            errors["mail_from"] = f"The envelope sender {envelope} is not on a verified sender domain of this team."
    try:
        track = tx_tracking.header_choice(message[tx_tracking.HEADER])
    except ValueError as error:
        errors["headers.X-Loft-Track"], track = str(error), None
    if track is None:
        track = (tx_tracking.wanted(None, "TX_TRACK_OPENS"), tx_tracking.wanted(None, "TX_TRACK_CLICKS"))
    addresses = []
    for index, recipient in enumerate(recipients):
        address = _address(recipient, f"recipients.{index}", errors, required=True)
        if address:
            addresses.append(address)
    if errors:
        raise TxError(errors=errors)
    for address in addresses:
        check_recipient(team, address)
    for name in STRIPPED_HEADERS:
        del message[name]
    if message["Date"] is None:
        message["Date"] = email.utils.formatdate(localtime=False)
    if message["Message-ID"] is None:
        message["Message-ID"] = f"<{_message_id(from_email)}>"
    message_id = str(message["Message-ID"]).strip().strip("<>")
    built = message.as_bytes()
    subject = one_line_text(str(message["Subject"] or ""))[:MAX_SUBJECT]
    base_url = instance_settings.base_url()

    def tracked(tracking):
        # Each recipient's copy carries its own tokens, so it is tracked from the message as submitted.
        copy = BytesParser(policy=email.policy.SMTP).parsebytes(built)
        tx_tracking.track_raw(copy, tracking, base_url)
        return copy.as_bytes()

    with db.atomic():
        return [_store(team, api_key, None, from_email=from_email, from_name=senders[0][0], reply_to="",
                       to_email=address, subject=subject, tags=[], raw=tracked if any(track) else built,
                       message_id=message_id, track=track,
                       detail=("submitted over SMTP, {size:,} bytes" if any(track)
                               else f"submitted over SMTP, {len(built):,} bytes")) for address in addresses]


# --- Sending --------------------------------------------------------------------------------------

def account_for(team_id):
    """The SMTP account transactional mail goes through: an active one marked "Use for transactional mail",
    else the team's first active account; None when the team has none."""
    return (accounts.transactional_accounts(team_id) or [None])[0]


def _cap_reached(account, now):
    """Whether `account` has used its hourly or daily cap (the daily one lower while it warms up), counting
    campaigns' sends, the permits their runs hold and the transactional messages sent through it."""
    if not account.per_hour and not account.per_day:
        return False
    lease_seconds = Settings.from_config(current_app.config).lease_seconds
    hour, day, holding = shares.counted(account.id, lease_seconds, now)
    return shares.room(account.per_hour, warmup.daily_cap(account, now.date()), hour + holding, day + holding) == 0


def choose_account(team_id, now=None):
    """(account, "") for the next transactional message of the team, or (None, why it waits) when every
    account it may use is paused or at its hourly or daily cap, or (None, "") when the team has none."""
    now = now or utcnow()
    usable = accounts.transactional_accounts(team_id)
    for account in usable:
        if not _cap_reached(account, now):
            return account, ""
    if usable:
        names = ", ".join(f"“{account.name}”" for account in usable)
        return None, (f"The SMTP account {names} reached its hourly or daily limit "
                      f"({accounts.limits_in_words(usable[0])}); the message goes out when it has room.")
    paused = list(SmtpAccount.select().where((SmtpAccount.team == team_id) & (SmtpAccount.status == "paused"))
                  .order_by(SmtpAccount.id))
    if paused:
        parts = [f"The SMTP account “{account.name}” is paused"
                 + (f" until {account.paused_until:%Y-%m-%d %H:%M} UTC" if account.paused_until else "")
                 + f": {account.paused_reason or 'no reason given'}." for account in paused]
        return None, " ".join(parts) + " The message goes out once an account can send."
    return None, ""


WEBHOOK_EVENTS = {TxStatus.SENT: EventType.TX_SENT, TxStatus.FAILED: EventType.TX_FAILED,
                  TxStatus.BOUNCED: EventType.TX_BOUNCED}


def _event_for_webhooks(tx, status, detail):
    """The Event row outgoing webhooks read (app/webhooks/delivery.py): no contact, no campaign."""
    if status in WEBHOOK_EVENTS:
        events.record(tx.team_id, None, WEBHOOK_EVENTS[status], data={
            "tx_id": tx.id, "to": tx.to_email, "from": tx.from_email, "subject": tx.subject,
            "message_id": tx.message_id, "tags": tx.tags or [], "detail": detail[:500]})


def _record(tx, status, detail, **changes):
    with db.atomic():
        TxMessage.update(status=status, **changes).where(TxMessage.id == tx.id).execute()
        TxEvent.create(tx_message=tx.id, status=status, detail=detail[:2000])
        _event_for_webhooks(tx, status, detail)


def _wait(tx, reason, now=None):
    """Keep the message queued with `reason`, to look again after LOFT_TX_WAIT_SECONDS. Its history gets the
    reason when it changes, not at every look. Only the task that moves waited_at on keeps waiting, so a
    message queued twice meanwhile (the periodic re-queue, a retried task) still has one task looking."""
    now = now or utcnow()
    wait = current_app.config["TX_WAIT_SECONDS"]
    with db.atomic():
        moved = (TxMessage.update(waiting=reason, waited_at=now)
                 .where((TxMessage.id == tx.id) & (TxMessage.status == TxStatus.QUEUED)
                        & (TxMessage.waited_at.is_null()
                           | (TxMessage.waited_at <= now - datetime.timedelta(seconds=wait / 2))))
                 .execute())
        if moved and reason != tx.waiting:
            TxEvent.create(tx_message=tx.id, status=TxStatus.QUEUED, detail=f"waiting: {reason}"[:2000])
    return TxAttempt(TxStatus.QUEUED, reason, retry_in=wait if moved else None)


def deliver(tx_id):
    """Send one queued message through the team's transactional account, DKIM-signed when its From domain
    has a key. A message that is not queued (already sent, failed) is left alone, so a repeated task is
    harmless. While every account it may use is paused or at its hourly or daily cap the message waits,
    queued with the reason. A temporary failure asks to be tried again after the next of
    LOFT_TX_RETRY_DELAYS."""
    tx = TxMessage.get_or_none(TxMessage.id == tx_id)
    if tx is None or tx.status != TxStatus.QUEUED:
        return TxAttempt(tx.status if tx is not None else "missing")
    refusal = standing.sending_refusal(tx.team_id, stream="transactional")
    if refusal:  # suspended, or at the monthly cap: it stays queued with the reason, and goes once allowed
        return _wait(tx, refusal)
    account, reason = choose_account(tx.team_id)
    if account is None and reason:
        return _wait(tx, reason)
    attempts = tx.attempts + 1
    # A conditional claim: should the same task ever run twice at once, only one of them sends.
    claimed = (TxMessage.update(attempts=attempts)
               .where((TxMessage.id == tx.id) & (TxMessage.status == TxStatus.QUEUED)
                      & (TxMessage.attempts == tx.attempts)).execute())
    if not claimed:
        return TxAttempt(TxStatus.QUEUED, "taken by another worker")
    if account is None:
        kind, detail, via = "temporary", "This team has no active SMTP account.", ""
    else:
        raw = bytes(tx.raw)
        row = domains.domain_for_sender(tx.team_id, tx.from_email)
        if row is not None and row.dkim_private_key:
            raw = domains.sign(raw, row)
        kind, detail = outbound.send(account, smtp_client.smtp_options(account), tx.from_email, tx.to_email, raw,
                                     idle=current_app.config["TX_CONNECTION_IDLE"])
        via = f" (via SMTP account “{account.name}”)"
    if kind == "sent":
        with db.atomic():  # counted for the team's usage with its record
            _record(tx, TxStatus.SENT, detail + via, sent_at=utcnow(), error="", waiting="", smtp_account=account.id)
            usage.count_sent(tx.team_id, 1, stream="transactional", domain=usage.domain_of(tx.from_email))
        MESSAGES.labels("sent", "transactional").inc()  # after the commit, with the record (app/metrics)
        return TxAttempt(TxStatus.SENT, detail)
    delays = current_app.config["TX_RETRY_DELAYS"]
    if kind == "temporary" and attempts <= len(delays):
        delay = delays[attempts - 1]
        _record(tx, TxStatus.QUEUED, f"attempt {attempts} failed, trying again in {delay} s: {detail}{via}",
                error=detail, waiting="")
        MESSAGES.labels("soft_fail", "transactional").inc()
        return TxAttempt(TxStatus.QUEUED, detail, retry_in=delay)
    _record(tx, TxStatus.FAILED, detail + via, error=detail, waiting="")
    MESSAGES.labels("bounce" if kind == "permanent" else "failed", "transactional").inc()
    return TxAttempt(TxStatus.FAILED, detail)


def stalled_ids(now=None, limit=500):
    """Messages still queued with nothing heard of them for longer than the longest retry delay plus
    STALL_MARGIN seconds: a consumer died between the SMTP reply and its record, or the queue lost the task.
    Queuing them again is safe: deliver() claims a message before it sends."""
    now = now or utcnow()
    cutoff = now - datetime.timedelta(seconds=max(current_app.config["TX_RETRY_DELAYS"], default=0) + STALL_MARGIN)
    heard_of = TxEvent.select(TxEvent.tx_message).where(TxEvent.at >= cutoff)
    return [row.id for row in TxMessage.select(TxMessage.id)
            .where((TxMessage.status == TxStatus.QUEUED) & (TxMessage.created_at < cutoff)
                   & (TxMessage.waited_at.is_null() | (TxMessage.waited_at < cutoff))
                   & TxMessage.id.not_in(heard_of))
            .order_by(TxMessage.id).limit(limit)]


# --- After sending ----------------------------------------------------------------------------------

def message_for_report(team_id, message_id, recipient=""):
    """The team's sent TxMessage a bounce or complaint names by its Message-ID (for a message submitted over
    SMTP to several people, the one to `recipient`), or None."""
    message_id = (message_id or "").strip().strip("<>")
    if not message_id:
        return None
    query = (TxMessage.select(*[f for f in TxMessage._meta.sorted_fields if f.name != "raw"])
             .where((TxMessage.team == team_id) & (TxMessage.message_id == message_id)))
    found = list(query.order_by(TxMessage.id).limit(100))
    chosen = [tx for tx in found if recipient and tx.to_email == recipient.strip().lower()] or found
    return chosen[0] if chosen else None


def record_report(tx, kind, detail):
    """A provider's "delivered", a bounce ("hard", "soft", "block") or "complaint" about a sent message, in its
    history, once per kind; "delivered" moves a sent message to delivered.
    A hard bounce or a complaint also suppresses the address for the team (reason "bounced"/"complained"), so
    neither its campaigns nor its next transactional message go there again. Returns (status, duplicate)."""
    status = {"complaint": "complained", "delivered": TxStatus.DELIVERED}.get(kind, TxStatus.BOUNCED)
    marker = f"{kind}: "
    with db.atomic():
        if TxEvent.select().where((TxEvent.tx_message == tx.id) & (TxEvent.status == status)
                                  & TxEvent.detail.startswith(marker)).exists():
            return status, True
        TxEvent.create(tx_message=tx.id, status=status, detail=(marker + detail)[:2000])
        if status == TxStatus.DELIVERED:
            (TxMessage.update(status=TxStatus.DELIVERED)
             .where((TxMessage.id == tx.id) & (TxMessage.status == TxStatus.SENT)).execute())
        if status == TxStatus.BOUNCED:
            TxMessage.update(status=TxStatus.BOUNCED, error=detail[:2000]).where(TxMessage.id == tx.id).execute()
            _event_for_webhooks(tx, status, detail)
        if kind in ("hard", "complaint"):
            suppression.suppress(tx.team_id, "email", tx.to_email, "complained" if kind == "complaint" else "bounced")
    return status, False


# --- Reading --------------------------------------------------------------------------------------

def status_history(tx):
    """[(status, at, detail)] of one message, oldest first."""
    return [(event.status, event.at, event.detail)
            for event in TxEvent.select().where(TxEvent.tx_message == tx.id).order_by(TxEvent.at, TxEvent.id)]


def get_message(team, tx_id):
    """The team's message with this id, or None (another team's id is simply not found)."""
    return TxMessage.get_or_none((TxMessage.id == tx_id) & (TxMessage.team == team.id))


def latest(team, *, status=None, before=None, limit=50):
    """The team's newest messages (without their bodies), optionally of one status, older than id `before`."""
    fields = [field for field in TxMessage._meta.sorted_fields if field.name != "raw"]
    query = TxMessage.select(*fields).where(TxMessage.team == team.id)
    if status:
        query = query.where(TxMessage.status == status)
    if before:
        query = query.where(TxMessage.id < before)
    return list(query.order_by(TxMessage.id.desc()).limit(limit))


def has_messages(team):
    return TxMessage.select(TxMessage.id).where(TxMessage.team == team.id).exists()
