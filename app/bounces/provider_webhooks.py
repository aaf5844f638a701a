"""Bounces and complaints reported by email providers over HTTP.

Each team has one URL per provider, /feedback/hooks/<provider>/<token>; the token (random,
rotatable) says which team it is for, and each request is then verified the provider's way
before anything is read or stored:

  ses       Amazon SES through SNS: the SNS message signature (SignatureVersion 1 = SHA1withRSA,
            2 = SHA256withRSA) checked with the certificate at SigningCertURL, which must be
            https://sns.<region>.amazonaws.com/....pem (fetched once, cached in LOFT_SNS_CERT_DIR).
            SubscriptionConfirmation: the SubscribeURL is visited only on sns.<region>.amazonaws.com.
            Bounce (Permanent -> hard, Transient -> soft), Complaint and Delivery notifications.
  sendgrid  Event Webhook with Signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + raw body,
            X-Twilio-Email-Event-Webhook-Signature/-Timestamp, checked with the team's public key.
            bounce, blocked, dropped, spamreport and delivered events.
  postmark  HTTP basic auth with credentials Loft generates (the URL pasted into Postmark carries them).
            Bounce, SpamComplaint and Delivery record types.
  mailgun   HMAC-SHA256 of timestamp + token with the team's signing key; stale timestamps and
            reused tokens are refused. failed (permanent/temporary), complained and delivered events.
  generic   X-Loft-Timestamp and X-Loft-Signature = hex HMAC-SHA256 of "<timestamp>.<body>" with the
            hook's secret; body {"type": "bounce"|"complaint"|"delivered", "email", "hard", "status",
            "message_id", "reason"} (or a list of them). Stale or replayed signatures are refused.

receive(hook, headers, body, auth) -> {"received", "applied", ...} or raises Refused(status, reason):
401 for a missing or wrong signature or credentials, 403 for a replay or stale timestamp,
400 for malformed JSON. A refused request changes nothing (only its reason is kept on the hook,
for the settings page). Facts become parse.Report objects
(parse.report_for / parse.report_from_ses) applied with outcomes.apply(team_id, report, provider);
deliveries (parse.delivery_for) become one "delivered" event per send (outcomes.record_delivery),
which outgoing webhooks pass on.
"""
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from flask import current_app
from peewee import IntegrityError

from app import security as crypto
from app.db import db
from app.bounces import outcomes
from app.bounces import parse
from app.errors import Problem
from app.models import HookNonce
from app.models import ProviderHook
from app.models import utcnow

PROVIDERS = {
    "ses": "Amazon SES (through SNS)",
    "sendgrid": "SendGrid",
    "postmark": "Postmark",
    "mailgun": "Mailgun",
    "generic": "Generic JSON",
}
MAX_BODY = 1024 * 1024  # providers batch events, but a megabyte is plenty
MAX_DEPTH = 20  # levels of JSON nesting; providers use about five, and deeper input only costs recursion
MAX_AGE = 15 * 60  # seconds a signed timestamp stays acceptable (Mailgun, generic)
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
POSTMARK_KINDS = {"HardBounce": "hard", "BadEmailAddress": "hard", "ManuallyDeactivated": "hard",
                  "SoftBounce": "soft", "Transient": "soft", "DnsError": "soft", "Blocked": "block",
                  "SpamNotification": "block", "VirusNotification": "block", "ContentRelated": "block"}


