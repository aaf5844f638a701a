"""SMTP accounts: the servers and logins a team sends its campaigns through.

Passwords are stored encrypted (app.security.encrypt, key from the
environment) and are decrypted only by smtp_client.smtp_options(), which
the sending engine passes straight to aiosmtplib. Reaching the server (the
guarded client, the connection test) is app/senders/smtp_client.py.

The sending engine (app.sending.engine) uses:
  active_accounts(team_id)          accounts it may send through right now (campaigns leave the one
                                    marked for transactional mail alone while there is another)
  transactional_accounts(team_id)   accounts transactional mail may go through, the marked ones first
  Rotation / pick_account           weighted choice that respects each account's caps
  is_account_limit_reply(code, msg) "the account hit its own limit", not the recipient's fault
  pause_account / resume_account
The account pages show sent_counts(account_ids), messages sent per account in the last hour and day;
the engine's runs hold the hourly and daily caps with permits (app/sending/shares.py).
"""
import datetime
import random
import re

from peewee import fn

from app import security
from app.db import count_where
from app.errors import Problem
from app.models import TLS_MODES
from app.models import Send
from app.models import SmtpAccount
from app.models import TxMessage
from app.models import utcnow
from app.senders import health
from app.senders import mailservers
from app.senders import warmup

LIMIT_FIELDS = ("per_second", "per_hour", "per_day", "max_connections", "weight")


class AccountError(Problem):
    """Form errors, one message per field name."""


# --- Reading ----------------------------------------------------------------

def list_accounts(team):
    return list(SmtpAccount.select().where(SmtpAccount.team == team).order_by(SmtpAccount.name, SmtpAccount.id))


def get_account(team, account_id):
    """The team's account, or None (another team's id is simply not found)."""
    return SmtpAccount.get_or_none((SmtpAccount.id == account_id) & (SmtpAccount.team == team))


def is_usable(account, now=None):
    """Active, or paused with a pause that has run out (a timed pause lifts itself)."""
    now = now or utcnow()
    if account.status == "active":
        return account.paused_until is None or account.paused_until <= now
    return account.status == "paused" and account.paused_until is not None and account.paused_until <= now


def active_accounts(team_id):
    """The accounts campaigns (and team mail) may send through now, in a stable order.

    An account marked "Use for transactional mail" is left out while the team has any other account, even a
    paused one: a newsletter's volume and complaints would otherwise land on the reputation receipts and
    password resets depend on, and a paused main account pauses the campaign rather than spilling it onto
    the transactional one. A team whose only account is marked sends everything through it."""
    now = utcnow()
    rows = list(SmtpAccount.select()
                .where((SmtpAccount.team == team_id) & (SmtpAccount.status.in_(("active", "paused"))))
                .order_by(SmtpAccount.id))
    if any(not account.transactional for account in rows):
        rows = [account for account in rows if not account.transactional]
    return [account for account in rows if is_usable(account, now)]


def transactional_accounts(team_id):
    """The accounts transactional mail may go through now: those marked "Use for transactional mail" first,
    then the others, each group in a stable order."""
    now = utcnow()
    rows = (SmtpAccount.select()
            .where((SmtpAccount.team == team_id) & (SmtpAccount.status.in_(("active", "paused"))))
            .order_by(SmtpAccount.transactional.desc(), SmtpAccount.id))
    return [account for account in rows if is_usable(account, now)]


def form_values(account):
    """An account as form data: everything except the password."""
    values = {k: v for k, v in account.__data__.items() if k != "password"}
    values["warmup"] = account.warmup_started_on is not None
    return values


def preset_values(preset):
    values = {k: v for k, v in mailservers.SMTP_PRESETS[preset].items() if k not in ("label", "note")}
    values.update(preset=preset, name=mailservers.SMTP_PRESETS[preset]["label"] if preset != "generic" else "", username="")
    values.setdefault("warmup_first_day", SmtpAccount.warmup_first_day.default)
    values.setdefault("warmup_growth_percent", SmtpAccount.warmup_growth_percent.default)
    values.setdefault("warmup_preset", SmtpAccount.warmup_preset.default)
    return values


