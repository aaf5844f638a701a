"""The suppression list: addresses and whole domains a team must never mail.

Values are stored as keyed hashes (HMAC-SHA256 with the instance secret and
the team id), so the list survives erasure of the contact without keeping the
address itself: after a GDPR erasure the person is still never mailed again.
Every path that adds or (re)subscribes contacts checks here first.
"""
import hashlib
import hmac

from flask import current_app

from app.db import IdList
from app.models import Suppression


def normalise(kind, value):
    value = value.strip().lower()
    if kind == "domain":
        value = value.lstrip("@")
    return value


def value_hash(team_id, kind, value):
    return keyed_hash(team_id)(kind, normalise(kind, value))


def keyed_hash(team_id):
    """The team's hash of a normalised value: hash_of(kind, value) -> hex. The HMAC is keyed once and copied for each
    value, a third cheaper than keying it again (a welcome burst's batch hashes every address it sends to)."""
    keyed = hmac.new(current_app.config["SECRET_KEY"].encode(), digestmod=hashlib.sha256)

    def hash_of(kind, value):
        one = keyed.copy()
        one.update(f"{team_id}:{kind}:{value}".encode())
        return one.hexdigest()
    return hash_of


def hint(kind, value):
    """A short, non-identifying reminder for the UI ('j…@example.com')."""
    value = normalise(kind, value)
    if kind == "domain":
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}…@{domain}"


def suppress(team_id, kind, value, reason="manual"):
    """Add an email or domain; adding one twice is harmless. Returns True when it was new."""
    if kind not in ("email", "domain"):
        raise ValueError("kind must be 'email' or 'domain'")
    inserted = (Suppression.insert(team=team_id, kind=kind, value_hash=value_hash(team_id, kind, value),
                                   hint=hint(kind, value), reason=reason)
                .on_conflict_ignore().as_rowcount().execute())
    # The row count, not the last rowid: SQLite keeps reporting the previous
    # insert's rowid when the conflict is ignored.
    return bool(inserted)


def _listed(team_id, hashes):
    """The team's rows with one of these hashes. Both kinds are named, though a hash can only be of its own kind (the
    kind is part of what is hashed): without them the (team, kind, value_hash) index is read by the team alone,
    every row of the team's list for each lookup (SQLite's plan, checked)."""
    return ((Suppression.team == team_id) & Suppression.kind.in_(("email", "domain"))
            & (Suppression.value_hash << IdList(hashes)))


def is_suppressed(team_id, email):
    """True when the address, or its domain, is on the team's suppression list."""
    email = normalise("email", email)
    domain = email.rpartition("@")[2]
    hashes = [value_hash(team_id, "email", email), value_hash(team_id, "domain", domain)]
    return Suppression.select().where(_listed(team_id, hashes)).exists()


def suppressed_among(team_id, emails):
    """Which of these addresses (normalised) the team's list blocks, by their own entry or their domain's: one
    indexed query for a batch (a welcome burst's part), where a Checker reads the team's whole list."""
    emails = set(emails)
    if not emails:
        return set()
    hash_of = keyed_hash(team_id)
    own = {email: hash_of("email", email) for email in emails}
    domains = {domain: hash_of("domain", domain) for domain in {e.rpartition("@")[2] for e in emails}}
    found = {found_hash for (found_hash,) in Suppression.select(Suppression.value_hash).where(
        _listed(team_id, [*own.values(), *domains.values()])).tuples()}
    if not found:
        return set()
    return {email for email in emails if own[email] in found or domains[email.rpartition("@")[2]] in found}


class Checker:
    """Bulk membership test for imports: loads the team's hashes once, then
    answers per address without a query (a million rows cannot afford one each)."""

    def __init__(self, team_id):
        self._hash = keyed_hash(team_id)
        rows = Suppression.select(Suppression.kind, Suppression.value_hash).where(Suppression.team == team_id)
        self.emails = set()
        self.domains = set()
        for row in rows.tuples():
            (self.emails if row[0] == "email" else self.domains).add(row[1])

    def __call__(self, email):
        """`email` must already be normalised (lower-case)."""
        if not self.emails and not self.domains:
            return False
        if self.emails and self._hash("email", email) in self.emails:
            return True
        return bool(self.domains) and self._hash("domain", email.rpartition("@")[2]) in self.domains


def entries_for(team_id, email):
    """The suppression rows that block `email`: its own and its domain's (0, 1 or 2)."""
    email = normalise("email", email)
    domain = email.rpartition("@")[2]
    hashes = [value_hash(team_id, "email", email), value_hash(team_id, "domain", domain)]
    return list(Suppression.select().where(_listed(team_id, hashes)).order_by(Suppression.kind.desc()))
