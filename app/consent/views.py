"""Consent: the suppression list, GDPR export and erasure, sign-up forms, the preference center.

Team pages live under /contacts/... next to the rest of the audience. The
public pages (/f/... sign-up forms, /p/... preference center) need no
sign-in, use their own minimal layout and set no cookie. Their POSTs are
exempt from the session CSRF check, for two different reasons: a sign-up
form is meant to be posted from other sites (the embedded snippet), and is
defended by the honeypot, the timing stamp and the per-IP limit instead;
the confirmation and preference pages carry a signed token in their URL
that only the recipient of the email knows, which is exactly what a CSRF
token would prove, and works without a cookie.
"""
from flask import Blueprint
from flask import Response
from flask import abort
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.brand import services as brand
from app.consent import forms
from app.consent import gdpr
from app.consent import preferences
from app.consent import services
from app.consent import signup_forms
from app.consent.signup_forms import SignupFormError
from app.consent.services import ConsentError
from app.htmx import is_htmx
from app.models import Contact
from app.models import SignupForm
from app.models import Suppression
from app.security import accepts_upload
from app.security import csrf_exempt
from app.settings import base_url
from app.teams.context import require
from app.teams.context import team_object_or_404
from tasks.automations import advance_soon
from tasks.consent import send_confirmation

bp = Blueprint("consent", __name__)


def public(view):
    """A page anyone may open (the role-matrix test skips these)."""
    view.public = True
    return view


def client_ip():
    # Behind a TLS proxy set LOFT_PROXIES so remote_addr is the visitor (ProxyFix in create_app).
    return request.remote_addr or "unknown"


# --- Suppression list -----------------------------------------------------------

def _done(notice):
    """After a change: the fresh fragment for HTMX, else Post/Redirect/Get with a flash."""
    if is_htmx():
        return _render_suppression(notice=notice)
    flash(notice, "success")
    return redirect(url_for("consent.suppression"))


def _render_suppression(status=200, **context):
    before = request.args.get("before", type=int)
    entries, next_before = services.entries_page(g.team, before)
    context.setdefault("form", {})
    template = "consent/_suppression.html" if is_htmx() else "consent/suppression.html"
    return render_template(template, entries=entries, next_before=next_before, before=before,
                           total=services.total(g.team), reasons=services.REASON_LABELS,
                           kinds=services.KIND_LABELS, **context), status


@bp.route("/contacts/suppression")
@require("view")
def suppression():
    return _render_suppression()


@bp.route("/contacts/suppression/add", methods=["POST"])
@require("edit_content")
def add_suppression():
    try:
        entry, new, marked = services.add(g.team, current_user, request.form.get("value", ""))
    except ConsentError as exc:
        return _render_suppression(422, error=str(exc), errors=exc.errors, form=request.form)
    what = "Domain" if entry.kind == "domain" else "Address"
    notice = f"{what} {entry.hint} added." if new else f"{entry.hint} was already on the list."
    if marked:
        notice += f" {marked} contact{'s' if marked != 1 else ''} marked Suppressed."
    return _done(notice)


@bp.route("/contacts/suppression/check", methods=["POST"])
@require("view")
def check_suppression():
    value = request.form.get("value", "")
    try:
        found = services.check(g.team, value)
    except ConsentError as exc:
        return render_template("consent/_check.html", error=str(exc), value=value), 422
    return render_template("consent/_check.html", found=found, value=value, checked=True,
                           reasons=services.REASON_LABELS)


@bp.route("/contacts/suppression/<int:entry_id>/remove", methods=["POST"])
@require("edit_content")
def remove_suppression(entry_id):
    entry = team_object_or_404(Suppression, entry_id)
    try:
        services.remove(g.team, current_user, entry, request.form.get("confirm", ""))
    except ConsentError as exc:
        return _render_suppression(422, error=str(exc), errors={f"confirm-{entry.id}": str(exc)})
    return _done(f"{entry.hint} removed from the suppression list.")