# --- Limits in words ----------------------------------------------------------

def _count(n, one, many):
    return f"{n:,} {one if n == 1 else many}"


def limits_in_words(account):
    """E.g. 'up to 1,000 messages a day, 2 connections at a time'."""
    rates = []
    for field, unit in (("per_second", "a second"), ("per_hour", "an hour"), ("per_day", "a day")):
        value = getattr(account, field) if not isinstance(account, dict) else account.get(field, 0)
        if value:
            rates.append(f"{_count(value, 'message', 'messages')} {unit}")
    connections = account.max_connections if not isinstance(account, dict) else account.get("max_connections", 1)
    parallel = f"{_count(connections, 'connection', 'connections')} at a time"
    if not rates:
        return f"no rate limit, {parallel}"
    return "up to " + ", ".join(rates) + ", " + parallel


def warmup_in_words(account):
    """'Warming up: day 3, 112 messages today, full volume in about 6 days', or '' when it is not warming up."""
    return warmup.in_words(account)


def warmup_plan_in_words(account):
    """The account's warm-up plan itself: 'Doubles daily from 50 to 800 a day (5 days)', or ''."""
    return warmup.describe(account)


def daily_cap_today(account):
    """The most the account may send in today's 24 hours: its daily limit, or less while it warms up; 0 = none."""
    return warmup.daily_cap(account)


def held_by_warmup(team_id, now=None):
    """[(account, today's warm-up cap)] when every account the team may send through has used up its
    warm-up cap for today (the last 24 hours' sends), else []: a sending campaign waits for tomorrow."""
    now = now or utcnow()
    usable = active_accounts(team_id)
    caps = {account.id: warmup.limit(account, now.date()) for account in usable}
    if not usable or None in caps.values():
        return []
    counts = sent_counts(list(caps), now)
    if any(counts.get(account_id, {}).get("day", 0) < cap for account_id, cap in caps.items()):
        return []
    return [(account, caps[account.id]) for account in usable]


def paused_in_words(team_id):
    """Why none of the team's accounts can send, for the reason of a campaign the engine pauses."""
    paused = list(SmtpAccount.select().where((SmtpAccount.team == team_id) & (SmtpAccount.status == "paused")))
    if not paused:
        return "Add one under Sending › SMTP accounts, then resume the campaign."
    parts = []
    for account in paused:
        until = f" until {account.paused_until:%Y-%m-%d %H:%M} UTC" if account.paused_until else ""
        parts.append(f"“{account.name}” is paused{until}: {account.paused_reason or 'no reason given'}")
    return "; ".join(parts) + ". Resume the campaign once an account can send again."


def last_test(account):
    """The stored result of the last "Test connection": {"ok", "summary"} or None."""
    result = account.last_test_result
    if not result:
        return None
    return result if isinstance(result, dict) else {"ok": False, "summary": str(result)}


def never_connected(accounts):
    """Those of `accounts` that never passed "Test connection" and never carried a message."""
    result = []
    for account in accounts:
        test = last_test(account) or {}
        if not test.get("ok") and account.connected_at is None:
            result.append(account)
    return result


def failed_last_test(accounts):
    """Those of `accounts` whose last "Test connection" failed and that never connected since."""
    result = []
    for account in accounts:
        test = last_test(account)
        if test is not None and not test.get("ok") and (account.connected_at is None
                                                        or account.connected_at < account.last_test_at):
            result.append(account)
    return result


# --- Validation and writes -----------------------------------------------------

def _whole_number(form, field, label, errors, minimum=0, maximum=10_000_000):
    raw = str(form.get(field, "")).strip().replace(",", "").replace("_", "")
    if raw == "" and minimum == 0:
        return 0
    try:
        value = int(raw)
    except ValueError:
        errors[field] = f"{label}: enter a whole number" + (" (0 means no limit)." if minimum == 0 else ".")
        return None
    if value < minimum:
        errors[field] = f"{label}: enter {minimum} or more."
    elif value > maximum:
        errors[field] = f"{label}: enter at most {maximum:,}."
    return value


