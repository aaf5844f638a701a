"""/health for uptime monitors: no auth, JSON, cheap enough to poll every second.

Anyone gets the status (and 503 when degraded); the detail (version, database, queue depth) is for
signed-in users and for callers on this machine that did not come through a proxy: a version and a
backlog tell an attacker which holes to try and when the instance is busy.
"""
import ipaddress

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask_login import current_user

from app.health import services
from app.operations import heartbeat
from tasks import huey

bp = Blueprint("health", __name__)


@bp.route("/health")
def status():
    worker = _worker()
    report = services.health(current_app.config["VERSION"], huey, worker)
    response = jsonify(report if _may_see_detail() else {"status": report["status"]})
    response.status_code = 200 if report["status"] == "ok" else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _worker():
    """Whether the worker runs (its heartbeat), or None when the database cannot say: "database" says why."""
    try:
        return heartbeat.status(immediate=huey.immediate)
    except Exception:
        return None


def _may_see_detail():
    if current_user.is_authenticated:
        return True
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return False  # relayed by a proxy (on this machine, maybe): the caller is elsewhere
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
