"""Outgoing webhook endpoints of a team: create, change, enable, delete, secrets, the delivery log.

Every function takes the team (or an object already loaded through it) first,
so another team's endpoint is simply not found. Bad input raises WebhookError
with the field it is about and a message for the person.
"""
import math
import secrets

from peewee import fn

from app import security
from app.db import db
from app.errors import Problem
from app.models import WEBHOOK_EVENT_TYPES
from app.models import WebhookDelivery
from app.models import WebhookEndpoint
from app.models import utcnow
from app.webhooks import delivery as delivery_service
from app.webhooks import ssrf

EVENT_LABELS = {
    "sent": "Sent: a message left Loft for the recipient's server",
    "delivered": "Delivered: a provider confirmed delivery (only where a provider reports it)",
    "bounced": "Bounced: hard or soft bounce, or a refusal",
    "opened": "Opened",
    "clicked": "Clicked a link",
    "unsubscribed": "Unsubscribed",
    "complained": "Complained (marked as spam)",
    "tx_sent": "Transactional message sent",
    "tx_failed": "Transactional message failed",
    "tx_bounced": "Transactional message bounced",
    "tx_opened": "Transactional message opened (only a message sent with open tracking)",
    "tx_clicked": "Transactional message: a link clicked (only a message sent with click tracking)",
}
MAX_ENDPOINTS = 20
PER_PAGE = 25
types_of = delivery_service.types_of


class WebhookError(Problem):
    pass


def new_secret():
    return "whsec_" + secrets.token_urlsafe(24)


def list_endpoints(team):
    return list(WebhookEndpoint.select().where(WebhookEndpoint.team == team).order_by(WebhookEndpoint.id))


def form_values(endpoint):
    return {"url": endpoint.url, "description": endpoint.description, "event_types": types_of(endpoint)}


def validate(form, allow_private=False, resolver=None):
    """Clean values from a submitted form, or WebhookError (the URL is resolved and checked: ssrf.check)."""
    url = (form.get("url") or "").strip()
    try:
        ssrf.check(url, allow_private=allow_private, resolver=resolver)
    except ssrf.Refused as exc:
        raise WebhookError(str(exc), "url") from None
    description = (form.get("description") or "").strip()
    if len(description) > 200:
        raise WebhookError("Keep the description under 200 characters.", "description")
    chosen = form.getlist("event_types") if hasattr(form, "getlist") else list(form.get("event_types") or [])
    unknown = [t for t in chosen if t not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise WebhookError(f"Unknown event type: {', '.join(unknown)}.", "event_types")
    if not chosen:
        raise WebhookError("Choose at least one event type to send.", "event_types")
    types = [t for t in WEBHOOK_EVENT_TYPES if t in chosen]
    return {"url": url, "description": description, "event_types": types}


def create_endpoint(team, form, allow_private=False, resolver=None):
    values = validate(form, allow_private, resolver)
    with db.atomic():
        if WebhookEndpoint.select().where(WebhookEndpoint.team == team).count() >= MAX_ENDPOINTS:
            raise WebhookError(f"A team can have at most {MAX_ENDPOINTS} webhook endpoints.", "url")
        return WebhookEndpoint.create(team=team, secret=security.encrypt(new_secret()), **values)


def update_endpoint(endpoint, form, allow_private=False, resolver=None):
    values = validate(form, allow_private, resolver)
    WebhookEndpoint.update(values).where(WebhookEndpoint.id == endpoint.id).execute()
    return WebhookEndpoint.get_by_id(endpoint.id)


def delete_endpoint(endpoint):
    """Removes the endpoint and its delivery log (ON DELETE CASCADE, and explicitly for SQLite without FKs)."""
    with db.atomic():
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint.id).execute()
        endpoint.delete_instance()


def set_enabled(endpoint, enabled):
    WebhookEndpoint.update(enabled=bool(enabled)).where(WebhookEndpoint.id == endpoint.id).execute()
    return WebhookEndpoint.get_by_id(endpoint.id)


def reveal_secret(endpoint):
    """The signing secret in clear, or None when it cannot be decrypted any more (rotate it)."""
    return security.decrypt(endpoint.secret) if endpoint.secret else None


def rotate_secret(endpoint):
    """A new secret; requests signed from now on use it. Returns the new secret."""
    secret = new_secret()
    WebhookEndpoint.update(secret=security.encrypt(secret)).where(WebhookEndpoint.id == endpoint.id).execute()
    return secret


def status_counts(endpoint_ids):
    """{endpoint_id: {status: count}} of the deliveries of these endpoints."""
    counts = {}
    if not endpoint_ids:
        return counts
    rows = (WebhookDelivery.select(WebhookDelivery.endpoint, WebhookDelivery.status, fn.COUNT(WebhookDelivery.id))
            .where(WebhookDelivery.endpoint.in_(endpoint_ids))
            .group_by(WebhookDelivery.endpoint, WebhookDelivery.status).tuples())
    for endpoint_id, status, count in rows:
        counts.setdefault(endpoint_id, {})[status] = count
    return counts


class DeliveryLogPage:
    """One numbered page of an endpoint's delivery log."""

    def __init__(self, items, number, pages, total):
        self.items, self.number, self.pages, self.total = items, number, pages, total

    @property
    def has_prev(self):
        return self.number > 1

    @property
    def has_next(self):
        return self.number < self.pages


def deliveries_page(endpoint, page=1, status=None, per_page=PER_PAGE):
    """One page of an endpoint's delivery log, newest first; `status` filters (pending, delivered, failed)."""
    query = WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id)
    if status in ("pending", "delivered", "failed"):
        query = query.where(WebhookDelivery.status == status)
    total = query.count()
    pages = max(1, math.ceil(total / per_page))
    number = min(max(1, int(page or 1)), pages)
    items = list(query.order_by(WebhookDelivery.id.desc()).paginate(number, per_page))
    return DeliveryLogPage(items, number, pages, total)


def get_delivery(endpoint, delivery_id):
    return WebhookDelivery.get_or_none((WebhookDelivery.id == delivery_id)
                                       & (WebhookDelivery.endpoint == endpoint.id))


def send_test(endpoint, resolver=None):
    """Create a test delivery and attempt it now. Returns the WebhookDelivery after the attempt."""
    test = delivery_service.test_delivery(endpoint)
    return delivery_service.deliver(test.id, now=utcnow(), resolver=resolver) or test


def retry_delivery(delivery):
    return delivery_service.retry_now(delivery)
