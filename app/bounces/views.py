"""Views of bounce intake: bounce mailboxes and provider webhooks.

Administrators only ("manage_domains"): these pages hold mailbox logins and
webhook secrets. The provider endpoint /feedback/hooks/<provider>/<token> is
public and CSRF-exempt: providers call it, and each request is verified by
app.bounces.provider_webhooks before anything is read.
"""
import datetime

from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.bounces import imap
from app.bounces import provider_webhooks as hooks
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.models import BounceMailbox
from app.models import ProviderHook
from app.models import utcnow
from app.security import csrf_exempt
from app.senders import mailservers
from app.teams.context import require
from app.teams.context import team_object_or_404
from tasks import bounces as bounce_tasks

# The URLs keep their first name, /feedback/: providers hold webhook URLs under it.
bp = Blueprint("bounces", __name__, url_prefix="/feedback")


def public(view):
    """An endpoint other machines call (the role-matrix test skips these)."""
    view.public = True
    return view


# --- Bounce mailboxes ---------------------------------------------------------------------

def _render_form(mailbox, form, status=200, errors=None):
    preset = form.get("preset") if form.get("preset") in mailservers.IMAP_PRESETS else "generic"
    template = "bounces/_mailbox_form.html" if is_htmx() else "bounces/mailbox_form.html"
    return render_template(template, mailbox=mailbox, form=form, preset_key=preset,
                           preset=mailservers.IMAP_PRESETS[preset],
                           security_labels=mailservers.SECURITY_LABELS, accounts=imap.smtp_accounts(g.team),
                           errors=errors or {}), status


def _to_list(mailbox, message):
    flash(message, "success")
    target = url_for("bounces.index", _anchor=f"mailbox-{mailbox.id}")
    return hx_redirect(target) if is_htmx() else redirect(target)


@bp.route("/")
@require("manage_domains")
def index():
    return render_template("bounces/index.html", mailboxes=imap.list_mailboxes(g.team), imap=imap)


@bp.route("/mailboxes/new", methods=["GET", "POST"])
@require("manage_domains")
def new_mailbox():
    if request.method == "POST":
        try:
            mailbox = imap.create_mailbox(g.team, request.form)
        except imap.MailboxError as exc:
            return _render_form(None, request.form, 422, exc.errors)
        return _to_list(mailbox, f"Bounce mailbox “{mailbox.name}” saved. Test the connection next.")
    preset = request.args.get("preset")
    if preset not in mailservers.IMAP_PRESETS:
        return render_template("bounces/presets.html", presets=mailservers.IMAP_PRESETS,
                               account=request.args.get("account"))
    account = None
    if request.args.get("account", "").isdigit():
        account = next((a for a in imap.smtp_accounts(g.team) if a.id == int(request.args["account"])), None)
    return _render_form(None, imap.preset_values(preset, account))


@bp.route("/mailboxes/<int:mailbox_id>/edit", methods=["GET", "POST"])
@require("manage_domains")
def edit_mailbox(mailbox_id):
    mailbox = team_object_or_404(BounceMailbox, mailbox_id)
    if request.method == "POST":
        try:
            mailbox = imap.update_mailbox(mailbox, request.form)
        except imap.MailboxError as exc:
            return _render_form(mailbox, request.form, 422, exc.errors)
        return _to_list(mailbox, f"Bounce mailbox “{mailbox.name}” saved.")
    return _render_form(mailbox, imap.form_values(mailbox))


@bp.route("/mailboxes/<int:mailbox_id>/delete", methods=["POST"])
@require("manage_domains")
def delete_mailbox(mailbox_id):
    mailbox = team_object_or_404(BounceMailbox, mailbox_id)
    imap.delete_mailbox(mailbox)
    if is_htmx():
        return ""
    flash(f"Bounce mailbox “{mailbox.name}” removed. Its messages stay on the server.", "success")
    return redirect(url_for("bounces.index"))


@bp.route("/mailboxes/<int:mailbox_id>/test", methods=["POST"])
@require("manage_domains")
def test_mailbox(mailbox_id):
    """Really connect and log in; show the server's replies and the message count."""
    mailbox = team_object_or_404(BounceMailbox, mailbox_id)
    ok, transcript = imap.test_connection(mailbox)
    template = "bounces/_test_result.html" if is_htmx() else "bounces/test_result.html"
    return render_template(template, mailbox=mailbox, ok=ok, transcript=transcript,
                           summary=imap.summary_of(ok, transcript))


