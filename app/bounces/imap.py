"""Bounce mailboxes: the IMAP inboxes where bounces and complaints come back.

    list_mailboxes(team)                               the team's mailboxes (a page loads one with team_object_or_404)
    create_mailbox(team, form) / update_mailbox(...)   validated; passwords stored encrypted
    test_connection(mailbox) -> (ok, transcript)      really logs in and counts the folder's messages
    check_mailbox(mailbox_id) -> summary dict         reads new messages, applies bounces and complaints
    enabled_ids()                                      the mailboxes the periodic task checks

How a check reads the mailbox (imaplib, the real protocol):
  * Messages are looked at once: the mailbox keeps the folder's UIDVALIDITY and the highest UID
    looked at (last_uid), and each run asks for `UID SEARCH UID <last_uid+1>:*` only. At most
    LOFT_BOUNCE_CHECK_LIMIT messages per run, the oldest first, so one huge mailbox cannot stall
    the worker; the next run carries on where this one stopped.
  * Bounces, complaints and auto-replies are applied (app.bounces.outcomes) and then MOVED to the
    processed folder (created when missing): UID MOVE when the server offers MOVE, else UID COPY,
    \\Deleted and (UID) EXPUNGE. Nothing is deleted outright.
  * DMARC aggregate reports (a receiver's rua mail with the report attached) are stored through
    app.deliverability.dmarc.store (once per report, however often it arrives) and moved too.
  * Every other message (a person's reply, a newsletter, something the parser cannot read) is LEFT
    where it is and counted: with iCloud the bounce mailbox is the person's own inbox, and Loft must
    not take their mail away. last_uid means it is not read again.
  * A message is moved only after its report was applied, and last_uid advances only after a batch
    is done: a run that dies half-way reads the batch again next time (applying is idempotent).
  * Any failure (login refused, connection refused, TLS, a command the server refused) ends the run
    for this mailbox only and is stored in last_error with the server's own words.
"""
import imaplib
import re
import socket
import ssl

from flask import current_app

from app import netguard
from app import security as crypto
from app.notices import alerts
from app.bounces import outcomes
from app.bounces.parse import parse_message
from app.deliverability.dmarc import store as dmarc_store
from app.deliverability.dmarc.parse import DmarcError
from app.errors import Problem
from app.models import BounceMailbox
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import accounts
from app.senders import mailservers

CONNECT_TIMEOUT = 20  # seconds per network operation
TEST_TIMEOUT = 15  # "Test connection" runs inside a web request
BATCH = 50  # messages fetched per UID FETCH
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # a bounce carries one message; anything bigger is left unread
DEFAULT_LIMIT = 500
FOLDER_NAME = re.compile(r"^[\x20-\x7e]{1,200}$")


class MailboxError(Problem):
    """Form errors, one message per field name."""


class ImapError(Problem):
    """A refusal or failure, already in words (with the server's reply)."""


# --- Reading ----------------------------------------------------------------------

def list_mailboxes(team):
    return list(BounceMailbox.select().where(BounceMailbox.team == team).order_by(BounceMailbox.name,
                                                                                  BounceMailbox.id))


def enabled_ids():
    return [m.id for m in BounceMailbox.select(BounceMailbox.id).where(BounceMailbox.enabled == True)]  # noqa: E712


def last_summary(mailbox):
    summary = mailbox.last_summary
    return summary if isinstance(summary, dict) else {}


def summary_in_words(summary):
    """E.g. '3 bounces, 1 complaint, 1 auto-reply moved; 2 other messages left in place'."""
    if not summary:
        return ""
    def n(key, one, many):
        value = summary.get(key, 0)
        return f"{value:,} {one if value == 1 else many}" if value else ""
    handled = ", ".join(x for x in (n("bounces", "bounce", "bounces"), n("complaints", "complaint", "complaints"),
                                    n("auth_reports", "authentication-failure report", "authentication-failure reports"),
                                    n("auto_replies", "auto-reply", "auto-replies"),
                                    n("dmarc_reports", "DMARC report", "DMARC reports"),
                                    n("dmarc_duplicates", "DMARC report already stored",
                                      "DMARC reports already stored")) if x)
    parts = [f"{handled} moved to {summary.get('processed_folder', 'the processed folder')}" if handled
             else "no new bounces"]
    if summary.get("unmatched"):
        parts.append(n("unmatched", "report matched no send of this team", "reports matched no send of this team"))
    if summary.get("other"):
        parts.append(n("other", "other message left in place", "other messages left in place"))
    if summary.get("unreadable"):
        parts.append(n("unreadable", "message could not be fetched (left in place)",
                       "messages could not be fetched (left in place)"))
    if summary.get("too_large"):
        parts.append(n("too_large", "message over 10 MB left in place", "messages over 10 MB left in place"))
    if summary.get("remaining"):
        parts.append(f"{summary['remaining']:,} more waiting for the next check")
    return "; ".join(parts) + "."


