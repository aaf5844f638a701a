"""The suppression list as people manage it: add, remove, check, import.

app.consent.suppression holds the hashing; this module adds what a person
does with it. Only keyed hashes are stored, so an entry can be found again
only by typing its exact address or domain: that is how removal and the
"is this address suppressed?" check work.

Adding an address also marks the contact with that address "suppressed"
(a domain: every active contact of the domain), with an event each, in the
same transaction as the entry itself. Every change is written to AuditLog
with the hint, never the address.
"""
import dataclasses
import re

from peewee import Value

from app import addresses
from app import events
from app.automations import triggers
from app.consent import suppression
from app.db import db
from app.db import insert_many
from app.errors import Problem
from app.models import AuditLog
from app.models import Contact
from app.models import ContactStatus
from app.models import Event
from app.models import EventType
from app.models import Suppression
from app.models import utcnow

PAGE_SIZE = 50
REASON_LABELS = {
    "manual": "Added by hand", "import": "Imported", "unsubscribed": "Unsubscribed",
    "bounced": "Bounced", "complained": "Complained", "erased": "Erased (GDPR)",
}
KIND_LABELS = {"email": "Address", "domain": "Domain"}
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_LINES = 200_000  # about 20 s of work in one request; larger files are split
SHOWN_ERRORS = 200  # per-line errors listed on the page; the rest are counted
CHUNK = 500  # entries written per transaction by an import
HEADER_WORDS = {"email", "e-mail", "email address", "address", "domain", "value", "emails", "domains"}


class ConsentError(Problem):
    """A refusal with a message for the person, tied to a form field when there is one."""


def audit(team, user, action, target="", **data):
    return AuditLog.create(team=team, user=user, action=action, target=target, data=data)


# --- Parsing ------------------------------------------------------------------

def parse_entry(text):
    """(kind, value) for an address or a domain as typed, normalised like contacts' addresses.

    "ann@example.com" is an address; "example.com" and "@example.com" are
    domains. Domains go through the same validator as addresses (as the
    part after an @), so "Bücher.de" and "xn--bcher-kva.de" hash alike and
    match the domain stored on contacts.
    """
    text = (text or "").strip().strip("<>\"' ").strip()
    if not text:
        raise ConsentError("Enter an email address or a domain.", field="value")
    if len(text) > 320:
        raise ConsentError("That is too long for an email address or a domain.", field="value")
    local, at, domain = text.rpartition("@")
    if at and local:
        try:
            return "email", addresses.normalise_email(text)
        except addresses.InvalidEmail as exc:
            raise ConsentError(f"“{text}” is not a valid email address: {exc}", field="value") from None
    domain = text.lstrip("@")
    if not domain or "@" in domain:
        raise ConsentError(f"“{text}” is neither an email address nor a domain.", field="value")
    try:
        return "domain", addresses.normalise_domain(domain)
    except addresses.InvalidEmail:
        raise ConsentError(f"“{text}” is not a valid domain (for example example.com).", field="value") from None


# --- Reading ------------------------------------------------------------------

def entries_page(team, before=None, size=PAGE_SIZE):
    """Newest entries first, walking by id: (entries, cursor of the next page or None)."""
    query = Suppression.select().where(Suppression.team == team)
    if before:
        query = query.where(Suppression.id < before)
    rows = list(query.order_by(Suppression.id.desc()).limit(size + 1))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].id if more else None)


def total(team):
    return Suppression.select().where(Suppression.team == team).count()


def check(team, text):
    """The entries that block an address (its own, its domain's) or a domain; [] when none."""
    kind, value = parse_entry(text)
    if kind == "email":
        return suppression.entries_for(team.id, value)
    return list(Suppression.select().where(
        (Suppression.team == team) & (Suppression.kind == "domain")
        & (Suppression.value_hash == suppression.value_hash(team.id, "domain", value))))


# --- Contacts follow the list -------------------------------------------------

def mark_contacts(team, kind, values, user=None, why="suppression list"):
    """Set active contacts with these addresses (or of these domains) to "suppressed", with an event each.

    Runs inside the caller's transaction. Contacts already unsubscribed,
    bounced or complained keep that more telling status: they are not
    mailed either way. Returns how many contacts changed.
    """
    if not values:
        return 0
    now = utcnow()
    data = Event.data.db_value({"from": "active", "to": "suppressed", "reason": why, "by": user.id if user else None})
    if kind == "email":
        # Look the addresses up without the status condition: with it, SQLite
        # (no ANALYZE statistics) prefers the (team, status, id) index and
        # walks every active contact of the team once per chunk, instead of
        # the unique (team, email) index that finds each address directly.
        rows = Contact.select(Contact.id, Contact.status).where((Contact.team == team) & (Contact.email << list(values)))
        ids = [contact_id for contact_id, status in rows.tuples() if status == ContactStatus.ACTIVE]
        if not ids:
            return 0
        events.write(db.cursor(), [(team.id, contact_id, None, EventType.STATUS_CHANGED.value, now, data)
                                   for contact_id in ids])
        triggers.contacts_stopped(ids, ContactStatus.SUPPRESSED, now)
        return Contact.update(status=ContactStatus.SUPPRESSED, updated_at=now).where(Contact.id << ids).execute()
    changed = 0
    for domain in values:
        # A whole domain can be 100,000 contacts: SQL does the work in two
        # statements (INSERT ... SELECT for the events, one UPDATE), on the
        # (team, domain) index.
        where = (Contact.team == team) & (Contact.domain == domain) & (Contact.status == ContactStatus.ACTIVE)
        rows = (Contact.select(Contact.team, Contact.id, Value(EventType.STATUS_CHANGED.value), Value(now),
                               Value(data)).where(where))
        events.record_from(rows)
        changed += Contact.update(status=ContactStatus.SUPPRESSED, updated_at=now).where(where).execute()
    return changed


