"""The SMTP submission server: an app signs in with an API key and its mail joins the transactional stream.

    host, port      LOFT_SUBMISSION_BIND (127.0.0.1) : LOFT_SUBMISSION_PORT (1587)
    STARTTLS        with LOFT_SUBMISSION_CERT / LOFT_SUBMISSION_KEY, else a self-signed pair made once
                    under var/submission-tls/ (the log says so)
    AUTH            PLAIN or LOGIN; the password is an API key of the team (Team settings -> API keys),
                    the username is free (the key's id or the app's name: it is not checked)

Each step refuses as early as it can, with words a person can act on:

    AUTH   535 an unknown or revoked key; 454 after too many failures from one address (the sign-in
           page's per-address limit: 4 x LOFT_LOGIN_MAX_FAILURES within LOFT_LOGIN_THROTTLE_SECONDS)
    MAIL   530 before AUTH; 550 when the key's role may not send; 553 a sender off the team's
           verified domains; 552 a declared SIZE over the limit
    RCPT   452 past LOFT_SUBMISSION_MAX_RECIPIENTS; 553 a malformed address; 550 an address the team
           must not mail (hard bounce, complaint, suppression list; a marketing unsubscribe is no bar)
    DATA   552 over the size limit; 553 a From header off the verified domains; then
           service.submit_raw stores one TxMessage per recipient (all or none) and `on_accepted`
           queues them: 250 names their ids.

AUTH needs STARTTLS first, except from a loopback address while LOFT_SUBMISSION_LOOPBACK_PLAIN is on:
the key then never leaves the machine, and the app beside Loft need not handle a self-signed
certificate. Turn it off when a proxy on this machine forwards outside clients to the port (they
would all look local).

Database work runs on a worker thread inside an app context, so a client waiting on a lock never
holds up the others on the event loop. Queueing is the caller's (services never enqueue): the CLI
passes tasks.transactional.queue as `on_accepted`.
"""
import asyncio
import binascii
import datetime
import ipaddress
import logging
import os
import socket
import ssl
from base64 import b64decode
from pathlib import Path
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING
from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import current_app

from app import settings as instance_settings
from app.addresses import InvalidEmail
from app.addresses import normalise_email
from app.api import keys
from app.config import ROOT
from app.consent import ratelimit
from app.db import db
from app.errors import Problem
from app.models import ROLE_LABELS
from app.models import ROLES
from app.models import ApiKey
from app.models import Team
from app.senders import domains
from app.teams import standing
from app.teams.permissions import can
from app.transactional import service
from app.wording import plural

log = logging.getLogger(__name__)

GENERATED_TLS_DIR = ROOT / "var" / "submission-tls"
SELF_SIGNED_DAYS = 3650
AUTH_THROTTLE_BUCKET = "smtp-auth"
MAX_REPLY_CHARS = 480  # an SMTP reply line is at most 512 octets with its code and CRLF
TRY_AGAIN = "451 4.3.0 Loft could not take this just now; try again in a minute."


class SubmissionSetupError(Problem):
    """The server cannot start as configured (a certificate that does not load, half a key pair)."""


def reply(code, enhanced, text):
    """One SMTP reply line: the code, the enhanced status and the words, without line breaks."""
    return f"{code} {enhanced} {' '.join(str(text).split())[:MAX_REPLY_CHARS]}"


# --- TLS ------------------------------------------------------------------------------------------

