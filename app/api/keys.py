"""API keys of a team: create, authenticate, revoke, list.

A key is "loft_" followed by 43 random URL-safe characters; it is shown once, when it is made, and
kept only as tokens.api_key_digest() plus its first PREFIX_LENGTH characters (to tell keys apart in
a list). A key acts with one team role, and the permission table decides what that role may do,
exactly as for a member. Every function takes the team first, so another team's key is not found.
Bad input raises ApiKeyError with the field it is about.
"""
import datetime
import re
import secrets
import threading

from peewee import JOIN
from peewee import fn

from app import tokens
from app.db import db
from app.errors import Problem
from app.models import ROLE_LABELS
from app.models import ROLES
from app.models import ApiKey
from app.models import AuditLog
from app.models import Team
from app.models import User
from app.models import utcnow

KEY_PREFIX = "loft_"
PREFIX_LENGTH = 12
KEY_PATTERN = re.compile(r"loft_[A-Za-z0-9_-]{43}")
NAME_MAX = 100
MAX_LIVE_KEYS = 100
# authenticate() runs on every API request; writing last_used_at each time would turn every read into
# a write (and a lock on SQLite). Once a minute is as exact as "last used" needs to be.
LAST_USED_EVERY = datetime.timedelta(minutes=1)
# A key found by its digest is remembered by this process for KEY_CACHE_SECONDS, so a request costs no
# lookup (about a fifth of an API read's time). Revoking a key forgets it here at once; another web
# process goes on accepting it until its copy expires, so a revocation takes effect everywhere within
# KEY_CACHE_SECONDS. Only keys that were found are remembered: an unknown key is looked up every time,
# and counted against its address (app.api.ratelimit.failed_sign_in).
KEY_CACHE_SECONDS = 5
_KEY_CACHE_MAX = 10_000


class ApiKeyError(Problem):
    """A refusal about an API key; `status` is the HTTP status the API answers with."""
    status = 422


class ApiKeyNotFound(ApiKeyError):
    status = 404


def new_raw_key():
    return KEY_PREFIX + secrets.token_urlsafe(32)


def role_from(text):
    """The stored role for a role's value or label ("manager", "Manager"), else ApiKeyError."""
    wanted = (text or "").strip().lower()
    for role in ROLES:
        if wanted in (role, ROLE_LABELS[role].lower()):
            return role
    choices = ", ".join(ROLE_LABELS[role] for role in ROLES)
    raise ApiKeyError(f"Choose one of the roles: {choices}.", "role")


def clean_name(name):
    name = (name or "").strip()
    if not name:
        raise ApiKeyError("Give the key a name, e.g. the app or script that will use it.", "name")
    if len(name) > NAME_MAX:
        raise ApiKeyError(f"Keep the name under {NAME_MAX} characters.", "name")
    return name


def create_key(team, *, name, role, created_by=None):
    """A new live key for `team`: (ApiKey, the raw key). The raw key exists only in this return value."""
    name = clean_name(name)
    role = role_from(role)
    raw_key = new_raw_key()
    with db.atomic():
        live = ApiKey.select().where((ApiKey.team == team) & ApiKey.revoked_at.is_null()).count()
        if live >= MAX_LIVE_KEYS:
            raise ApiKeyError(f"A team can have at most {MAX_LIVE_KEYS} keys in use; revoke one first.", "name")
        key = ApiKey.create(team=team, name=name, role=role, prefix=raw_key[:PREFIX_LENGTH],
                            key_hash=tokens.api_key_digest(raw_key), created_by=created_by)
        audit(team, created_by, "api_key.created", key, role=role)
    return key, raw_key


