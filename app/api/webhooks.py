"""/api/v1/webhooks: the team's outgoing webhook endpoints (list, get, create, update, delete) and a test
delivery, through app/webhooks/services.py like the webhook pages, with their permission (manage_domains:
Administrators only, as a webhook streams every contact's activity out). Each URL passes the same SSRF
guard as on the page; the signing secret is answered once, when the endpoint is made."""
import datetime
from typing import Literal

from flask import g
from pydantic import Field

from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.models import WEBHOOK_EVENT_TYPES
from app.models import WebhookEndpoint
from app.teams.context import team_object_or_404
from app.webhooks import services
from app.webhooks.delivery import allow_private

PERMISSION = "manage_domains"  # the webhook pages' permission
EventType = Literal[WEBHOOK_EVENT_TYPES]
URL_HELP = ("Where Loft POSTs each event, signed (X-Loft-Signature). http(s) only; it must resolve to public "
            "addresses unless the instance allows private targets.")


class WebhookOut(Schema):
    id: int
    url: str
    description: str
    event_types: list[EventType]
    enabled: bool
    created_at: datetime.datetime
    deliveries: dict[str, int] = Field(description="Deliveries by status (pending, delivered, failed).")


class WebhooksOut(Schema):
    data: list[WebhookOut]


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret. Shown only in this answer: keep it now.")


class WebhookIn(Strict):
    url: str = Field(max_length=2000, description=URL_HELP)
    description: str = Field("", max_length=200)
    event_types: list[EventType] = Field(default_factory=lambda: list(WEBHOOK_EVENT_TYPES), max_length=50,
                                         description="The events to send; every type when left out.")


class WebhookPatch(Strict):
    url: str | None = Field(None, max_length=2000, description=URL_HELP)
    description: str | None = Field(None, max_length=200)
    event_types: list[EventType] | None = Field(None, max_length=50)
    enabled: bool | None = Field(None, description="A disabled endpoint is sent nothing.")


class WebhookTestOut(Schema):
    id: int = Field(description="The test delivery in the endpoint's delivery log.")
    delivered: bool
    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: not delivered yet, retried later like any delivery.")
    status_code: int | None = Field(description="The endpoint's HTTP status; null when it did not answer.")
    error: str = Field(description="Why it was not delivered; empty when it was.")


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def webhook_out(endpoint, counts=None, model=WebhookOut, **extra):
    if counts is None:
        counts = services.status_counts([endpoint.id]).get(endpoint.id, {})
    return model(id=endpoint.id, url=endpoint.url, description=endpoint.description,
                 event_types=services.types_of(endpoint), enabled=endpoint.enabled,
                 created_at=utc(endpoint.created_at), deliveries=counts, **extra)


@operation("/webhooks", "GET", PERMISSION, ok=WebhooksOut, tags=["webhooks"])
def list_webhooks():
    """List the webhook endpoints"""
    endpoints = services.list_endpoints(g.team)
    counts = services.status_counts([endpoint.id for endpoint in endpoints])
    return WebhooksOut(data=[webhook_out(endpoint, counts.get(endpoint.id, {})) for endpoint in endpoints])


@operation("/webhooks/<int:endpoint_id>", "GET", PERMISSION, ok=WebhookOut, tags=["webhooks"])
def get_webhook(endpoint_id):
    """Get a webhook endpoint (without its secret)"""
    return webhook_out(team_object_or_404(WebhookEndpoint, endpoint_id))


@operation("/webhooks", "POST", PERMISSION, ok=WebhookCreated, status=201, body=WebhookIn, tags=["webhooks"],
           location="/webhooks/{id}")
def create_webhook(body):
    """Add a webhook endpoint; the answer holds its signing secret, once"""
    endpoint = services.create_endpoint(g.team, body.model_dump(), allow_private=allow_private())
    return webhook_out(endpoint, {}, WebhookCreated, secret=services.reveal_secret(endpoint))


@operation("/webhooks/<int:endpoint_id>", "PATCH", PERMISSION, ok=WebhookOut, body=WebhookPatch, tags=["webhooks"])
def update_webhook(endpoint_id, body):
    """Change a webhook endpoint: only the values given"""
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    changes = body.model_dump(exclude_none=True)
    enabled = changes.pop("enabled", None)
    if changes:
        endpoint = services.update_endpoint(endpoint, {**services.form_values(endpoint), **changes},
                                            allow_private=allow_private())
    if enabled is not None:
        endpoint = services.set_enabled(endpoint, enabled)
    return webhook_out(endpoint)


@operation("/webhooks/<int:endpoint_id>", "DELETE", PERMISSION, tags=["webhooks"])
def delete_webhook(endpoint_id):
    """Delete a webhook endpoint with its delivery log"""
    services.delete_endpoint(team_object_or_404(WebhookEndpoint, endpoint_id))


@operation("/webhooks/<int:endpoint_id>/test", "POST", PERMISSION, ok=WebhookTestOut, tags=["webhooks"])
def send_test_event(endpoint_id):
    """Send a signed test event to the endpoint now and answer how it went"""
    delivery = services.send_test(team_object_or_404(WebhookEndpoint, endpoint_id))
    return WebhookTestOut(id=delivery.id, delivered=delivery.status == "delivered", status=delivery.status,
                           status_code=delivery.last_status_code, error=delivery.last_error or "")