class Refused(Problem):
    """A request we do not act on: HTTP status and a short reason for the caller."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


class HookSettingError(Problem):
    """A key or credential the team entered is not usable; the message says why."""


# --- Settings ----------------------------------------------------------------------------

def hooks_of(team):
    """{provider: hook or None} in PROVIDERS order."""
    found = {h.provider: h for h in ProviderHook.select().where(ProviderHook.team == team)}
    return {provider: found.get(provider) for provider in PROVIDERS}


def get_hook(team, provider):
    return ProviderHook.get_or_none((ProviderHook.team == team) & (ProviderHook.provider == provider))


def find_hook(provider, token):
    """The hook a URL names, or None (unknown provider or token)."""
    if provider not in PROVIDERS or not token:
        return None
    hook = ProviderHook.get_or_none(ProviderHook.token == token)
    return hook if hook is not None and hook.provider == provider else None


def _generated(provider):
    """Secrets Loft makes up itself: the generic HMAC secret, Postmark's basic-auth credentials."""
    if provider == "generic":
        return {"secret": crypto.encrypt(secrets.token_urlsafe(32))}
    if provider == "postmark":
        return {"username": "loft", "secret": crypto.encrypt(secrets.token_urlsafe(24))}
    return {}


def enable(team, provider):
    """Create the team's hook for `provider` (idempotent)."""
    if provider not in PROVIDERS:
        raise HookSettingError("Unknown provider.")
    hook = get_hook(team, provider)
    if hook is None:
        try:
            hook = ProviderHook.create(team=team, provider=provider, **_generated(provider))
        except IntegrityError:  # created by a double click meanwhile
            hook = get_hook(team, provider)
    return hook


def rotate(hook):
    """A new URL token (and a new generated secret): the old URL stops working at once."""
    values = {"token": secrets.token_urlsafe(32), **_generated(hook.provider)}
    ProviderHook.update(**values).where(ProviderHook.id == hook.id).execute()
    return ProviderHook.get_by_id(hook.id)


def save_key(hook, key):
    """Store the SendGrid verification key or the Mailgun signing key the team pasted."""
    key = (key or "").strip()
    if hook.provider == "sendgrid":
        try:
            _sendgrid_key(key)
        except ValueError as exc:
            raise HookSettingError("That is not a SendGrid verification key: paste the public key shown under "
                            "Settings → Mail Settings → Event Webhook → Signature verification "
                            "(it starts with “MFkw”).") from exc
    elif hook.provider == "mailgun":
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,200}", key):
            raise HookSettingError("That is not a Mailgun webhook signing key: copy the “HTTP webhook signing key” from "
                            "Sending → Webhooks in the Mailgun console.")
    else:
        raise HookSettingError("This provider needs no key.")
    ProviderHook.update(secret=crypto.encrypt(key)).where(ProviderHook.id == hook.id).execute()
    return ProviderHook.get_by_id(hook.id)


def secret_of(hook):
    return crypto.decrypt(hook.secret) if hook.secret else ""


def delete(hook):
    hook.delete_instance()


# --- Receiving ------------------------------------------------------------------------------

def receive(hook, headers, body, auth=None, now=None):
    """Verify and apply one request to `hook`; returns a small dict for the JSON answer."""
    now = now or time.time()
    if len(body) > MAX_BODY:
        raise Refused(413, "body too large")
    handler = {"ses": _ses, "sendgrid": _sendgrid, "postmark": _postmark, "mailgun": _mailgun,
               "generic": _generic}[hook.provider]
    # Verify and read first (SNS may fetch a certificate: no network I/O inside the transaction),
    # then use the nonce and apply everything in one transaction.
    outcome = handler(hook, headers, body, auth, now)
    reports, nonce = outcome.pop("reports", []), outcome.pop("nonce", None)
    with db.atomic():
        if nonce:
            _once(hook, nonce)
        applied = 0
        for report in reports:
            record = outcomes.record_delivery if parse.is_delivery(report) else outcomes.apply
            applied += sum(1 for a in record(hook.team_id, report, hook.provider) if not a["duplicate"])
        (ProviderHook.update(received_count=ProviderHook.received_count + 1, last_received_at=utcnow(),
                             last_error="")
         .where(ProviderHook.id == hook.id).execute())
    return {"ok": True, "reports": len(reports), "applied": applied, **outcome}


def record_refusal(hook, reason):
    """Keep the latest refusal on the settings page (outside any transaction of the request)."""
    ProviderHook.update(last_error=f"{utcnow():%Y-%m-%d %H:%M} UTC: {reason}"[:500]) \
        .where(ProviderHook.id == hook.id).execute()