def smtp_accounts(team):
    return list(SmtpAccount.select().where(SmtpAccount.team == team).order_by(SmtpAccount.name))


# --- Forms --------------------------------------------------------------------------

def preset_values(preset, account=None):
    values = {k: v for k, v in mailservers.IMAP_PRESETS[preset].items() if k not in ("label", "note")}
    values.update(preset=preset, name="", username="", folder="INBOX", processed_folder="Loft/Processed",
                  enabled=True, smtp_account="")
    if account is not None:
        values.update(smtp_account=str(account.id), username=account.username, name=f"Bounces of {account.name}")
    return values


def form_values(mailbox):
    values = {k: v for k, v in mailbox.__data__.items() if k != "password"}
    values["smtp_account"] = str(mailbox.smtp_account_id or "")
    return values


def _port(raw, errors):
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        errors["port"] = "Enter a port number between 1 and 65535 (993 for SSL/TLS, 143 for STARTTLS)."
    return port


def _folder(form, field, default, label, errors):
    name = (form.get(field) or "").strip() or default
    if not FOLDER_NAME.match(name) or '"' in name or "\\" in name:
        errors[field] = f"{label}: use plain letters, digits, spaces, “/”, “.”, “-” or “_” (no quotes or accents)."
    return name


def validate(team, form, mailbox=None, allow_private=None):
    """Clean the mailbox form; raise MailboxError with a message per field.

    The host must pass the shared guard (app.netguard), unless the instance
    setting "private mail servers" is on (allow_private=None reads it).
    """
    errors = {}
    preset = form.get("preset") or (mailbox.preset if mailbox else "generic")
    preset = preset if preset in mailservers.IMAP_PRESETS else "generic"
    values = {"preset": preset, "name": (form.get("name") or "").strip(),
              "host": (form.get("host") or "").strip().lower(), "security": form.get("security", ""),
              "username": (form.get("username") or "").strip(), "enabled": bool(form.get("enabled"))}
    account = None
    if form.get("smtp_account"):
        try:
            account = accounts.get_account(team, int(form["smtp_account"]))
        except ValueError:
            account = None
        if account is None:
            errors["smtp_account"] = "Choose one of this team's SMTP accounts, or none."
    values["smtp_account"] = account
    if not values["name"]:
        values["name"] = values["username"] or values["host"]
    if len(values["name"]) > 100:
        errors["name"] = "Keep the name under 100 characters."
    if problem := mailservers.host_field_error(values["host"], "imap", allow_private):
        errors["host"] = problem
    values["port"] = _port(form.get("port", ""), errors)
    if values["security"] not in mailservers.SECURITY_LABELS:
        errors["security"] = "Choose how the connection is encrypted."
    elif values["security"] == "none" and values["host"] and not mailservers.is_loopback(values["host"]):
        errors["security"] = ("Without encryption the password and your mail cross the network in clear text, so "
                              "“None” is only allowed for a server on this machine (localhost or 127.0.0.1).")
    if not values["username"]:
        errors["username"] = ("Enter the user name" + (": your full iCloud Mail address." if preset == "icloud"
                                                       else " of the mailbox."))
    elif len(values["username"]) > 254:
        errors["username"] = "That user name is too long."
    values["folder"] = _folder(form, "folder", "INBOX", "Folder", errors)
    values["processed_folder"] = _folder(form, "processed_folder", "Loft/Processed", "Processed folder", errors)
    if values["folder"] == values["processed_folder"] and "folder" not in errors:
        errors["processed_folder"] = "The processed folder must differ from the folder Loft reads."
    password = form.get("password", "")
    if len(password) > 1024:
        errors["password"] = "That password is too long."
    elif password:
        values["password"] = crypto.encrypt(password)
    elif account is not None and account.password and account.username == values["username"] \
            and (mailbox is None or not mailbox.password):
        values["password"] = account.password  # the SMTP account's login (iCloud: one app-specific password)
    elif mailbox is None or not mailbox.password:
        errors["password"] = "Enter the password" + (" (an app-specific password for iCloud)."
                                                     if preset == "icloud" else ".")
    if errors:
        raise MailboxError(errors=errors)
    return values


