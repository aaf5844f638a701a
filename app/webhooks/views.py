"""Views of outgoing webhooks: endpoints, secrets, test events, the delivery log.

Administrators only ("manage_domains"), for reading too. A webhook streams every
contact's address and activity to an outside URL: the same exposure as a data
export (which Managers may not do), and an outbound integration like SMTP
accounts and sender domains, which are "manage_domains" as well. Managers have
"manage_settings", so that permission would have let them around the export rule.
"""
from flask import Blueprint
from flask import abort
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.models import WEBHOOK_EVENT_TYPES
from app.models import WebhookEndpoint
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.webhooks import services
from tasks import webhooks as webhook_tasks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
PERMISSION = "manage_domains"


def _allow_private():
    return bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE"))


def _render_form(endpoint, form, problem=None, status=200):
    template = "webhooks/_form.html" if is_htmx() else "webhooks/form.html"
    chosen = form.getlist("event_types") if hasattr(form, "getlist") else form.get("event_types", [])
    return render_template(template, hook=endpoint, form=form, chosen=chosen,
                           error=problem.message if problem else None, errors=problem.errors if problem else {},
                           event_types=WEBHOOK_EVENT_TYPES, labels=services.EVENT_LABELS,
                           allow_private=_allow_private()), status


def _go(url):
    return hx_redirect(url) if is_htmx() else redirect(url)


@bp.route("/")
@require(PERMISSION)
def index():
    endpoints = services.list_endpoints(g.team)
    counts = services.status_counts([e.id for e in endpoints])
    return render_template("webhooks/index.html", endpoints=endpoints, counts=counts, types_of=services.types_of)


@bp.route("/new", methods=["GET", "POST"])
@require(PERMISSION)
def new_endpoint():
    if request.method == "POST":
        try:
            endpoint = services.create_endpoint(g.team, request.form, allow_private=_allow_private())
        except services.WebhookError as exc:
            return _render_form(None, request.form, exc, 422)
        flash("Endpoint added. Copy its signing secret below to check the X-Loft-Signature of each request.",
              "success")
        return _go(url_for("webhooks.endpoint", endpoint_id=endpoint.id, reveal=1))
    return _render_form(None, {"event_types": list(WEBHOOK_EVENT_TYPES)})


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
@require(PERMISSION)
def edit_endpoint(endpoint_id):
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    if request.method == "POST":
        try:
            services.update_endpoint(endpoint, request.form, allow_private=_allow_private())
        except services.WebhookError as exc:
            return _render_form(endpoint, request.form, exc, 422)
        flash("Endpoint saved.", "success")
        return _go(url_for("webhooks.endpoint", endpoint_id=endpoint.id))
    return _render_form(endpoint, services.form_values(endpoint))


@bp.route("/<int:endpoint_id>")
@require(PERMISSION)
def endpoint(endpoint_id):
    """The endpoint and its delivery log (paginated, filterable by status)."""
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    status = request.args.get("status") or None
    page = services.deliveries_page(endpoint, request.args.get("page", 1, type=int), status)
    secret = services.reveal_secret(endpoint) if request.args.get("reveal") else None
    context = dict(hook=endpoint, page=page, status=status, types=services.types_of(endpoint),
                   counts=services.status_counts([endpoint.id]).get(endpoint.id, {}), secret=secret)
    if is_htmx() and request.headers.get("HX-Target") == "deliveries":
        return render_template("webhooks/_deliveries.html", **context)
    return render_template("webhooks/endpoint.html", **context)


@bp.route("/<int:endpoint_id>/delete", methods=["POST"])
@require(PERMISSION)
def delete_endpoint(endpoint_id):
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    services.delete_endpoint(endpoint)
    flash(f"Endpoint {endpoint.url} deleted with its delivery log.", "success")
    return _go(url_for("webhooks.index"))


@bp.route("/<int:endpoint_id>/enabled", methods=["POST"])
@require(PERMISSION)
def set_enabled(endpoint_id):
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    enabled = request.form.get("enabled") == "1"
    services.set_enabled(endpoint, enabled)
    flash(f"Endpoint {'enabled: new events are sent to it' if enabled else 'disabled: nothing is sent to it'}.",
          "success" if enabled else "info")
    return _go(request.form.get("back") == "index" and url_for("webhooks.index")
               or url_for("webhooks.endpoint", endpoint_id=endpoint.id))


@bp.route("/<int:endpoint_id>/secret", methods=["POST"])
@require(PERMISSION)
def secret(endpoint_id):
    """Reveal (action=reveal) or rotate (action=rotate) the signing secret; the fragment shows it."""
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    rotated = request.form.get("action") == "rotate"
    value = services.rotate_secret(endpoint) if rotated else services.reveal_secret(endpoint)
    if is_htmx():
        return render_template("webhooks/_secret.html", hook=endpoint, secret=value, rotated=rotated)
    if rotated:
        flash("New secret made: requests are signed with it from now on. Update your receiver.", "success")
    return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id, reveal=1))


@bp.route("/<int:endpoint_id>/test", methods=["POST"])
@require(PERMISSION)
def send_test(endpoint_id):
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    delivery = services.send_test(endpoint)
    if delivery.status == "delivered":
        flash(f"Test event delivered: the endpoint answered {delivery.last_status_code}.", "success")
    else:
        flash(f"The test event was not delivered. {delivery.last_error}", "error")
    return _go(url_for("webhooks.endpoint", endpoint_id=endpoint.id))


@bp.route("/<int:endpoint_id>/deliveries/<int:delivery_id>/retry", methods=["POST"])
@require(PERMISSION)
def retry(endpoint_id, delivery_id):
    endpoint = team_object_or_404(WebhookEndpoint, endpoint_id)
    delivery = services.get_delivery(endpoint, delivery_id) or abort(404)
    if delivery.status == "delivered":
        flash("This event was already delivered.", "info")
    else:
        services.retry_delivery(delivery)
        webhook_tasks.deliver(delivery.id)
        flash("Sending it again now: the log shows the result.", "info")
    return _go(url_for("webhooks.endpoint", endpoint_id=endpoint.id))