@bp.route("/mailboxes/<int:mailbox_id>/check", methods=["POST"])
@require("manage_domains")
def check_mailbox(mailbox_id):
    """Enqueue a check; the HTMX card polls itself until the check has stored its result."""
    mailbox = team_object_or_404(BounceMailbox, mailbox_id)
    asked_at = utcnow()
    bounce_tasks.check_bounce_mailbox(mailbox.id, manual=True)
    if is_htmx():
        return _card(mailbox.id, asked_at)
    flash(f"Checking “{mailbox.name}”: the result appears below within a minute.", "info")
    return redirect(url_for("bounces.index", _anchor=f"mailbox-{mailbox.id}"))


@bp.route("/mailboxes/<int:mailbox_id>")
@require("manage_domains")
def mailbox_card(mailbox_id):
    team_object_or_404(BounceMailbox, mailbox_id)
    if not is_htmx():
        return redirect(url_for("bounces.index", _anchor=f"mailbox-{mailbox_id}"))
    try:
        asked_at = datetime.datetime.fromisoformat(request.args.get("after", ""))
    except ValueError:
        asked_at = None
    return _card(mailbox_id, asked_at)


def _card(mailbox_id, asked_at=None):
    """The mailbox card; while a check asked for at `asked_at` has not run, it polls itself (for
    two minutes: after that it says the worker seems not to run, and stops)."""
    mailbox = team_object_or_404(BounceMailbox, mailbox_id)
    waiting = asked_at is not None and (mailbox.last_checked_at is None or mailbox.last_checked_at < asked_at)
    stalled = waiting and utcnow() - asked_at > datetime.timedelta(minutes=2)
    return render_template("bounces/_mailbox.html", mailbox=mailbox, imap=imap, stalled=stalled,
                           waiting_since=asked_at.isoformat() if waiting and not stalled else None)


# --- Provider webhooks: settings ------------------------------------------------------------

def _render_hook(provider, hook, status=200, error=None):
    if is_htmx():
        return render_template("bounces/_hook.html", provider=provider, label=hooks.PROVIDERS[provider],
                               hook=hook, hooks=hooks, error=error), status
    if error:
        flash(error, "error")
    return redirect(url_for("bounces.webhooks", _anchor=f"hook-{provider}"))


@bp.route("/webhooks")
@require("manage_domains")
def webhooks():
    return render_template("bounces/webhooks.html", all_hooks=hooks.hooks_of(g.team), hooks=hooks)


@bp.route("/webhooks/<provider>/enable", methods=["POST"])
@require("manage_domains")
def enable_hook(provider):
    if provider not in hooks.PROVIDERS:
        abort(404)
    hook = hooks.enable(g.team, provider)
    return _render_hook(provider, hook)


@bp.route("/webhooks/<provider>/rotate", methods=["POST"])
@require("manage_domains")
def rotate_hook(provider):
    hook = hooks.rotate(team_object_or_404(ProviderHook, provider=provider))
    if not is_htmx():
        flash(f"New {hooks.PROVIDERS[provider]} URL: paste it into the provider's console; the old one no longer "
              "works.", "success")
    return _render_hook(provider, hook)


@bp.route("/webhooks/<provider>/key", methods=["POST"])
@require("manage_domains")
def save_hook_key(provider):
    hook = team_object_or_404(ProviderHook, provider=provider)
    try:
        hook = hooks.save_key(hook, request.form.get("key", ""))
    except hooks.HookSettingError as exc:
        return _render_hook(provider, hook, 422, str(exc))
    if not is_htmx():
        flash(f"{hooks.PROVIDERS[provider]} key saved.", "success")
    return _render_hook(provider, hook)


@bp.route("/webhooks/<provider>/delete", methods=["POST"])
@require("manage_domains")
def delete_hook(provider):
    hooks.delete(team_object_or_404(ProviderHook, provider=provider))
    return _render_hook(provider, None)


# --- Provider webhooks: the endpoint providers call ----------------------------------------------

@bp.route("/hooks/<provider>/<token>", methods=["POST"])
@public
@csrf_exempt
def receive(provider, token):
    hook = hooks.find_hook(provider, token)
    if hook is None:
        return jsonify(error="unknown webhook URL"), 404
    auth = (request.authorization.username, request.authorization.password) if request.authorization else None
    try:
        result = hooks.receive(hook, request.headers, request.get_data(cache=False), auth=auth)
    except hooks.Refused as refused:
        hooks.record_refusal(hook, refused.reason)
        return jsonify(error=refused.reason), refused.status
    return jsonify(result)