whole_number = _whole_number  # the forms' number parser, for the sender domain's warm-up plan too


def validate(form, account=None, allow_private=None):
    """Clean the account form; raise AccountError with a message per field.

    Returns (values, warnings). An empty password keeps the stored one when
    editing; a new account with a user name needs a password. Hosts on this
    machine or a private network need the instance setting "private mail
    servers" (allow_private=None reads it; tests may pass True or False).
    """
    errors = {}
    preset = form.get("preset") or (account.preset if account else "generic")
    if preset not in mailservers.SMTP_PRESETS:
        preset = "generic"
    values = {
        "preset": preset,
        "name": form.get("name", "").strip(),
        "host": form.get("host", "").strip().lower(),
        "tls_mode": form.get("tls_mode", ""),
        "username": form.get("username", "").strip(),
        "transactional": bool(form.get("transactional")),
    }
    if not values["name"]:
        errors["name"] = "Give the account a name, e.g. “iCloud (ada@icloud.com)”."
    elif len(values["name"]) > 100:
        errors["name"] = "Keep the name under 100 characters."
    if problem := mailservers.host_field_error(values["host"], "smtp", allow_private):
        errors["host"] = problem
    values["port"] = _whole_number(form, "port", "Port", errors, minimum=1, maximum=65535)
    if "port" in errors:
        errors["port"] = "Enter a port number between 1 and 65535 (587 for STARTTLS, 465 for implicit TLS)."
    if values["tls_mode"] not in TLS_MODES:
        errors["tls_mode"] = "Choose how the connection is encrypted."
    elif values["tls_mode"] == "none" and values["host"] and not mailservers.is_loopback(values["host"]):
        errors["tls_mode"] = ("Without TLS the password and every message cross the network in clear text, so "
                              "“None” is only allowed for a server on this machine (localhost or 127.0.0.1). "
                              "Use STARTTLS (port 587) or implicit TLS (port 465).")
    if len(values["username"]) > 254:
        errors["username"] = "That user name is too long."
    labels = {"per_second": "Messages per second", "per_hour": "Messages per hour", "per_day": "Messages per day",
              "max_connections": "Connections at a time", "weight": "Weight"}
    for field in LIMIT_FIELDS:
        minimum = 1 if field in ("max_connections", "weight") else 0
        maximum = {"max_connections": 100, "weight": 1000}.get(field, 10_000_000)
        value = _whole_number(form, field, labels[field], errors, minimum=minimum, maximum=maximum)
        if field not in errors:
            values[field] = value
    values.update(warmup.start_values(form, account, errors, _whole_number))
    password = form.get("password", "")
    if len(password) > 1024:
        errors["password"] = "That password is too long."
    elif password:
        values["password"] = security.encrypt(password)
    elif values["username"] and (account is None or not account.password):
        errors["password"] = "Enter the password for this user name" + (
            " (an app-specific password for iCloud)." if preset == "icloud" else ".")
    if errors:
        raise AccountError(errors=errors)
    if not values["username"]:
        values["password"] = ""  # no login, nothing to keep
    warnings = []
    if values["warmup_started_on"] and values["per_day"] and values["warmup_first_day"] >= values["per_day"]:
        warnings.append(f"The warm-up's first day ({values['warmup_first_day']:,} messages) already reaches the daily "
                        f"limit ({values['per_day']:,}), so it holds nothing back: lower the first day's volume.")
    if preset == "icloud" and (values["per_day"] == 0 or values["per_day"] > mailservers.ICLOUD_DAILY_CAP):
        warnings.append(f"iCloud Mail allows about {mailservers.ICLOUD_DAILY_CAP:,} messages a day; above that it refuses "
                        "mail until the next day. Loft then pauses the account, but keeping the limit at "
                        f"{mailservers.ICLOUD_DAILY_CAP:,} or less avoids the refusals.")
    if preset == "icloud" and values["host"] != mailservers.SMTP_PRESETS["icloud"]["host"]:
        warnings.append(f"iCloud Mail's server is {mailservers.SMTP_PRESETS['icloud']['host']}; check the host name.")
    return values, warnings


