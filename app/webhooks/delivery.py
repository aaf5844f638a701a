"""Build, sign and send webhook deliveries; dispatch new events into them (outbox pattern).

    dispatch(limit)        reads Event rows with id > the cursor (WebhookCursor "webhooks"), in id
                           order, and creates one WebhookDelivery per matching enabled endpoint,
                           in bulk, moving the cursor in the same transaction. Nothing in the
                           sending engine or the tracking endpoints waits for a webhook.
    send_due(now, limit)   POSTs the deliveries that are due (a bounded batch per tick).
    deliver(id, now)       one attempt: claim, check the address again, POST, record.

One event per request (simpler for receivers than batches). The body is JSON:
    {"id", "type", "at", "team", "campaign_id", "contact": {"id", "email"} | null, "data"}
and the headers carry
    X-Loft-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-Loft-Timestamp: <unix seconds>   X-Loft-Event: <type>   X-Loft-Delivery: <delivery id>
so a receiver recomputes the HMAC over the exact bytes it got and refuses old timestamps.

A 2xx answer within TIMEOUT seconds delivers; anything else (another status, a
redirect, a timeout, a refused address) is retried after BACKOFF (1 min, 5 min,
30 min, 2 h, 12 h) and then marked failed. Network I/O never runs inside a
database transaction: a delivery is claimed first (a conditional UPDATE that
moves next_attempt_at a lease ahead), so two workers never send it twice.
"""
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import time

from flask import current_app
from peewee import JOIN

from app import security
from app.db import db
from app.db import id_window_end
from app.db import settled_max_id
from app.models import WEBHOOK_EVENT_TYPES
from app.models import Contact
from app.models import Event
from app.models import WebhookCursor
from app.models import WebhookDelivery
from app.models import WebhookEndpoint
from app.models import utcnow
from app.webhooks import ssrf

log = logging.getLogger(__name__)

CURSOR = "webhooks"
TIMEOUT = 10.0  # seconds for connecting, and for each read of the answer
BACKOFF = (60, 300, 1800, 7200, 43200)  # seconds before attempt 2, 3, 4, 5, 6; after the 6th failure: failed
MAX_ATTEMPTS = len(BACKOFF) + 1
CLAIM_SECONDS = 120  # a claimed delivery is not picked again for this long (a worker died mid-request)
EXCERPT = 500  # characters of the receiver's answer kept in the log
USER_AGENT = "Loft-Webhooks/1"
WORKERS = 8  # parallel requests per tick


def allow_private():
    return bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE"))


# --- Payload and signature -------------------------------------------------------------

def isoformat(at):
    return at.isoformat(timespec="milliseconds") + "Z"


def types_of(endpoint):
    """The event types an endpoint subscribed to (a list)."""
    types = endpoint.event_types
    return [t for t in types if t in WEBHOOK_EVENT_TYPES] if isinstance(types, list) else []


def build_payload(event, contact_email=None):
    """The JSON body of one event (a str: it is stored and signed exactly as sent)."""
    data = event.data if isinstance(event.data, dict) else {}
    contact = {"id": event.contact_id, "email": contact_email} if event.contact_id is not None else None
    return json.dumps({"id": event.id, "type": event.type, "at": isoformat(event.at), "team": event.team_id,
                       "campaign_id": event.campaign_id, "contact": contact, "data": data},
                      separators=(",", ":"), ensure_ascii=False)


def signature(secret, timestamp, body):
    """The X-Loft-Signature value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>."""
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret, timestamp, body, header, now=None, tolerance=300):
    """What a receiver does (documented on the page, used by the tests): True for a genuine, fresh request."""
    try:
        age = abs((now or time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), header or "")


# --- Dispatch: events -> deliveries ------------------------------------------------------

def _cursor():
    """The dispatcher's cursor row; a new one starts at the newest event (no backlog is replayed)."""
    row = WebhookCursor.get_or_none(WebhookCursor.name == CURSOR)
    if row is None:
        newest = settled_max_id("event")
        WebhookCursor.insert(name=CURSOR, last_event_id=newest).on_conflict_ignore().execute()
        row = WebhookCursor.get(WebhookCursor.name == CURSOR)
    return row


def dispatch(limit=2000, now=None, batches=5):
    """Turn up to `batches` x `limit` new events into deliveries (one transaction per batch; the
    cursor keeps the rest for the next tick). Returns the number of deliveries created."""
    now = now or utcnow()
    created = 0
    for _ in range(batches):
        scanned, made = _dispatch_batch(limit, now)
        created += made
        if scanned < limit:
            break
    return created