class _KnownKeys:
    """The keys this process found lately: digest -> (when the copy expires, the key's row, its team's row).
    A request gets model instances of its own, built from the rows, so nothing one request changes on
    g.api_key or g.team reaches the next."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}

    def get(self, digest, now):
        entry = self.entries.get(digest)
        if entry is None or entry[0] <= now or entry[0] - now > _KEY_CACHE_LIFE:
            return None  # expired, or the clock went back: look it up again
        key = ApiKey(**entry[1])
        key.team = Team(**entry[2])
        return key

    def put(self, digest, key, now):
        with self.lock:
            if len(self.entries) >= _KEY_CACHE_MAX:
                self.entries = {d: e for d, e in self.entries.items() if e[0] > now}
                if len(self.entries) >= _KEY_CACHE_MAX:
                    self.entries.clear()
            self.entries[digest] = (now + _KEY_CACHE_LIFE, dict(key.__data__), dict(key.team.__data__))

    def used(self, digest, moment):
        entry = self.entries.get(digest)
        if entry is not None:
            entry[1]["last_used_at"] = moment

    def forget(self, key_hash):
        with self.lock:
            self.entries.pop(key_hash, None)

    def clear(self):
        with self.lock:
            self.entries.clear()


_KEY_CACHE_LIFE = datetime.timedelta(seconds=KEY_CACHE_SECONDS)
known_keys = _KnownKeys()


def known_key(raw_key, now=None):
    """The live key `raw_key` is when this process found it within KEY_CACHE_SECONDS, else None (not
    known here: authenticate() looks it up)."""
    if not isinstance(raw_key, str) or not KEY_PATTERN.fullmatch(raw_key):
        return None
    now = now or utcnow()
    key = known_keys.get(tokens.api_key_digest(raw_key), now)
    if key is not None:
        _touch_known(key, now)
    return key


def authenticate(raw_key, now=None):
    """The live ApiKey (with its team loaded) that `raw_key` is, else None (unknown, malformed, revoked).

    The process's copy when it has one (known_key), else one lookup by the unique digest; last_used_at is
    written at most once per LAST_USED_EVERY."""
    if not isinstance(raw_key, str) or not KEY_PATTERN.fullmatch(raw_key):
        return None
    now = now or utcnow()
    digest = tokens.api_key_digest(raw_key)
    key = known_keys.get(digest, now)
    if key is None:
        key = ApiKey.select(ApiKey, Team).join(Team).where(ApiKey.key_hash == digest).get_or_none()
        if key is None or key.revoked_at is not None:
            return None
        known_keys.put(digest, key, now)
    _touch_known(key, now)
    return key


def _touch_known(key, now):
    """touch(), then remember the use in the process's copy: written by this process or, when the UPDATE
    found it already recent, by another one within the minute, so no UPDATE is tried again before the
    minute is over."""
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_EVERY:
        touch(key, now)
        key.last_used_at = now
        known_keys.used(key.key_hash, now)


def touch(key, now=None):
    """Record that `key` was used now, unless that was recorded less than LAST_USED_EVERY ago.

    The condition is in the UPDATE itself, so several workers serving the same key in the same minute
    write once between them."""
    now = now or utcnow()
    stale = now - LAST_USED_EVERY
    if key.last_used_at is not None and key.last_used_at > stale:
        return False
    written = (ApiKey.update(last_used_at=now)
               .where((ApiKey.id == key.id)
                      & (ApiKey.last_used_at.is_null() | (ApiKey.last_used_at <= stale)))
               .execute())
    if written:
        key.last_used_at = now
    return bool(written)


def find_team(text):
    """The team named `text`, or with `text` as its id (the CLI's --team), else ApiKeyError."""
    text = (str(text) if text is not None else "").strip()
    if not text:
        raise ApiKeyError("Name the team (its name or id).", "team")
    if text.isdigit():
        team = Team.get_or_none(Team.id == int(text))
        if team is not None:
            return team
    teams = list(Team.select().where(fn.LOWER(Team.name) == text.lower()).order_by(Team.id))
    if not teams:
        raise ApiKeyError(f"There is no team named or numbered {text!r}.", "team")
    if len(teams) > 1:
        ids = ", ".join(str(team.id) for team in teams)
        raise ApiKeyError(f"Several teams are named {text!r}; give the id of the one you mean: {ids}.", "team")
    return teams[0]


def key_by_id(key_id):
    """Any team's key with this id (for the instance operator's CLI), else ApiKeyNotFound."""
    key = ApiKey.get_or_none(ApiKey.id == key_id) if str(key_id).isdigit() else None
    if key is None:
        raise ApiKeyNotFound(f"There is no API key with the id {key_id}.", "id")
    return key


def get_key(team, key_id):
    """The team's key with this id, else ApiKeyNotFound (another team's id included)."""
    try:
        key_id = int(key_id)
    except (TypeError, ValueError):
        key_id = None
    key = None
    if key_id is not None:
        key = ApiKey.get_or_none((ApiKey.id == key_id) & (ApiKey.team == team))
    if key is None:
        raise ApiKeyNotFound("There is no such API key in this team.", "id")
    return key


def revoke_key(team, key_id, *, revoked_by=None):
    """Revoke the team's key `key_id` for good (ApiKeyNotFound for another team's id). Revoking a
    revoked key changes nothing, so a repeated click is harmless."""
    with db.atomic():
        key = get_key(team, key_id)
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            ApiKey.update(revoked_at=key.revoked_at).where(ApiKey.id == key.id).execute()
            audit(team, revoked_by, "api_key.revoked", key)
    known_keys.forget(key.key_hash)  # other processes within KEY_CACHE_SECONDS
    return key


def team_keys(team):
    """Every key of the team, newest first; a revoked one has revoked_at set (key.revoked)."""
    return list(ApiKey.select(ApiKey, User).join(User, JOIN.LEFT_OUTER, on=(ApiKey.created_by == User.id))
                .where(ApiKey.team == team).order_by(ApiKey.id.desc()))


def audit(team, user, action, key, **data):
    return AuditLog.create(team=team, user=getattr(user, "id", user), action=action,
                           target=f"api_key:{key.id}", data={"name": key.name, "prefix": key.prefix, **data})
