"""Views of the sending area: SMTP accounts and sender domains.

Administrators only ("manage_domains"), for reading too: the accounts page
shows servers and logins. Passwords and DKIM private keys are never rendered.
"""
from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.campaigns import states
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.models import SenderDomain
from app.models import SmtpAccount
from app.senders import accounts as account_services
from app.senders import domains as domain_services
from app.senders import mailservers
from app.senders import smtp_client
from app.senders import warmup
from app.teams.context import require
from app.teams.context import team_object_or_404

bp = Blueprint("sending", __name__, url_prefix="/sending")


# --- SMTP accounts ---------------------------------------------------------------

def _render_form(account, form, status=200, **context):
    preset = form.get("preset") or "generic"
    template = "sending/_account_form.html" if is_htmx() else "sending/account_form.html"
    return render_template(template, account=account, form=form, preset=mailservers.SMTP_PRESETS.get(
        preset, mailservers.SMTP_PRESETS["generic"]), preset_key=preset, tls_labels=mailservers.TLS_LABELS,
        warming=account_services.warmup_in_words(account) if account else "", warmup_full_volume=warmup.FULL_VOLUME,
        warmup_presets=warmup.PRESETS, errors=context.pop("errors", {}), **context), status


def _saved(account, warnings, message):
    states.stop_waiting(g.team.id)  # a changed plan or limit: campaigns waiting for the old one go on
    flash(message, "success")
    for warning in warnings:
        flash(warning, "warning")
    target = url_for("sending.accounts", _anchor=f"account-{account.id}")
    return hx_redirect(target) if is_htmx() else redirect(target)


@bp.route("/accounts")
@require("manage_domains")
def accounts():
    rows = account_services.list_accounts(g.team)
    counts = account_services.sent_counts([a.id for a in rows])
    return render_template("sending/accounts.html", accounts=rows, counts=counts, services=account_services)


@bp.route("/accounts/new", methods=["GET", "POST"])
@require("manage_domains")
def new_account():
    if request.method == "POST":
        try:
            account, warnings = account_services.create_account(g.team, request.form)
        except account_services.AccountError as exc:
            return _render_form(None, request.form, 422, errors=exc.errors)
        return _saved(account, warnings, f"SMTP account “{account.name}” saved. Test the connection next.")
    preset = request.args.get("preset")
    if preset not in mailservers.SMTP_PRESETS:
        return render_template("sending/presets.html", presets=mailservers.SMTP_PRESETS)
    return _render_form(None, account_services.preset_values(preset))


@bp.route("/accounts/<int:account_id>/edit", methods=["GET", "POST"])
@require("manage_domains")
def edit_account(account_id):
    account = team_object_or_404(SmtpAccount, account_id)
    if request.method == "POST":
        try:
            account, warnings = account_services.update_account(account, request.form)
        except account_services.AccountError as exc:
            return _render_form(account, request.form, 422, errors=exc.errors)
        return _saved(account, warnings, f"SMTP account “{account.name}” saved.")
    return _render_form(account, account_services.form_values(account))


@bp.route("/accounts/<int:account_id>/delete", methods=["POST"])
@require("manage_domains")
def delete_account(account_id):
    account = team_object_or_404(SmtpAccount, account_id)
    account_services.delete_account(account)
    if is_htmx():
        return ""  # the card is removed in place
    flash(f"SMTP account “{account.name}” deleted.", "success")
    return redirect(url_for("sending.accounts"))


def _render_card(account):
    account = account_services.get_account(g.team, account.id)
    counts = account_services.sent_counts([account.id])
    if is_htmx():
        return render_template("sending/_account.html", account=account, counts=counts, services=account_services)
    return redirect(url_for("sending.accounts", _anchor=f"account-{account.id}"))


@bp.route("/accounts/<int:account_id>/pause", methods=["POST"])
@require("manage_domains")
def pause_account(account_id):
    account = team_object_or_404(SmtpAccount, account_id)
    account_services.pause_account(account.id, "Paused by hand.")
    if not is_htmx():
        flash(f"“{account.name}” is paused: no campaign sends through it until you resume it.", "info")
    return _render_card(account)


@bp.route("/accounts/<int:account_id>/resume", methods=["POST"])
@require("manage_domains")
def resume_account(account_id):
    account = team_object_or_404(SmtpAccount, account_id)
    account_services.resume_account(account.id)
    if not is_htmx():
        flash(f"“{account.name}” is active again.", "success")
    return _render_card(account)


