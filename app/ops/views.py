"""/health for uptime monitors: no auth, JSON, cheap enough to poll every second."""
from flask import Blueprint
from flask import current_app
from flask import jsonify

from app.ops import services
from tasks import huey

bp = Blueprint("ops", __name__)


@bp.route("/health")
def health():
    report = services.health(current_app.config["VERSION"], huey)
    response = jsonify(report)
    response.status_code = 200 if report["status"] == "ok" else 503
    response.headers["Cache-Control"] = "no-store"
    return response