# --- Changes ------------------------------------------------------------------

def add(team, user, text, reason="manual"):
    """Suppress an address or domain: (entry, was_new, contacts_marked). Adding it again changes nothing."""
    kind, value = parse_entry(text)
    with db.atomic():
        new = suppression.suppress(team.id, kind, value, reason=reason)
        entry = Suppression.get((Suppression.team == team) & (Suppression.kind == kind)
                                & (Suppression.value_hash == suppression.value_hash(team.id, kind, value)))
        marked = mark_contacts(team, kind, [value], user)
        if new or marked:
            audit(team, user, "suppression.added", f"suppression:{entry.id}", kind=kind, hint=entry.hint,
                  reason=reason, contacts_marked=marked)
    return entry, new, marked


def remove(team, user, entry, typed):
    """Remove an entry, given its exact address or domain (only its hash is stored).

    Contacts marked "suppressed" keep that status: whether they should be
    mailed again is a decision to take on each contact's page.
    """
    try:
        kind, value = parse_entry(typed)
    except ConsentError as exc:
        raise ConsentError(str(exc), field="confirm")
    if kind != entry.kind or suppression.value_hash(team.id, kind, value) != entry.value_hash:
        what = "address" if entry.kind == "email" else "domain"
        raise ConsentError(f"That is not the {what} behind “{entry.hint}”. Type it exactly to remove it.",
                           field="confirm")
    with db.atomic():
        Suppression.delete().where((Suppression.id == entry.id) & (Suppression.team == team)).execute()
        audit(team, user, "suppression.removed", f"suppression:{entry.id}", kind=entry.kind, hint=entry.hint,
              reason=entry.reason)
    return entry


def _insert_suppressions(rows):
    """Insert (team_id, kind, value_hash, hint, reason, created_at) rows, skipping entries already there,
    with one executemany (app.db.insert_many: peewee's insert_many builds SQL text per row, five times
    slower). Returns how many were added."""
    return insert_many([Suppression.team, Suppression.kind, Suppression.value_hash, Suppression.hint,
                        Suppression.reason, Suppression.created_at], ignore_conflicts=True).run(rows)


@dataclasses.dataclass
class ImportResult:
    lines: int = 0
    added: int = 0
    already: int = 0
    contacts_marked: int = 0
    rejected: int = 0
    errors: list = dataclasses.field(default_factory=list)  # (line number, text, message), the first SHOWN_ERRORS


def _decode(data):
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1", errors="replace")


def parse_import(data):
    """Read an uploaded file: ([(kind, value)], ImportResult with the per-line errors).

    One entry per line; in a CSV only the first column counts. Blank lines,
    lines starting with # and a header line ("email", "domain", ...) are
    skipped. Duplicates inside the file count once.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise ConsentError(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; split it into parts.",
                           field="file")
    text = _decode(data)
    result = ImportResult()
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if number > MAX_IMPORT_LINES:
            raise ConsentError(f"The file has more than {MAX_IMPORT_LINES:,} lines; split it into parts.",
                               field="file")
        cell = re.split(r"[,;\t]", line, maxsplit=1)[0].strip().strip("\"'").strip()
        if not cell or cell.startswith("#"):
            continue
        if number == 1 and cell.lower() in HEADER_WORDS:
            continue
        result.lines += 1
        try:
            kind, value = parse_entry(cell)
        except ConsentError as exc:
            result.rejected += 1
            if len(result.errors) < SHOWN_ERRORS:
                result.errors.append((number, cell[:200], str(exc)))
            continue
        entries.setdefault((kind, value), None)
    if not entries and not result.rejected:
        raise ConsentError("The file has no addresses or domains in it.", field="file")
    return list(entries), result


def import_entries(team, user, data):
    """Suppress every valid line of an uploaded text or CSV file; returns an ImportResult.

    Lines with errors are reported and skipped; the rest are written in
    transactions of CHUNK entries (each one with its contacts and events),
    so a long import never holds the write lock for long. Adding an entry
    twice changes nothing, so running an interrupted import again finishes it.
    """
    entries, result = parse_import(data)
    now = utcnow()
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start:start + CHUNK]
        rows = [(team.id, kind, suppression.value_hash(team.id, kind, value), suppression.hint(kind, value),
                 "import", now) for kind, value in chunk]
        with db.atomic():
            added = _insert_suppressions(rows)
            result.added += added
            result.already += len(chunk) - added
            emails = [value for kind, value in chunk if kind == "email"]
            domains = [value for kind, value in chunk if kind == "domain"]
            result.contacts_marked += mark_contacts(team, "email", emails, user, why="suppression import")
            result.contacts_marked += mark_contacts(team, "domain", domains, user, why="suppression import")
    audit(team, user, "suppression.imported", "suppression", lines=result.lines, added=result.added,
          already=result.already, rejected=result.rejected, contacts_marked=result.contacts_marked)
    return result
