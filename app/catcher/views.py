"""The Outbox page: what the local mail catcher received, for the instance admin."""
from flask import Blueprint
from flask import Response
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.admin.views import instance_admin_required
from app.htmx import is_htmx
from app.catcher import services
from app.security import untrusted_html_response
from app.wording import plural

bp = Blueprint("catcher", __name__, url_prefix="/outbox")



@bp.route("/")
@instance_admin_required
def index():
    messages, next_before = services.recent_messages(request.args.get("before", type=int),
                                                     request.args.get("q", "").strip())
    template = "catcher/_rows.html" if is_htmx() else "catcher/index.html"
    return render_template(template, messages=messages, next_before=next_before, q=request.args.get("q", ""))


@bp.route("/<int:message_id>")
@instance_admin_required
def show(message_id):
    message = services.get_message(message_id) or abort(404)
    return render_template("catcher/show.html", message=message, parts=services.parse(message),
                           tab=request.args.get("tab", "html"))


@bp.route("/<int:message_id>/html")
@instance_admin_required
def html(message_id):
    message = services.get_message(message_id) or abort(404)
    body = services.parse(message)["html"] or "<p>This message has no HTML part.</p>"
    # Shown only inside a sandboxed iframe; the policy also holds should someone open the URL directly.
    return untrusted_html_response(body, remote_images=False)


@bp.route("/<int:message_id>/raw")
@instance_admin_required
def raw(message_id):
    message = services.get_message(message_id) or abort(404)
    response = Response(bytes(message.raw), mimetype="text/plain")
    response.headers["Content-Disposition"] = f'inline; filename="message-{message.id}.eml"'
    return response


@bp.route("/clear", methods=["POST"])
@instance_admin_required
def clear():
    count = services.clear()
    flash(f"Deleted {plural(count, 'message')} from the Outbox.", "info")
    return redirect(url_for("catcher.index"))