@bp.route("/contacts/suppression/import", methods=["POST"])
@accepts_upload(services.MAX_IMPORT_BYTES + 64 * 1024)  # the file and the form around it; the service says why
@require("edit_content")
def import_suppression():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_suppression(422, errors={"file": "Choose a text or CSV file to import."})
    try:
        result = services.import_entries(g.team, current_user, upload.read())
    except ConsentError as exc:
        return _render_suppression(422, errors={"file": str(exc)})
    return _render_suppression(result=result, filename=upload.filename)


# --- GDPR -------------------------------------------------------------------------

@bp.route("/contacts/<int:contact_id>/export.json")
@require("export_data")
def export_contact(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    body = gdpr.export_json(g.team, current_user, contact)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{gdpr.export_filename(contact)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/contacts/<int:contact_id>/erase", methods=["GET", "POST"])
@require("export_data")
def erase_contact(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    if request.method == "POST":
        try:
            hint = gdpr.erase(g.team, current_user, contact, request.form.get("confirm", ""))
        except ConsentError as exc:
            return render_template("consent/erase.html", contact=contact, errors={"confirm": str(exc)}), 422
        flash(f"The contact {hint} was erased. Its address stays on the suppression list as a keyed hash, "
              "so it is never added or mailed again.", "success")
        return redirect(url_for("contacts.index") if "contacts.index" in current_app.view_functions
                        else url_for("consent.suppression"))
    return render_template("consent/erase.html", contact=contact)


# --- Sign-up forms (team side) ------------------------------------------------

@bp.route("/contacts/forms", endpoint="forms")
@require("view")
def forms_page():
    lists = forms.forms_of(g.team)
    return render_template("consent/forms.html", lists=lists, honeypot=forms.HONEYPOT,
                           wording=forms.consent_wording, private_count=forms.private_list_count(g.team),
                           built=signup_forms.forms_of(g.team))


def _render_builder(signup_form=None, status=200, **context):
    context.setdefault("form", signup_forms.form_values(signup_form) if signup_form
                       else signup_forms.new_form_values())
    share = {}
    if signup_form is not None:
        share = {"url": _built_form_url(signup_form), "snippet": _snippet(signup_form),
                 "popup": url_for("consent.form_popup", public_id=signup_form.public_id, _external=False),
                 "counts": signup_forms.signup_count(signup_form)}
    query = (context["form"].to_dict(flat=False) if hasattr(context["form"], "to_dict")
             else dict(context["form"]))
    query.pop("csrf_token", None)
    return render_template("consent/builder.html", signup_form=signup_form, share=share, form_query=query,
                           brand_values=brand.values_of(brand.kit_of(g.team)),
                           choices=signup_forms.field_choices(g.team),
                           lists=signup_forms.lists_for_builder(g.team), **context), status


def _built_form_url(signup_form):
    return f"{base_url()}/f/{signup_form.public_id}"


def _snippet(signup_form):
    lists = signup_forms.public_lists(signup_form)
    return render_template("consent/_built_snippet.html", signup_form=signup_form, url=_built_form_url(signup_form),
                           fields=signup_forms.asked_fields(signup_form), honeypot=forms.HONEYPOT,
                           wording=signup_forms.wording(signup_form, lists))


@bp.route("/contacts/forms/new", methods=["GET", "POST"])
@require("edit_content")
def form_new():
    if request.method == "POST":
        try:
            signup_form = signup_forms.create(g.team, request.form)
        except SignupFormError as exc:
            return _render_builder(None, 422, form=request.form, error=exc.message, errors=exc.errors)
        flash(f"Form “{signup_form.name}” created. Share it with the address, the snippet or the popup below.",
              "success")
        return redirect(url_for("consent.form_edit", form_id=signup_form.id))
    return _render_builder()


@bp.route("/contacts/forms/<int:form_id>")
@require("view")
def form_edit(form_id):
    return _render_builder(team_object_or_404(SignupForm, form_id))


@bp.route("/contacts/forms/<int:form_id>", methods=["POST"])
@require("edit_content")
def form_save(form_id):
    signup_form = team_object_or_404(SignupForm, form_id)
    try:
        signup_form = signup_forms.update(g.team, signup_form, request.form)
    except SignupFormError as exc:
        return _render_builder(signup_form, 422, form=request.form, error=exc.message, errors=exc.errors)
    flash(f"Form “{signup_form.name}” saved.", "success")
    return redirect(url_for("consent.form_edit", form_id=signup_form.id))


@bp.route("/contacts/forms/<int:form_id>/delete", methods=["POST"])
@require("edit_content")
def form_delete(form_id):
    signup_form = team_object_or_404(SignupForm, form_id)
    signup_forms.delete(g.team, signup_form)
    flash(f"Form “{signup_form.name}” deleted. Its page, snippet and popup no longer sign anyone up; "
          "the contacts it brought stay.", "success")
    return redirect(url_for("consent.forms"))


@bp.route("/contacts/forms/preview")
@require("view")
def form_preview():
    """The builder's live preview: a frame showing the hosted page for the values being typed."""
    return render_template("consent/_builder_preview.html", query=request.args.to_dict(flat=False))


@bp.route("/contacts/forms/preview/page")
@require("view")
def form_preview_page():
    signup_form = signup_forms.draft(g.team, request.args)
    style = url_for("consent.form_preview_style", **request.args.to_dict(flat=False))
    response = _built_page(signup_form, stamp="", style=style, preview=True)
    response.headers["Content-Security-Policy"] = _page_csp("'self'", form_action="'none'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/contacts/forms/preview/style.css")
@require("view")
def form_preview_style():
    values = signup_forms.style_values(signup_forms.draft(g.team, request.args))
    return Response(brand.stylesheet(values), mimetype="text/css", headers={"Cache-Control": "no-store"})


# --- Sign-up forms (public) ---------------------------------------------------

def _public_list(public_id, include_private=False):
    return forms.list_for_public_id(public_id, include_private) or abort(404)


def _render_form(mailing_list, status=200, **context):
    context.setdefault("form", {})
    context.setdefault("stamp", forms.form_stamp(mailing_list))
    return render_template("consent/signup_form.html", mailing_list=mailing_list, honeypot=forms.HONEYPOT,
                           wording=forms.consent_wording(mailing_list), **context), status


def _refused_address(exc):
    """The form back after a ConsentError: the address it was about in the field, and for a probable typo the
    "Did you mean …?" button's suggestion, with the form's own stamp (a fresh one would make a quick click on
    the suggestion "too fast")."""
    form = request.form.to_dict()
    form["email"] = forms.submitted_address(request.form) or ""
    context = {"form": form, "error": str(exc), "errors": exc.errors}
    if isinstance(exc, forms.AddressTypo):
        context.update(suggestion=exc.suggestion, typo_of=exc.email)
        if request.form.get("ts"):
            context["stamp"] = request.form["ts"]
    return context


@bp.route("/f/<public_id>")
@public
def signup_form(public_id):
    mailing_list = forms.list_for_public_id(public_id)
    if mailing_list is None:
        return _built_form_page(_built_form(public_id))
    return _render_form(mailing_list)


@bp.route("/f/<public_id>", methods=["POST"])
@public
@csrf_exempt
def signup(public_id):
    mailing_list = forms.list_for_public_id(public_id)
    if mailing_list is None:
        return _built_form_signup(_built_form(public_id))
    try:
        outcome = forms.signup(mailing_list, request.form, client_ip())
    except forms.Refused as exc:
        if exc.status == 429:
            return render_template("consent/message.html", team=mailing_list.team, title="Please try later",
                                   message=str(exc)), 429, {"Retry-After": "3600"}
        return _render_form(mailing_list, exc.status, error=str(exc), form=request.form)
    except ConsentError as exc:
        return _render_form(mailing_list, 422, **_refused_address(exc))
    if outcome.send_confirmation:
        # As the team, through its own SMTP account (never the instance's server): tasks/consent.py.
        send_confirmation(mailing_list.id, outcome.subscription.id)
    if outcome.state == "subscribed":
        advance_soon()  # a welcome automation it started sends in seconds, not at the next minute
    return render_template("consent/signup_done.html", mailing_list=mailing_list, outcome=outcome)


# --- Built sign-up forms (public) ------------------------------------------------
# Their hosted page may be framed by any site when asked with ?embed=1 (the popup script's dialog);
# everything else about it is a list form's page: no cookie, no session, the same defences.

def _built_form(public_id):
    signup_form = signup_forms.for_public_id(public_id)
    if signup_form is None or not signup_forms.public_lists(signup_form):
        abort(404)  # unknown, or every list it had is private or gone: nothing public to sign up to
    return signup_form


def _page_csp(ancestors, form_action="'self'"):
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"frame-ancestors {ancestors}; form-action {form_action}; base-uri 'none'")


def _embedded():
    return (request.values.get("embed") or "") == "1"


def _framing(response):
    if _embedded():
        response.headers["Content-Security-Policy"] = _page_csp("*")
        response.frameable = True  # app/__init__.py adds no X-Frame-Options: DENY
    return response


def _built_page(signup_form, status=200, stamp=None, style=None, preview=False, **context):
    lists = signup_forms.public_lists(signup_form)
    context.setdefault("form", {})
    style = style or url_for("consent.form_style", public_id=signup_form.public_id,
                             v=int(signup_form.updated_at.timestamp()) if signup_form.updated_at else 0)
    body = render_template("consent/built_form.html", signup_form=signup_form, team=signup_form.team, lists=lists,
                           fields=signup_forms.asked_fields(signup_form), honeypot=forms.HONEYPOT,
                           wording=signup_forms.wording(signup_form, lists),
                           stamp=signup_forms.form_stamp(signup_form) if stamp is None else stamp,
                           embedded=_embedded(), preview=preview,
                           brand_override=_built_brand(signup_form, style), **context)
    return Response(body, status=status, mimetype="text/html")


def _built_brand(signup_form, style):
    values = signup_forms.style_values(signup_form)
    return {"stylesheet": style, "logo_url": brand.public_logo(values["logo_url"]),
            "footer_text": values["footer_text"]}


def _built_form_page(signup_form):
    return _framing(_built_page(signup_form))


def _built_form_signup(signup_form):
    try:
        outcomes = signup_forms.submit(signup_form, request.form, client_ip())
    except forms.Refused as exc:
        if exc.status == 429:
            response = _built_page(signup_form, 429, error=str(exc), form=request.form, limited=True)
            response.headers["Retry-After"] = "3600"
            return _framing(response)
        return _framing(_built_page(signup_form, exc.status, error=str(exc), form=request.form))
    except ConsentError as exc:
        return _framing(_built_page(signup_form, 422, **_refused_address(exc)))
    # One email for the sign-up: its link confirms every list of the form that asks for it (forms.companions).
    if any(outcome.state == "subscribed" for outcome in outcomes):
        advance_soon()
    waiting = next((outcome for outcome in outcomes if outcome.send_confirmation), None)
    if waiting is not None:
        send_confirmation(waiting.subscription.list_id, waiting.subscription.id)
    double = any(lst.double_opt_in for lst in signup_forms.public_lists(signup_form))
    body = render_template("consent/built_done.html", signup_form=signup_form, team=signup_form.team,
                           double=double, brand_override=_built_brand(signup_form, url_for(
                               "consent.form_style", public_id=signup_form.public_id)))
    return _framing(Response(body, mimetype="text/html"))


@bp.route("/f/<public_id>/style.css")
@public
def form_style(public_id):
    """The colours of a built form's page (the brand kit's, with the form's own over them)."""
    signup_form = _built_form(public_id)
    response = Response(brand.stylesheet(signup_forms.style_values(signup_form)), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=86400"  # the page's link changes with every save
    return response


@bp.route("/f/<public_id>/popup.js")
@public
def form_popup(public_id):
    """One <script> tag on any website: opens the hosted form in a dialog after the form's delay, or when
    an element with data-loft-form="<public_id>" is clicked. Cacheable, and no cookie either way."""
    signup_form = _built_form(public_id)
    config = {"id": signup_form.public_id, "url": f"{_built_form_url(signup_form)}?embed=1",
              "title": signup_form.title or signup_form.name, "delay": signup_form.popup_delay}
    response = Response(render_template("consent/popup.js", config=config), mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _confirmation(public_id, token):
    # The link was sent to the person who signed up; a list made private since then keeps its promise.
    mailing_list = _public_list(public_id, include_private=True)
    try:
        return mailing_list, forms.subscription_for_token(mailing_list, token)
    except forms.LinkInvalid as exc:
        if not exc.expired:
            abort(404)
        return mailing_list, None


def _expired(mailing_list):
    return render_template("consent/message.html", team=mailing_list.team, title="This link has expired",
                           message="Confirmation links are valid for "
                                   f"{forms.limit('SIGNUP_CONFIRM_DAYS')} days. Sign up again to get a new one.",
                           again=url_for("consent.signup_form", public_id=mailing_list.public_id)), 410


@bp.route("/f/<public_id>/confirm/<token>")
@public
def confirm_page(public_id, token):
    """The link in the email shows a button rather than confirming at once: mail
    scanners open every link in a message, and must not subscribe anyone."""
    mailing_list, sub = _confirmation(public_id, token)
    if sub is None:
        return _expired(mailing_list)
    return render_template("consent/confirm.html", mailing_list=mailing_list, subscription=sub,
                           wording=forms.wording_for(mailing_list, sub), names=_names_confirmed_by(mailing_list, sub))


def _names_confirmed_by(mailing_list, subscription):
    return forms.list_names([mailing_list] + [other.list for other in forms.companions(subscription)])


@bp.route("/f/<public_id>/confirm/<token>", methods=["POST"])
@public
@csrf_exempt
def confirm(public_id, token):
    mailing_list, sub = _confirmation(public_id, token)
    if sub is None:
        return _expired(mailing_list)
    names = _names_confirmed_by(mailing_list, sub)
    if not forms.confirm(mailing_list, sub, client_ip()):
        return render_template("consent/message.html", team=mailing_list.team, title="Nothing to confirm",
                               message="This subscription can no longer be confirmed."), 410
    advance_soon()  # the confirmation is the list join: its automations start now
    contact = gdpr.get_contact(mailing_list.team, sub.contact_id)
    return render_template("consent/confirmed.html", mailing_list=mailing_list, names=names,
                           preferences_url=preferences.preference_path(contact))


# --- Preference center (public) -----------------------------------------------

def _contact_for(token):
    return preferences.contact_for_token(token) or abort(404)


def _render_preferences(contact, token, status=200, **context):
    return render_template("consent/preferences.html", contact=contact, team=contact.team, token=token,
                           choices=preferences.choices(contact), stopped=preferences.stopped_reason(contact),
                           **context), status


@bp.route("/p/<token>", endpoint="preferences")
@public
def preferences_page(token):
    return _render_preferences(_contact_for(token), token)


@bp.route("/p/<token>", methods=["POST"])
@public
@csrf_exempt
def save_preferences(token):
    contact = _contact_for(token)
    list_ids = [int(v) for v in request.form.getlist("lists") if v.isdigit()]
    try:
        added, removed = preferences.save(contact, list_ids, client_ip())
    except ConsentError as exc:
        return _render_preferences(contact, token, 422, error=str(exc))
    notice = "Your choices are saved." if added or removed else "Nothing changed."
    return _render_preferences(preferences.contact_for_token(token), token, notice=notice)


@bp.route("/p/<token>/unsubscribe", methods=["POST"])
@public
@csrf_exempt
def unsubscribe_all(token):
    contact = _contact_for(token)
    preferences.unsubscribe_everything(contact)
    return _render_preferences(preferences.contact_for_token(token), token, unsubscribed=True,
                               notice="You are unsubscribed from everything. You will not get any more email "
                                      f"from {contact.team.name}.")