def _json(body, refusal="malformed JSON"):
    """Parsed JSON no deeper than MAX_DEPTH, or Refused(400): deep nesting raises RecursionError in the
    parser (or later, in code walking the result), which used to answer 500."""
    try:
        value = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused(400, refusal) from exc
    if _depth(value) > MAX_DEPTH:
        raise Refused(400, f"JSON nested more than {MAX_DEPTH} levels deep")
    return value


def _depth(value):
    """How deeply lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:  # deep enough to refuse: no need to look further down
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _fresh(timestamp, now):
    try:
        value = float(timestamp)
    except (TypeError, ValueError) as exc:
        raise Refused(401, "missing or invalid timestamp") from exc
    if abs(now - value) > MAX_AGE:
        raise Refused(403, "stale timestamp")


def _once(hook, nonce):
    """Remember a signature token; a second use is a replay."""
    HookNonce.delete().where(HookNonce.at < utcnow() - datetime.timedelta(seconds=2 * MAX_AGE)).execute()
    try:
        with db.atomic():
            HookNonce.create(hook=hook, nonce=nonce[:200])
    except IntegrityError as exc:
        raise Refused(403, "replayed request") from exc


def _report(email, status="", diagnostic="", fallback=None, force=None, message_id="", token=""):
    """A bounce Report classified from the provider's words; `fallback` when they say nothing
    classifiable, `force` when the provider states the kind plainly."""
    report = parse.report_for(email, status=status, diagnostic=diagnostic, kind=force, message_id=message_id,
                              token=token)
    if not force and fallback and report.kind == "none":
        report = parse.report_for(email, status=status, diagnostic=diagnostic, kind=fallback,
                                  message_id=message_id, token=token)
    return report


def _complaint(email, feedback_type="abuse", message_id=""):
    return parse.report_for(email, feedback_type=feedback_type or "abuse", message_id=message_id)


# --- Amazon SES through SNS ---

def _ses(hook, headers, body, auth, now):
    message = _json(body)
    if not isinstance(message, dict) or message.get("Type") not in SNS_FIELDS:
        raise Refused(400, "not an SNS message")
    verify_sns(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        confirm_subscription(message.get("SubscribeURL", ""))
        return {"subscription": "confirmed"}
    if kind == "UnsubscribeConfirmation":
        return {"subscription": "unsubscribed"}
    data = _json(message.get("Message") or "", "the SNS Message is not SES JSON")
    report = parse.report_from_ses(data) if isinstance(data, dict) else None
    wanted = report is not None and (report.is_bounce or report.is_complaint or parse.is_delivery(report))
    return {"reports": [report] if wanted else []}


def sns_string_to_sign(message):
    lines = []
    for field in SNS_FIELDS[message["Type"]]:
        if field in message and message[field] is not None:
            lines.append(f"{field}\n{message[field]}\n")
    return "".join(lines).encode("utf-8")


def verify_sns(message):
    """Check the SNS signature with Amazon's certificate; raises Refused(401)."""
    version = str(message.get("SignatureVersion", ""))
    if version not in ("1", "2"):
        raise Refused(401, "unsupported SNS SignatureVersion")
    cert_url = message.get("SigningCertURL") or message.get("SigningCertUrl") or ""
    parts = urlsplit(cert_url)
    if parts.scheme != "https" or not SNS_HOST.match(parts.hostname or "") or parts.port not in (None, 443) \
            or not parts.path.endswith(".pem"):
        raise Refused(401, "SigningCertURL is not an Amazon SNS certificate")
    try:
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused(401, "bad SNS signature encoding") from exc
    certificate = signing_certificate(cert_url)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1 is SHA1withRSA
    try:
        certificate.public_key().verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, TypeError, ValueError) as exc:
        raise Refused(401, "SNS signature does not verify") from exc