def create_mailbox(team, form, allow_private=None):
    values = validate(team, form, allow_private=allow_private)
    return BounceMailbox.create(team=team, **values)


def update_mailbox(mailbox, form, allow_private=None):
    """Save changes; an empty password keeps the stored one. A new server or folder starts reading afresh.

    The host is checked again even when unchanged: its name may resolve elsewhere now.
    """
    values = validate(mailbox.team_id, form, mailbox, allow_private=allow_private)
    if any(values[k] != getattr(mailbox, k) for k in ("host", "port", "username", "folder")):
        values.update(uid_validity=0, last_uid=0, last_error="")
    BounceMailbox.update(**values).where(BounceMailbox.id == mailbox.id).execute()
    return BounceMailbox.get_by_id(mailbox.id)


def delete_mailbox(mailbox):
    """Forget the mailbox; its messages stay on the server."""
    mailbox.delete_instance()


# --- Talking IMAP ---------------------------------------------------------------------

def quote(text):
    """An IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data):
    """A reply's text from imaplib's (bytes or str) data."""
    if isinstance(data, (list, tuple)):
        data = data[-1] if data else b""
    if isinstance(data, tuple):
        data = data[0]
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")


def _tls_context():
    context = ssl.create_default_context()
    if not current_app.config.get("SMTP_VALIDATE_CERTS", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _guarded_socket(host, port, timeout, allow_private):
    """A TCP connection to an address of host that passed the guard (app.netguard), never a fresh lookup."""
    try:
        addresses = netguard.check_host(host, port, allow_private)
    except netguard.Refused as exc:
        raise ImapError(f"Loft does not connect to {exc.shown}: it is {exc.reason}. "
                        f"{mailservers.PRIVATE_HINT}") from None
    error = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout) if timeout else \
                socket.create_connection((address, port))
        except OSError as exc:
            error = exc
    raise error


class GuardedIMAP4(imaplib.IMAP4):
    """imaplib's client that connects only to an address the guard checked."""

    def __init__(self, host, port, timeout=None, allow_private=False):
        self.allow_private = allow_private
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return _guarded_socket(self.host, self.port, timeout, self.allow_private)


class GuardedIMAP4_SSL(imaplib.IMAP4_SSL):
    """The same over implicit TLS: the socket goes to the checked address, the certificate is checked for the name."""

    def __init__(self, host, port, ssl_context=None, timeout=None, allow_private=False):
        self.allow_private = allow_private
        super().__init__(host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout):
        sock = _guarded_socket(self.host, self.port, timeout, self.allow_private)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def _describe_security(mailbox):
    return {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "no encryption"}[mailbox.security]