def self_signed_pair(folder, names):
    """(cert path, key path, made): the self-signed certificate in `folder`, made now (made=True) if it is
    not there yet. The key file is readable by its owner only; both are written whole or not at all."""
    folder = Path(folder)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return str(cert_path), str(key_path), False
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names = [x509.DNSName(name) for name in dict.fromkeys(names)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ("127.0.0.1", "::1")]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .sign(key, hashes.SHA256()))
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    _write_new(key_path, key_bytes, 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return str(cert_path), str(key_path), True


def _write_new(path, data, mode):
    partial = path.with_suffix(f".{os.getpid()}.part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def tls_context(cert_path, key_path, generated_dir, names):
    """The server's SSLContext: from the configured PEM files, else from a self-signed pair in
    `generated_dir` (made once, and logged). SubmissionSetupError says what is wrong with the files."""
    if bool(cert_path) != bool(key_path):
        raise SubmissionSetupError("Set both LOFT_SUBMISSION_CERT and LOFT_SUBMISSION_KEY (PEM files), or "
                                   "neither for a self-signed certificate.")
    if not cert_path:
        cert_path, key_path, made = self_signed_pair(generated_dir, names)
        if made:
            log.warning("SMTP submission: made a self-signed TLS certificate for %s in %s; clients must accept "
                        "it (or set LOFT_SUBMISSION_CERT and LOFT_SUBMISSION_KEY to a real one)",
                        ", ".join(names), generated_dir)
        else:
            log.info("SMTP submission: using the self-signed TLS certificate in %s", generated_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as error:
        raise SubmissionSetupError(f"Cannot load the TLS certificate {cert_path} with the key {key_path}: "
                                   f"{error}") from None
    return context


def certificate_names(base_url):
    """The names a self-signed certificate covers: the instance's host (its base URL), this machine's
    name and localhost."""
    names = [urlsplit(base_url).hostname or "", socket.getfqdn(), "localhost"]
    return [name for name in dict.fromkeys(names) if name and not _is_ip(name)]


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback(peer):
    """Whether a connection's peer (host, port, ...) is this machine (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


# --- The checks, one per SMTP step (blocking: they run on a worker thread in an app context) ----------

def _auth_throttle():
    """(failures allowed per client address, window in seconds): the sign-in page's per-address limit."""
    return current_app.config["LOGIN_MAX_FAILURES"] * 4, current_app.config["LOGIN_THROTTLE_SECONDS"]


def sign_in(client_ip, password):
    """(ApiKey, None) for a live key, else (None, the refusal). Every failure counts against the client's
    address; past the limit even a good key waits for the window to pass."""
    limit, window = _auth_throttle()
    if ratelimit.recent(AUTH_THROTTLE_BUCKET, client_ip, window) >= limit:
        return None, reply(454, "4.7.0", f"Too many failed sign-ins from {client_ip}: wait "
                                         f"{plural(max(1, window // 60), 'minute')} and try again.")
    key = keys.authenticate(password.decode("utf-8", "replace").strip())
    if key is None:
        ratelimit.hit(AUTH_THROTTLE_BUCKET, client_ip, limit, window)
        log.warning("SMTP submission: a sign-in from %s with no live API key was refused", client_ip)
        return None, reply(535, "5.7.8", "The password is not a live API key: use a key from Team settings, "
                                         "API keys (it starts with loft_); a revoked key no longer works.")
    return key, None


def sender_refusal(key, address):
    """None when `key` may send as `address`, else the refusal: a role without "send" (550), a revoked
    key (530), an address off the team's verified sender domains (553)."""
    if not can(key.role, "send"):
        allowed = " or ".join(ROLE_LABELS[role] for role in ROLES if can(role, "send"))
        return reply(550, "5.7.1", f"This API key ({key.name}) has the {ROLE_LABELS[key.role]} role, which may "
                                   f"not send email: use a key with the {allowed} role.")
    if ApiKey.get_or_none((ApiKey.id == key.id) & ApiKey.revoked_at.is_null()) is None:
        return reply(530, "5.7.0", "This API key was revoked after you signed in: sign in with a live key.")
    refusal = standing.sending_refusal(key.team_id, stream="transactional")
    if refusal:  # a suspension is permanent for the client (550); a cap lifts (451: its queue tries again)
        suspended = Team.select(Team.suspended_at).where(Team.id == key.team_id).scalar() is not None
        return reply(550, "5.7.1", refusal) if suspended else reply(451, "4.7.1", refusal)
    try:
        address = normalise_email(address, allow_test_domains=True)
    except InvalidEmail as error:
        return reply(553, "5.1.7", f"{address} is not a valid sender address: {error.message}")
    if not domains.is_verified_sender(key.team_id, address):
        return reply(553, "5.7.1", f"{address} is not on a verified sender domain of the team {key.team.name}: "
                                   f"verify {address.rpartition('@')[2]} under Sending, Sender domains, or send "
                                   "from an address on a verified one.")
    return None


def recipient_refusal(key, address, recipients_so_far):
    """None when the message may go to `address` as well, else the refusal: past the limit (452), not an
    address (553), an address the team must not mail (550)."""
    limit = max_recipients()
    if recipients_so_far >= limit:
        return reply(452, "4.5.3", f"Too many recipients: at most {limit} per message; send the rest in "
                                   "another message.")
    try:
        address = normalise_email(address)
    except InvalidEmail as error:
        return reply(553, "5.1.3", f"{address} is not a valid recipient address: {error.message}")
    try:
        service.check_recipient(key.team, address)
    except service.TxError as error:
        return reply(550, "5.7.1", error.message)
    return None


def refusal_for(error):
    """The SMTP reply for a TxError from submit_raw, by the field it names."""
    fields = set(error.errors)
    if isinstance(error, service.TxRefused):  # suspended or capped since MAIL FROM: what MAIL FROM says now
        return reply(451, "4.7.1", error.message)
    if fields & {"from", "mail_from"}:
        code, enhanced = 553, "5.7.1"
    elif "raw" in fields:
        code, enhanced = 552, "5.3.4"
    elif "to" in fields or any(field.startswith("recipients") for field in fields):
        code, enhanced = 550, "5.7.1"
    else:
        code, enhanced = 554, "5.6.0"
    return reply(code, enhanced, error.message)


def submit(key, mail_from, recipients, raw, on_accepted):
    """Hand a whole message to the transactional stream; the SMTP reply for it."""
    try:
        with db.atomic():  # one message per recipient, all stored or none
            messages = service.submit_raw(key, mail_from=mail_from, recipients=recipients, raw=raw)
    except service.TxError as error:
        return refusal_for(error)
    on_accepted(messages)  # after the commit, so a consumer never looks for rows it cannot see yet
    log.info("SMTP submission: API key %s (team %s) submitted %s", key.prefix, key.team_id,
             plural(len(messages), "message"))
    ids = ", ".join(str(tx.id) for tx in messages)
    return reply(250, "2.0.0", f"Queued as transactional {'message' if len(messages) == 1 else 'messages'} {ids}.")


# --- The server -----------------------------------------------------------------------------------

class SubmissionHandler:
    """aiosmtpd's hooks; each runs its check on a worker thread and answers with its words."""

    def __init__(self, app, on_accepted):
        self.app = app
        self.on_accepted = on_accepted

    def _in_app(self, func, *args):
        with self.app.app_context():
            return func(*args)

    async def _run(self, func, *args, failure=TRY_AGAIN):
        try:
            return await asyncio.to_thread(self._in_app, func, *args)
        except Exception:  # a database or queue outage: the client may try again, nothing half-done stays
            log.exception("SMTP submission: %s failed", func.__name__)
            return failure

    async def check_login(self, server, password):
        found = await self._run(sign_in, server.session.peer[0], password,
                                failure=(None, reply(454, "4.7.0", "Temporary authentication failure; try again.")))
        key, refusal = found
        if key is None:
            return AuthResult(success=False, handled=False, message=refusal)
        return AuthResult(success=True, auth_data=key)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        refusal = await self._run(sender_refusal, session.auth_data, address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in (recipient.lower() for recipient in envelope.rcpt_tos):
            return "250 2.1.5 Already a recipient of this message"
        refusal = await self._run(recipient_refusal, session.auth_data, address, len(envelope.rcpt_tos))
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        return await self._run(submit, session.auth_data, envelope.mail_from, list(envelope.rcpt_tos), raw,
                               self.on_accepted)


class SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP with AUTH required before MAIL, checked off the event loop, and allowed without
    STARTTLS from loopback when `loopback_plain`."""

    def __init__(self, handler, *, loopback_plain, live, max_connections, **kwargs):
        super().__init__(handler, auth_required=True, auth_require_tls=True, **kwargs)
        self.loopback_plain = loopback_plain
        self.live = live  # the server's open sessions (touched on its event loop only)
        self.max_connections = max_connections
        self.over_limit = False

    def connection_made(self, transport):
        if self._original_transport is None:  # the plain connection, not the TLS layer after STARTTLS
            self.over_limit = len(self.live) >= self.max_connections
            if not self.over_limit:
                self.live.add(self)
        super().connection_made(transport)
        if self._original_transport is None:  # after STARTTLS AUTH is allowed anyway
            self._auth_require_tls = not (self.loopback_plain and is_loopback(self.session.peer))

    def connection_lost(self, error):
        self.live.discard(self)
        super().connection_lost(error)

    async def _handle_client(self):
        if self.over_limit:  # every session holds a socket and a worker thread at times: bound them
            await self.push("421 4.7.0 Too many connections to this server; try again in a minute.")
            self.transport.close()
            return
        await super()._handle_client()

    async def auth_PLAIN(self, _, args):
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:  # challenge_auth has answered already
                return AuthResult(success=False, handled=True)
        else:
            blob = await self._decoded(args[1])
            if blob is None:
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 AUTH PLAIN takes authzid NUL username NUL password, base64-encoded")
            return AuthResult(success=False, handled=True)
        return await self.event_handler.check_login(self, parts[2])

    async def auth_LOGIN(self, _, args):
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
        else:
            login = await self._decoded(args[1])
        if login is MISSING or login is None:
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self.event_handler.check_login(self, password)

    async def _decoded(self, text):
        try:
            return b64decode(text.encode(), validate=True)
        except (binascii.Error, ValueError):
            await self.push("501 5.5.2 Can't decode base64")
            return None


class SubmissionController(Controller):
    def __init__(self, handler, *, loopback_plain, max_connections, **kwargs):
        self.loopback_plain = loopback_plain
        self.max_connections = max_connections
        self.live = set()
        super().__init__(handler, **kwargs)

    def factory(self):
        return SubmissionSMTP(self.handler, loopback_plain=self.loopback_plain, live=self.live,
                              max_connections=self.max_connections, **self.SMTP_kwargs)


def max_message_bytes():
    """The SIZE the server announces: LOFT_SUBMISSION_MAX_BYTES, or less when the transactional stream
    takes less (a message it would refuse is refused before it is sent at all). 0 or less means the
    stream's own limit: aiosmtpd would take 0 as no limit at all."""
    configured = current_app.config["SUBMISSION_MAX_BYTES"]
    return min(configured, service.max_raw_bytes()) if configured > 0 else service.max_raw_bytes()


def max_recipients():
    """Recipients one message may have: LOFT_SUBMISSION_MAX_RECIPIENTS, never more than submit_raw takes
    (refused at RCPT, not after the whole message was sent)."""
    return min(current_app.config["SUBMISSION_MAX_RECIPIENTS"], service.MAX_SUBMITTED_RECIPIENTS)


def start(app, *, on_accepted, host=None, port=None, generated_tls_dir=GENERATED_TLS_DIR):
    """Start the server in a background thread (call inside an app context); returns the Controller
    (call .stop()). `on_accepted(messages)` queues what was accepted."""
    config = app.config
    names = certificate_names(instance_settings.base_url())
    context = tls_context(config["SUBMISSION_CERT"], config["SUBMISSION_KEY"], generated_tls_dir, names)
    controller = SubmissionController(
        SubmissionHandler(app, on_accepted), hostname=host or config["SUBMISSION_BIND"],
        port=port or config["SUBMISSION_PORT"], loopback_plain=config["SUBMISSION_LOOPBACK_PLAIN"],
        max_connections=config["SUBMISSION_MAX_CONNECTIONS"],
        tls_context=context, data_size_limit=max_message_bytes(), server_hostname=names[0] if names else None,
        ident="Loft SMTP submission")
    controller.start()
    return controller