def _dispatch_batch(limit, now):
    """(events scanned, deliveries created) for one batch after the cursor."""
    with db.atomic():
        cursor = _cursor()
        start = cursor.last_event_id
        endpoints = list(WebhookEndpoint.select().where(WebhookEndpoint.enabled == True))  # noqa: E712
        if not endpoints:
            # Nobody listens: just move past what exists, cheaply.
            newest = settled_max_id("event", start)
            if newest > start:
                WebhookCursor.update(last_event_id=newest).where(WebhookCursor.name == CURSOR).execute()
            return 0, 0
        # Ids can commit out of order on PostgreSQL: the window ends where it is safe (app/db/ids.py).
        last = id_window_end("event", start, limit)
        if last is None:
            return 0, 0
        by_team = {}
        for endpoint in endpoints:
            types = set(types_of(endpoint))
            by_team.setdefault(endpoint.team_id, []).append((endpoint.id, types))
        events = (Event.select(Event, Contact.email.alias("contact_email"))
                  .join(Contact, JOIN.LEFT_OUTER, on=(Event.contact == Contact.id))
                  .where((Event.id > start) & (Event.id <= last)
                         & (Event.team.in_(list(by_team))) & (Event.type.in_(WEBHOOK_EVENT_TYPES)))
                  .order_by(Event.id).objects())
        rows = []
        for event in events:
            payload = None
            for endpoint_id, types in by_team.get(event.team_id, ()):
                if event.type not in types:
                    continue
                if payload is None:
                    payload = build_payload(event, getattr(event, "contact_email", None))
                rows.append({"endpoint": endpoint_id, "event_id": event.id, "event_type": event.type,
                             "payload": payload, "status": "pending", "next_attempt_at": now, "created_at": now})
        for chunk in range(0, len(rows), 200):
            WebhookDelivery.insert_many(rows[chunk:chunk + 200]).on_conflict_ignore().execute()
        WebhookCursor.update(last_event_id=last).where(WebhookCursor.name == CURSOR).execute()
    return last - start, len(rows)


# --- Sending ---------------------------------------------------------------------------------