def connect(mailbox, transcript=None, timeout=CONNECT_TIMEOUT):
    """A logged-in imaplib client; raises ImapError (or OSError/ssl.SSLError) with what went wrong."""
    transcript = transcript if transcript is not None else []
    password = crypto.decrypt(mailbox.password) if mailbox.password else ""
    if password is None:
        raise ImapError("The stored password cannot be decrypted (LOFT_ENCRYPTION_KEY or LOFT_SECRET_KEY changed "
                        "since it was saved). Enter the password again.")
    transcript.append(f"Connecting to {mailbox.host} port {mailbox.port} ({_describe_security(mailbox)})…")
    allow_private = mailservers.private_hosts_allowed()
    if mailbox.security == "ssl":
        client = GuardedIMAP4_SSL(mailbox.host, mailbox.port, ssl_context=_tls_context(), timeout=timeout,
                                  allow_private=allow_private)
    else:
        client = GuardedIMAP4(mailbox.host, mailbox.port, timeout=timeout, allow_private=allow_private)
    try:
        transcript.append(f"S: {_text(client.welcome)}")
        if mailbox.security == "starttls":
            transcript.append("C: STARTTLS")
            try:
                typ, data = client.starttls(ssl_context=_tls_context())
            except imaplib.IMAP4.error as exc:
                raise ImapError(f"The server refused STARTTLS: {_text(exc.args)}") from exc
            transcript.append(f"S: {typ} {_text(data)}")
        if mailbox.security != "none":
            version = client.sock.version() if hasattr(client.sock, "version") else "TLS"
            transcript.append(f"   TLS established: {version}")
        transcript.append(f"C: LOGIN {mailbox.username} (password hidden)")
        try:
            typ, data = client.login(quote(mailbox.username), password)
        except imaplib.IMAP4.error as exc:
            reply = _text(exc.args)
            reply = reply.removeprefix("LOGIN command error: ") if reply.startswith("LOGIN command error") \
                else f"NO {reply}"
            transcript.append(f"S: {reply}")
            hint = (" iCloud needs an app-specific password (not your Apple Account password) and your full "
                    "iCloud Mail address as the user name." if mailbox.preset == "icloud" else "")
            raise ImapError(f"Login refused: the server answered “{reply}”.{hint}") from exc
        transcript.append(f"S: {typ} {_text(data)}")
    except BaseException:
        _close(client)
        raise
    return client


def _close(client):
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection may already be gone
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


