"""The Transactional page: the team's latest transactional messages, by status, and one message with its
status history. Reading only ("view"): messages are sent through the API or SMTP submission."""
from flask import Blueprint
from flask import abort
from flask import g
from flask import render_template
from flask import request

from app.models import TX_STATUSES
from app.teams.context import require
from app.transactional import service

bp = Blueprint("transactional", __name__, url_prefix="/transactional")

PAGE_SIZE = 50


@bp.route("/")
@require("view")
def index():
    status = request.args.get("status", "")
    if status and status not in TX_STATUSES:
        abort(404)
    before = request.args.get("before", type=int)
    messages = service.latest(g.team, status=status or None, before=before, limit=PAGE_SIZE + 1)
    older = messages[PAGE_SIZE - 1].id if len(messages) > PAGE_SIZE else None
    return render_template("transactional/index.html", messages=messages[:PAGE_SIZE], status=status,
                           statuses=TX_STATUSES, older=older, filtered=bool(status or before),
                           any_sent=bool(messages) or service.has_messages(g.team))


@bp.route("/<int:tx_id>")
@require("view")
def message(tx_id):
    tx = service.get_message(g.team, tx_id)
    if tx is None:
        abort(404)
    return render_template("transactional/message.html", tx=tx, history=service.status_history(tx))