class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the guard checked, whatever DNS says now; Host stays the URL's name."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.pinned = address

    def connect(self):
        self.sock = socket.create_connection((self.pinned, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the URL's host name (SNI too)."""

    def __init__(self, host, port, address, timeout, context=None):
        super().__init__(host, port, timeout=timeout, context=context or ssl.create_default_context())
        self.pinned = address

    def connect(self):
        sock = socket.create_connection((self.pinned, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url, body, headers, allow_private_targets=False, timeout=TIMEOUT, resolver=None, tls_context=None):
    """POST body to url through the guard. Returns (status, excerpt); raises ssrf.Refused or OSError.
    `tls_context` replaces the default (system CAs, hostname checked), e.g. in tests."""
    target = ssrf.check(url, allow_private=allow_private_targets, resolver=resolver)
    last_error = None
    for address in target.addresses[:2]:  # the first two addresses (e.g. IPv6 then IPv4)
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(target.host, target.port, address, timeout, context=tls_context)
        else:
            connection = _PinnedHTTPConnection(target.host, target.port, address, timeout)
        try:
            connection.request("POST", target.path, body=body.encode() if isinstance(body, str) else body,
                               headers=headers)
            response = connection.getresponse()
            raw = response.read(EXCERPT * 4)
            return response.status, raw.decode("utf-8", "replace")[:EXCERPT]
        except (ConnectionRefusedError, socket.gaierror) as exc:
            last_error = exc  # try the next address
        finally:
            connection.close()
    raise last_error


def _claim(delivery_id, now):
    """Take the delivery for one attempt; False when it is not due or another worker has it."""
    return bool(WebhookDelivery.update(next_attempt_at=now + datetime.timedelta(seconds=CLAIM_SECONDS))
                .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.status == "pending")
                       & (WebhookDelivery.next_attempt_at <= now))
                .execute())


def next_attempt(attempts, now):
    """When to try again after `attempts` failed attempts; None when it is time to give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + datetime.timedelta(seconds=BACKOFF[attempts - 1])


def deliver(delivery_id, now=None, resolver=None, private_ok=None):
    """One attempt at a due delivery. Returns the refreshed WebhookDelivery (None when gone or not due).
    `private_ok` defaults to LOFT_WEBHOOKS_ALLOW_PRIVATE (needs the app context then)."""
    now = now or utcnow()
    private_ok = allow_private() if private_ok is None else private_ok
    delivery = (WebhookDelivery.select(WebhookDelivery, WebhookEndpoint).join(WebhookEndpoint)
                .where(WebhookDelivery.id == delivery_id).first())
    if delivery is None or delivery.status != "pending" or not _claim(delivery_id, now):
        return None
    endpoint = delivery.endpoint
    timestamp = str(int(time.time()))
    secret = security.decrypt(endpoint.secret) if endpoint.secret else None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Loft-Event": delivery.event_type,
        "X-Loft-Delivery": str(delivery.id),
        "X-Loft-Timestamp": timestamp,
    }
    code, excerpt, error = None, "", ""
    try:
        if secret is None:
            raise ssrf.Refused("the signing secret cannot be decrypted (the encryption key changed); rotate it.")
        headers["X-Loft-Signature"] = signature(secret, timestamp, delivery.payload)
        code, excerpt = post(endpoint.url, delivery.payload, headers, private_ok, resolver=resolver)
        if not 200 <= code < 300:
            error = (f"The receiver answered {code}" + (" (a redirect; Loft does not follow redirects)"
                                                       if 300 <= code < 400 else "") + ".")
    except ssrf.Refused as exc:
        error = f"Not sent: {exc}"
    except socket.timeout:
        error = f"No answer within {TIMEOUT:.0f} seconds."
    except ssl.SSLError as exc:
        error = f"TLS failed: {exc.reason or exc}."
    except (OSError, http.client.HTTPException) as exc:
        error = f"Could not connect: {exc}."
    attempts = delivery.attempts + 1
    values = {WebhookDelivery.attempts: attempts, WebhookDelivery.last_status_code: code,
              WebhookDelivery.response_excerpt: excerpt, WebhookDelivery.last_error: error[:1000]}
    if not error:
        values.update({WebhookDelivery.status: "delivered", WebhookDelivery.delivered_at: now,
                       WebhookDelivery.next_attempt_at: None})
    else:
        again = next_attempt(attempts, now)
        values.update({WebhookDelivery.status: "pending" if again else "failed",
                       WebhookDelivery.next_attempt_at: again})
    WebhookDelivery.update(values).where(WebhookDelivery.id == delivery_id).execute()
    return WebhookDelivery.get_by_id(delivery_id)


def due_ids(now=None, limit=50):
    """Ids of pending deliveries whose time has come, oldest first, for enabled endpoints."""
    now = now or utcnow()
    return [row[0] for row in WebhookDelivery.select(WebhookDelivery.id).join(WebhookEndpoint)
            .where((WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now)
                   & (WebhookEndpoint.enabled == True))  # noqa: E712
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit).tuples()]


def send_due(now=None, limit=500, budget_seconds=50.0, resolver=None, workers=WORKERS):
    """Attempt up to `limit` due deliveries on `workers` threads (a slow receiver holds one thread
    for at most TIMEOUT), starting no new attempt after `budget_seconds`. Returns the attempts made."""
    started = time.monotonic()
    ids = due_ids(now, limit)
    if not ids:
        return 0
    private_ok = allow_private()
    app = current_app._get_current_object()

    def attempt(delivery_id):
        if time.monotonic() - started > budget_seconds:
            return False
        # Each worker thread works in its own app context (the secret's key); leaving it closes
        # the thread's own database connection (teardown_appcontext).
        with app.app_context():
            return deliver(delivery_id, now=now, resolver=resolver, private_ok=private_ok) is not None

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids))),
                                               thread_name_prefix="loft-webhooks") as pool:
        return sum(pool.map(attempt, ids))


def prune_log(days, now=None, chunk=5000):
    """Delete finished deliveries (delivered or failed) older than `days`; pending ones always stay.
    Short transactions, so a busy dispatcher never waits long. Returns how many went."""
    cutoff = (now or utcnow()) - datetime.timedelta(days=days)
    deleted = 0
    while True:
        with db.atomic():
            ids = [row[0] for row in WebhookDelivery.select(WebhookDelivery.id)
                   .where((WebhookDelivery.status << ("delivered", "failed")) & (WebhookDelivery.created_at < cutoff))
                   .limit(chunk).tuples()]
            if ids:
                WebhookDelivery.delete().where(WebhookDelivery.id << ids).execute()
        deleted += len(ids)
        if len(ids) < chunk:
            return deleted


def test_delivery(endpoint, now=None):
    """A "test" event for one endpoint, ready to be sent at once. Returns the WebhookDelivery."""
    now = now or utcnow()
    event_id = -secrets.randbelow(2 ** 31)  # negative: never an Event id, unique per endpoint
    body = json.dumps({"id": event_id, "type": "test", "at": isoformat(now), "team": endpoint.team_id,
                       "campaign_id": None, "contact": None,
                       "data": {"message": "A test event from Loft. Check its X-Loft-Signature."}},
                      separators=(",", ":"))
    return WebhookDelivery.create(endpoint=endpoint, event_id=event_id, event_type="test", payload=body,
                                  status="pending", next_attempt_at=now, created_at=now)


def retry_now(delivery, now=None):
    """Make a pending or failed delivery due now (a failed one gets one more attempt)."""
    now = now or utcnow()
    (WebhookDelivery.update(status="pending", next_attempt_at=now)
     .where((WebhookDelivery.id == delivery.id) & (WebhookDelivery.status != "delivered")).execute())
    return WebhookDelivery.get_by_id(delivery.id)