def explain(exc, mailbox):
    """A connection failure in plain words."""
    where = f"{mailbox.host} port {mailbox.port}"
    if isinstance(exc, ImapError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: the host name “{mailbox.host}” could not be found ({exc.strerror})."
    if isinstance(exc, ConnectionRefusedError):
        return (f"Connection refused: nothing is listening on {where}. Check the host and the port "
                "(993 for SSL/TLS, 143 for STARTTLS).")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS failure: the server's certificate could not be verified ({exc.verify_message})."
    if isinstance(exc, ssl.SSLError):
        return (f"TLS failure: the encrypted connection could not be set up ({exc.reason or exc}). Port 993 "
                "expects SSL/TLS and port 143 STARTTLS: check the encryption setting.")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"No answer from {where} in time. Check the host, the port and the encryption setting."
    if isinstance(exc, imaplib.IMAP4.abort):
        return f"The server closed the connection: {_text(exc.args)}"
    if isinstance(exc, imaplib.IMAP4.error):
        return f"The server refused a command: {_text(exc.args)}"
    if isinstance(exc, OSError):
        return f"Could not connect to {where}: {exc.strerror or exc}."
    return f"The check failed: {type(exc).__name__}: {exc}"


def _ok(typ, data, what):
    if typ != "OK":
        raise ImapError(f"{what}: the server answered “{typ} {_text(data)}”.")
    return data


def _capabilities(client):
    typ, data = client.capability()
    return set(_text(data).upper().split()) if typ == "OK" else set(client.capabilities)


def _delimiter(client):
    """The server's hierarchy delimiter ("/" or "."), from LIST "" ""."""
    typ, data = client.list('""', '""')
    match = re.search(r'\) "(.)"', _text(data)) if typ == "OK" and data and data[0] else None
    return match.group(1) if match else "/"


def _select(client, folder, readonly=False):
    typ, data = client.select(quote(folder), readonly=readonly)
    _ok(typ, data, f"The folder “{folder}” could not be opened")
    count = int(_text(data) or 0)
    _, validity = client.response("UIDVALIDITY")
    return count, int(_text(validity) or 0) if validity and validity[0] else 0


def _ensure_folder(client, name):
    typ, data = client.list('""', quote(name))
    if typ == "OK" and data and data[0]:
        return
    typ, data = client.create(quote(name))
    if typ != "OK" and "ALREADYEXISTS" not in _text(data).upper():
        _ok(typ, data, f"The folder “{name}” could not be created")


def test_connection(mailbox, timeout=TEST_TIMEOUT):
    """Really connect, log in and open the folder; returns (ok, transcript). Nothing is moved."""
    transcript = []
    try:
        client = connect(mailbox, transcript, timeout=timeout)
        try:
            transcript.append(f"C: EXAMINE {mailbox.folder}")
            count, _ = _select(client, mailbox.folder, readonly=True)
            transcript.append(f"S: {count} EXISTS")
            processed = mailbox.processed_folder.replace("/", _delimiter(client))
            typ, data = client.list('""', quote(processed))
            exists = typ == "OK" and bool(data and data[0])
        finally:
            _close(client)
    except Exception as exc:  # noqa: BLE001 - every failure is reported in words
        transcript.append("Error: " + explain(exc, mailbox))
        return False, "\n".join(transcript)
    transcript.append(f"Success: logged in; “{mailbox.folder}” holds {count:,} message{'s' if count != 1 else ''}. "
                      + (f"The folder “{processed}” exists." if exists
                         else f"The folder “{processed}” will be created at the first check."))
    return True, "\n".join(transcript)


def summary_of(ok, transcript):
    lines = transcript.splitlines()
    if not lines:
        return ""
    return lines[-1].removeprefix("Error: ").removeprefix("Success: ")


# --- Checking ---------------------------------------------------------------------------

def check_mailbox(mailbox_id, limit=None, manual=False):
    """Read the mailbox's new messages once; returns the summary stored in last_summary (None when
    the mailbox is gone, or disabled and not checked by hand). Never raises for a server problem:
    it is stored in last_error."""
    mailbox = BounceMailbox.get_or_none(BounceMailbox.id == mailbox_id)
    if mailbox is None or not (mailbox.enabled or manual):
        return None
    limit = limit or int(current_app.config.get("BOUNCE_CHECK_LIMIT", DEFAULT_LIMIT))
    summary = {"bounces": 0, "complaints": 0, "auto_replies": 0, "other": 0, "unreadable": 0, "moved": 0,
               "applied": 0, "unmatched": 0, "remaining": 0, "processed_folder": mailbox.processed_folder}
    error = ""
    try:
        client = connect(mailbox)
        try:
            _read(client, mailbox, limit, summary)
        finally:
            _close(client)
    except Exception as exc:  # noqa: BLE001 - one mailbox's failure is stored, never raised to the worker
        error = explain(exc, mailbox)
        current_app.logger.warning("bounce mailbox %s: %s", mailbox.id, error)
    (BounceMailbox.update(last_checked_at=utcnow(), last_error=error[:2000], last_summary=summary)
     .where(BounceMailbox.id == mailbox.id).execute())
    if error and not mailbox.last_error and not manual:
        _alert_failing(mailbox, error)
    return summary


def _alert_failing(mailbox, error):
    """Tell the admins once when a mailbox that was being read stops answering: unread bounces mean
    Loft keeps mailing dead addresses. The next failures stay quiet until a check succeeds again."""
    name = mailbox.name or f"{mailbox.username}@{mailbox.host}"
    alerts.notify(mailbox.team_id, f"Bounce mailbox {name} cannot be read",
                  f"Loft could not read the bounce mailbox {name}: {error}\n\nUntil it can, bounces and "
                  "complaints that arrive there are not applied. Check the login under Feedback > Bounce mailboxes.",
                  kind="mailbox", data={"mailbox": mailbox.id})


def _read(client, mailbox, limit, summary):
    capabilities = _capabilities(client)
    processed = mailbox.processed_folder.replace("/", _delimiter(client))
    summary["processed_folder"] = processed
    _, validity = _select(client, mailbox.folder)
    last_uid = mailbox.last_uid if validity == mailbox.uid_validity else 0
    if validity != mailbox.uid_validity:
        BounceMailbox.update(uid_validity=validity, last_uid=0).where(BounceMailbox.id == mailbox.id).execute()
    typ, data = client.uid("SEARCH", None, "UID", f"{last_uid + 1}:*")
    _ok(typ, data, "The server refused to search the folder")
    # "n:*" always includes the highest UID, even when it is below n: keep only the new ones.
    new = sorted(uid for uid in (int(x) for x in _text(data).split()) if uid > last_uid)
    summary["remaining"] = max(0, len(new) - limit)
    folder_ready = False
    for start in range(0, min(len(new), limit), BATCH):
        chunk = new[start:min(start + BATCH, limit)]
        to_move = []
        small = _small_enough(client, chunk, summary)
        for uid, raw in _fetch(client, small) if small else []:
            kind = _handle(mailbox.team_id, raw, summary)
            if kind in ("bounce", "complaint", "auto_reply", "dmarc"):
                to_move.append(uid)
        if to_move:
            if not folder_ready:
                _ensure_folder(client, processed)
                folder_ready = True
            _move(client, capabilities, to_move, processed)
            summary["moved"] += len(to_move)
        BounceMailbox.update(last_uid=chunk[-1]).where(BounceMailbox.id == mailbox.id).execute()


def _small_enough(client, uids, summary):
    """The UIDs whose size (RFC822.SIZE) is at most MAX_MESSAGE_BYTES; the others are counted and left."""
    typ, data = client.uid("FETCH", ",".join(str(u) for u in uids), "(RFC822.SIZE)")
    _ok(typ, data, "The server refused to fetch message sizes")
    sizes = {}
    for item in data or []:
        text = _text([item]) if item else ""
        match = re.search(r"UID (\d+)", text), re.search(r"RFC822\.SIZE (\d+)", text)
        if match[0] and match[1]:
            sizes[int(match[0].group(1))] = int(match[1].group(1))
    small = [uid for uid in uids if sizes.get(uid, 0) <= MAX_MESSAGE_BYTES]
    summary["too_large"] = summary.get("too_large", 0) + len(uids) - len(small)
    return small


def _fetch(client, uids):
    """[(uid, raw bytes or None)] in the order asked; None when the server sent no body."""
    typ, data = client.uid("FETCH", ",".join(str(u) for u in uids), "(BODY.PEEK[])")
    _ok(typ, data, "The server refused to fetch messages")
    bodies = {}
    for item in data or []:
        if isinstance(item, tuple) and len(item) == 2:
            match = re.search(rb"UID (\d+)", item[0])
            if match:
                bodies[int(match.group(1))] = item[1]
    return [(uid, bodies.get(uid)) for uid in uids]


def _handle(team_id, raw, summary):
    """Parse and apply one message; returns its kind: bounce, complaint, auto_reply, other or unreadable."""
    if raw is None:
        summary["unreadable"] += 1
        return "unreadable"
    report = parse_message(raw)
    if report.is_auto_reply:
        summary["auto_replies"] += 1
        return "auto_reply"
    if not (report.is_bounce or report.is_complaint or report.kind == "auth"):
        return _dmarc_report(team_id, raw, summary)
    kind = "complaint" if report.is_complaint or report.kind == "auth" else "bounce"
    key = "auth_reports" if report.kind == "auth" else ("complaints" if kind == "complaint" else "bounces")
    summary[key] = summary.get(key, 0) + 1
    applied = outcomes.apply(team_id, report, "imap")
    summary["applied"] += sum(1 for a in applied if not a["duplicate"])
    if not applied:
        summary["unmatched"] += 1
    return kind


def _dmarc_report(team_id, raw, summary):
    """A message that is no bounce may be a DMARC aggregate report: stored (once), else left as other."""
    try:
        _, created = dmarc_store.store_report(Team.get_by_id(team_id), raw, origin="mailbox")
    except DmarcError:
        summary["other"] += 1
        return "other"
    key = "dmarc_reports" if created else "dmarc_duplicates"
    summary[key] = summary.get(key, 0) + 1
    return "dmarc"


def _move(client, capabilities, uids, folder):
    """Move the messages to `folder`: UID MOVE, else UID COPY + \\Deleted + EXPUNGE (never a plain delete)."""
    uid_set = ",".join(str(u) for u in uids)
    if "MOVE" in capabilities:
        typ, data = client.uid("MOVE", uid_set, quote(folder))
        _ok(typ, data, f"The server refused to move messages to “{folder}”")
        return
    typ, data = client.uid("COPY", uid_set, quote(folder))
    _ok(typ, data, f"The server refused to copy messages to “{folder}”")
    typ, data = client.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
    _ok(typ, data, "The server refused to mark the copied messages deleted")
    if "UIDPLUS" in capabilities:
        typ, data = client.uid("EXPUNGE", uid_set)  # only ours, not what someone else marked deleted
    else:
        typ, data = client.expunge()
    _ok(typ, data, "The server refused to expunge the copied messages")

