"""The Transactional page: the team's latest transactional messages, by status, and one message with its
status history. Reading only ("view"): messages are sent through the API or SMTP submission. Administrators
("export_data", like a contact's erasure) may erase a recipient's address that is not a contact."""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.consent import gdpr
from app.consent.services import ConsentError

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


@bp.route("/erase", methods=["GET", "POST"])
@require("export_data")
def erase_address():
    if request.method == "POST":
        try:
            hint, messages = gdpr.erase_address(g.team, current_user, request.form.get("email", ""))
        except ConsentError as error:
            return render_template("transactional/erase.html", errors=error.errors,
                                   email=request.form.get("email", "")), 422
        flash(f"{hint} was erased: {messages:,} transactional message{'' if messages == 1 else 's'} kept without "
              "the address, subject or body, and the address is on the suppression list as a keyed hash.", "success")
        return redirect(url_for("transactional.index"))
    return render_template("transactional/erase.html", errors={}, email="")