def create_account(team, form, allow_private=None):
    """Validate and store a new account; returns (account, warnings)."""
    values, warnings = validate(form, allow_private=allow_private)
    account = SmtpAccount.create(team=team, **values)
    return account, warnings


def update_account(account, form, allow_private=None):
    """Validate and save changes; an empty password field keeps the stored password.

    The host is checked again even when unchanged: its name may resolve elsewhere now.
    """
    values, warnings = validate(form, account, allow_private=allow_private)
    changed_connection = any(values.get(k) != getattr(account, k) for k in ("host", "port", "tls_mode", "username"))
    if changed_connection or "password" in values:
        values.update(last_test_at=None, last_test_result={})  # the old test no longer says anything
    SmtpAccount.update(**values).where(SmtpAccount.id == account.id).execute()
    return SmtpAccount.get_by_id(account.id), warnings


def delete_account(account):
    """Delete the account; sends that went through it keep their history (smtp_account becomes NULL)."""
    account.delete_instance()


def pause_account(account_id, reason, until=None):
    """Stop sending through an account, with the reason in words; `until` (UTC) lifts it automatically."""
    return (SmtpAccount.update(status="paused", paused_reason=reason, paused_until=until)
            .where(SmtpAccount.id == account_id).execute())


def resume_account(account_id):
    return (SmtpAccount.update(status="active", paused_reason="", paused_until=None)
            .where(SmtpAccount.id == account_id).execute())


def record_test(account, ok, summary):
    """Keep the outcome of the last "Test connection" for the accounts list."""
    (SmtpAccount.update(last_test_at=utcnow(), last_test_result={"ok": ok, "summary": summary})
     .where(SmtpAccount.id == account.id).execute())
    if ok:  # it answers now: the card and campaigns stop saying they wait for it
        health.record_ok(account.id)


# --- Limits and rotation ---------------------------------------------------------

def is_account_limit_reply(code, message):
    """True when an SMTP reply means the *account* hit its own sending limit.

    Such a refusal must pause the account, never mark the recipient bounced.
    A full recipient mailbox ("over quota", 5.2.2) is the recipient's problem
    and is not matched.
    """
    text = f"{code} {message or ''}".lower()
    if "mailbox" in text or re.search(r"\b[45]\.2\.2\b", text) or "over quota" in text:
        return False
    phrases = (
        "daily sending limit",  # iCloud: 550 5.7.1 ... You have exceeded your daily sending limit
        "sending limit",
        "smtp relay limit",  # Google Workspace: 550 5.4.5 Daily SMTP relay limit exceeded / 450 4.2.1 Peak SMTP relay limit
        "daily user sending limit",  # Gmail: 550 5.4.5 Daily user sending limit exceeded
        "submissionquotaexceeded",  # Outlook: 554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException
        "message quota exceeded",  # Amazon SES: 454 Throttling failure: Daily message quota exceeded
        "sending quota",
        "sending rate exceeded",  # Amazon SES: 454 Throttling failure: Maximum sending rate exceeded
        "throttling failure",
        "unusual sending activity",  # Zoho: 550 5.4.6 Unusual sending activity detected
        "too many messages",
        "rate limit exceeded",
        "maximum credits exceeded",  # SendGrid
    )
    return any(phrase in text for phrase in phrases)