@bp.route("/accounts/<int:account_id>/test", methods=["POST"])
@require("manage_domains")
def test_account(account_id):
    """Really connect, encrypt and log in; show the server's replies verbatim."""
    account = team_object_or_404(SmtpAccount, account_id)
    ok, transcript = smtp_client.test_connection(account)
    account_services.record_test(account, ok, smtp_client.summary_of(ok, transcript))
    template = "sending/_test_result.html" if is_htmx() else "sending/test_result.html"
    # The card's "Last test" line is refreshed with the result (out of band), from the stored row.
    return render_template(template, account=team_object_or_404(SmtpAccount, account.id), ok=ok, transcript=transcript,
                           summary=smtp_client.summary_of(ok, transcript), services=account_services,
                           refresh_card=is_htmx())


# --- Sender domains ------------------------------------------------------------

@bp.route("/domains", methods=["GET", "POST"])
@require("manage_domains")
def domains():
    if request.method == "POST":
        try:
            domain = domain_services.add_domain(g.team, request.form.get("domain", ""))
        except domain_services.DomainError as exc:
            return _render_domains(form=request.form, errors={"domain": str(exc)}), 422
        flash(f"{domain.domain} added. Publish the DNS records below, then check them.", "success")
        target = url_for("sending.domain", domain_id=domain.id)
        return hx_redirect(target) if is_htmx() else redirect(target)
    return _render_domains(form={})


def _render_domains(**context):
    return render_template("sending/domains.html", domains=domain_services.list_domains(g.team),
                           last_status=domain_services.last_status, **context)


def _render_domain(row, form=None, errors=None, status=200):
    template = "sending/_domain_warmup.html" if is_htmx() else "sending/domain.html"
    return render_template(template, domain=row, records=domain_services.dns_records(row),
                           status=domain_services.last_status(row),
                           form=form if form is not None else domain_services.warmup_form_values(row),
                           errors=errors or {}, warmup_presets=warmup.PRESETS, warming=warmup.in_words(row),
                           plan=warmup.describe(row), sent_today=warmup.domain_sent(row),
                           cap_today=warmup.limit(row)), status


@bp.route("/domains/<int:domain_id>")
@require("manage_domains")
def domain(domain_id):
    return _render_domain(team_object_or_404(SenderDomain, domain_id))


@bp.route("/domains/<int:domain_id>/warmup", methods=["POST"])
@require("manage_domains")
def domain_warmup(domain_id):
    """The domain's warm-up plan: it caps everything sent From the domain across the team's accounts."""
    row = team_object_or_404(SenderDomain, domain_id)
    try:
        row = domain_services.save_warmup_plan(row, request.form, account_services.whole_number)
    except domain_services.DomainError as exc:
        return _render_domain(row, request.form, exc.errors, 422)
    states.stop_waiting(g.team.id)  # campaigns waiting under the old plan go on (the minute tick)
    flash(f"Warm-up plan of {row.domain} saved." if row.warmup_started_on else
          f"{row.domain} has no warm-up plan now.", "success")
    if is_htmx():  # the same page again: an anchor alone would only scroll, not reload it
        return hx_redirect(url_for("sending.domain", domain_id=row.id))
    return redirect(url_for("sending.domain", domain_id=row.id, _anchor="warmup"))


@bp.route("/domains/<int:domain_id>/check", methods=["POST"])
@require("manage_domains")
def check_domain(domain_id):
    """Look the records up in DNS now; the domain becomes verified when the verification TXT matches."""
    row = team_object_or_404(SenderDomain, domain_id)
    status = domain_services.check_dns(row)
    row = team_object_or_404(SenderDomain, domain_id)
    if is_htmx():
        return render_template("sending/_dns_status.html", domain=row, status=status)
    flash("DNS checked." if not row.verified_at else f"{row.domain} is verified.", "info")
    return redirect(url_for("sending.domain", domain_id=row.id))


@bp.route("/domains/<int:domain_id>/delete", methods=["POST"])
@require("manage_domains")
def delete_domain(domain_id):
    row = team_object_or_404(SenderDomain, domain_id)
    domain_services.delete_domain(row)
    flash(f"{row.domain} removed. Campaigns can no longer send from it.", "success")
    target = url_for("sending.domains")
    return hx_redirect(target) if is_htmx() else redirect(target)