def cert_cache_path(url):
    """Where the certificate at `url` is cached (tests put theirs here)."""
    folder = Path(current_app.config.get("SNS_CERT_DIR") or "var/sns-certs")
    return folder / (hashlib.sha256(url.encode()).hexdigest() + ".pem")


def signing_certificate(url):
    """The SNS signing certificate at `url`, from the cache or fetched once over HTTPS."""
    path = cert_cache_path(url)
    if path.is_file():
        pem = path.read_bytes()
    else:
        try:
            pem = https_get(url)
        except OSError as exc:
            raise Refused(401, "the SNS signing certificate could not be fetched") from exc
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise Refused(401, "the SNS signing certificate is not a certificate") from exc
    if certificate.not_valid_after_utc.timestamp() < time.time():
        raise Refused(401, "the SNS signing certificate has expired")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
    return certificate


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def https_get(url, limit=64 * 1024, timeout=10):
    """GET an https URL (no redirects, a size cap); the only place this module touches the network."""
    if urlsplit(url).scheme != "https":
        raise OSError("only https")
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(urllib.request.Request(url, headers={"User-Agent": "Loft"}), timeout=timeout) as response:
        return response.read(limit)


def confirm_subscription(url):
    """Visit the SubscribeURL, only on Amazon SNS itself (never wherever a request points us)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not SNS_HOST.match(parts.hostname or "") or parts.port not in (None, 443):
        raise Refused(400, "SubscribeURL is not on sns.<region>.amazonaws.com")
    try:
        https_get(url)
    except OSError as exc:
        raise Refused(502, "the SNS subscription could not be confirmed") from exc


# --- SendGrid ---

def _sendgrid_key(text):
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an EC key")
    return key


def _sendgrid(hook, headers, body, auth, now):
    signature = headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    key_text = secret_of(hook)
    if not key_text:
        raise Refused(401, "no SendGrid verification key saved in Loft")
    if not signature or not timestamp:
        raise Refused(401, "missing SendGrid signature headers")
    try:
        _sendgrid_key(key_text).verify(base64.b64decode(signature), timestamp.encode() + body,
                                       ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error) as exc:
        raise Refused(401, "SendGrid signature does not verify") from exc
    events = _json(body)
    if not isinstance(events, list):
        raise Refused(400, "expected a JSON list of events")
    reports = []
    for event in events:
        if not isinstance(event, dict) or not event.get("email"):
            continue
        name, email = event.get("event"), event["email"]
        message_id = event.get("smtp-id") or ""
        reason = str(event.get("reason") or "")
        if name == "bounce" or name == "blocked":
            blocked = name == "blocked" or event.get("type") == "blocked"
            reports.append(_report(email, str(event.get("status") or ""), reason, fallback="hard",
                                   force="block" if blocked else None, message_id=message_id))
        elif name == "dropped":
            if "spam reporting" in reason.lower():
                reports.append(_complaint(email, "abuse", message_id))
            elif "bounced address" in reason.lower() or "invalid" in reason.lower():
                reports.append(_report(email, "5.1.1", reason, force="hard", message_id=message_id))
        elif name == "spamreport":
            reports.append(_complaint(email, "abuse", message_id))
        elif name == "delivered":
            reports.append(parse.delivery_for(email, message_id))
    return {"reports": reports, "events": len(events)}


# --- Postmark ---

def _postmark(hook, headers, body, auth, now):
    password = secret_of(hook)
    given = (auth or ("", ""))
    if not password or not (hmac.compare_digest(given[0] or "", hook.username)
                            and hmac.compare_digest(given[1] or "", password)):
        raise Refused(401, "wrong or missing basic-auth credentials")
    record = _json(body)
    if not isinstance(record, dict):
        raise Refused(400, "expected a JSON object")
    email = record.get("Email") or ""
    kind = record.get("RecordType")
    if kind == "SpamComplaint" and email:
        return {"reports": [_complaint(email, "abuse")]}
    if kind == "Delivery" and record.get("Recipient"):
        return {"reports": [parse.delivery_for(record["Recipient"])]}
    if kind == "Bounce" and email and record.get("Type") in POSTMARK_KINDS:
        details = str(record.get("Details") or record.get("Description") or "")
        stated = POSTMARK_KINDS[record["Type"]]
        # Postmark's own verdict stands for these; the others are classified from its words first.
        plain = record["Type"] in ("HardBounce", "BadEmailAddress", "Blocked")
        return {"reports": [_report(email, "", details, fallback=stated, force=stated if plain else None)]}
    return {"reports": [], "ignored": kind or "unknown"}


# --- Mailgun ---

def _mailgun(hook, headers, body, auth, now):
    key = secret_of(hook)
    if not key:
        raise Refused(401, "no Mailgun signing key saved in Loft")
    data = _json(body)
    signed = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signed, dict) or not all(signed.get(k) for k in ("timestamp", "token", "signature")):
        raise Refused(401, "missing Mailgun signature")
    expected = hmac.new(key.encode(), f"{signed['timestamp']}{signed['token']}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signed["signature"])):
        raise Refused(401, "Mailgun signature does not verify")
    _fresh(signed["timestamp"], now)
    nonce = "mailgun:" + str(signed["token"])
    event = data.get("event-data") or {}
    email = event.get("recipient") or ""
    headers_ = ((event.get("message") or {}).get("headers") or {})
    message_id = headers_.get("message-id") or ""
    if event.get("event") == "complained" and email:
        return {"reports": [_complaint(email, "abuse", message_id)], "nonce": nonce}
    if event.get("event") == "delivered" and email:
        return {"reports": [parse.delivery_for(email, message_id)], "nonce": nonce}
    if event.get("event") == "failed" and email:
        status = event.get("delivery-status") or {}
        words = " ".join(str(x) for x in (status.get("code") or "", status.get("message") or "",
                                          status.get("description") or "") if x).strip()
        permanent = event.get("severity") == "permanent"
        if event.get("reason") in ("suppress-bounce", "suppress-complaint"):
            return {"reports": [_report(email, "5.1.1", words or event["reason"], force="hard",
                                        message_id=message_id)], "nonce": nonce}
        return {"reports": [_report(email, str(status.get("enhanced-code") or ""), words,
                                    fallback="hard" if permanent else "soft", message_id=message_id)],
                "nonce": nonce}
    return {"reports": [], "ignored": event.get("event") or "unknown", "nonce": nonce}


# --- Generic JSON ---

def generic_signature(secret, timestamp, body):
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _generic(hook, headers, body, auth, now):
    timestamp = headers.get("X-Loft-Timestamp", "")
    signature = headers.get("X-Loft-Signature", "").strip().removeprefix("sha256=")
    if not timestamp or not signature:
        raise Refused(401, "missing X-Loft-Timestamp or X-Loft-Signature")
    if not hmac.compare_digest(generic_signature(secret_of(hook), timestamp, body), signature):
        raise Refused(401, "signature does not verify")
    _fresh(timestamp, now)
    data = _json(body)
    items = data if isinstance(data, list) else [data]
    reports = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in ("bounce", "complaint", "delivered") or \
                not isinstance(item.get("email"), str) or "@" not in item["email"]:
            raise Refused(400, 'each event needs "type": "bounce", "complaint" or "delivered" and an "email"')
        message_id = str(item.get("message_id") or "")
        if item["type"] == "delivered":
            reports.append(parse.delivery_for(item["email"], message_id))
        elif item["type"] == "complaint":
            reports.append(_complaint(item["email"], str(item.get("feedback_type") or "abuse"), message_id))
        else:
            hard = bool(item.get("hard"))
            reports.append(_report(item["email"], str(item.get("status") or ""), str(item.get("reason") or ""),
                                   fallback="soft", force="hard" if hard else None, message_id=message_id))
    return {"reports": reports, "nonce": "generic:" + signature}