def pause_for_limit_reply(account, code, message, now=None):
    """Pause an account that answered with is_account_limit_reply(); returns the UTC time it resumes.

    A daily cap pauses it for 24 hours (providers count a rolling day), any
    other rate or peak limit for 15 minutes. The reason keeps the server's words.
    """
    now = now or utcnow()
    daily = "daily" in (message or "").lower() or "quota" in (message or "").lower()
    until = now + (datetime.timedelta(hours=24) if daily else datetime.timedelta(minutes=15))
    reason = (f"{account.host} refused more mail from this account: {code} {message}".strip()
              + f" Sending through it resumes by itself at {until:%Y-%m-%d %H:%M} UTC.")
    pause_account(account.id, reason, until=until)
    return until


def sent_counts(account_ids, now=None):
    """Messages sent through each account in the last hour and the last 24 hours, campaigns' and
    transactional ones together.

    {account_id: {"hour": n, "day": n}}; accounts with none are left out.
    A rolling 24 hours is stricter than a calendar day, so it never overshoots a provider's daily cap.
    """
    if not account_ids:
        return {}
    now = now or utcnow()
    counts = {}
    for query in (_sent_counts_query(account_ids, now), _tx_counts_query(account_ids, now)):
        for account_id, day, hour in query.tuples():
            found = counts.setdefault(account_id, {"day": 0, "hour": 0})
            found["day"] += int(day or 0)
            found["hour"] += int(hour or 0)
    return counts


def _sent_counts_query(account_ids, now):
    # An index range scan on send(smtp_account_id, sent_at) (migration 0011).
    in_hour = count_where(Send.sent_at >= now - datetime.timedelta(hours=1))
    return (Send.select(Send.smtp_account, fn.COUNT(Send.id).alias("day"), in_hour.alias("hour"))
            .where(Send.smtp_account.in_(list(account_ids)) & (Send.sent_at >= now - datetime.timedelta(days=1)))
            .group_by(Send.smtp_account))


def _tx_counts_query(account_ids, now):
    # Transactional messages count against the account's caps too (tx_message(smtp_account_id, sent_at)).
    in_hour = count_where(TxMessage.sent_at >= now - datetime.timedelta(hours=1))
    return (TxMessage.select(TxMessage.smtp_account, fn.COUNT(TxMessage.id).alias("day"), in_hour.alias("hour"))
            .where(TxMessage.smtp_account.in_(list(account_ids))
                   & (TxMessage.sent_at >= now - datetime.timedelta(days=1)))
            .group_by(TxMessage.smtp_account))


def has_capacity(account, used):
    """Whether one more message may go through `account` given what it has used.

    `used` is a mapping with any of: second, hour, day (messages in that window)
    and connections (open now). A limit of 0 means no limit.
    """
    for field, key in (("per_second", "second"), ("per_hour", "hour"), ("per_day", "day")):
        cap = getattr(account, field)
        if cap and used.get(key, 0) >= cap:
            return False
    return used.get("connections", 0) < max(account.max_connections, 1)


def pick_account(accounts, usage, rng=random):
    """A weighted random choice among the accounts with capacity left, or None when all are full.

    `usage` maps account id -> the `used` mapping of has_capacity().
    """
    candidates = [a for a in accounts if has_capacity(a, usage.get(a.id, {}))]
    if not candidates:
        return None
    return rng.choices(candidates, weights=[max(a.weight, 1) for a in candidates])[0]


class Rotation:
    """Smooth weighted round-robin across accounts (the nginx algorithm).

    Deterministic and evenly interleaved: weights 3 and 1 give A A B A, A A B A...
    Accounts without capacity are skipped, and the others share their turn.
    """

    def __init__(self, accounts):
        self.accounts = list(accounts)
        self.current = {a.id: 0 for a in self.accounts}

    def pick(self, usage=None):
        usage = usage or {}
        candidates = [a for a in self.accounts if has_capacity(a, usage.get(a.id, {}))]
        if not candidates:
            return None
        total = 0
        for account in candidates:
            self.current[account.id] += max(account.weight, 1)
            total += max(account.weight, 1)
        best = max(candidates, key=lambda a: self.current[a.id])
        self.current[best.id] -= total
        return best

