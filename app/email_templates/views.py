"""The template library: built-in layouts, the team's templates, the
editor with live preview, preview as a contact, and test sends.

Email HTML is untrusted in our own pages. It is only ever shown inside
<iframe sandbox> (no scripts, no same-origin) whose src is one of the
*.html endpoints below, served by app.security.untrusted_html_response with its
own CSP: inline styles (which email needs and the app's CSP forbids, also inside
srcdoc) but no scripts, and the sandbox directive again for anyone opening the URL
directly.
"""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.campaigns import drafts
from app.campaigns.errors import CampaignError
from app.email_templates import services
from app.htmx import is_htmx
from app.models import Template
from app.models import TemplateDraft
from app.security import untrusted_html_response
from app.teams.context import require
from app.teams.context import team_object_or_404

bp = Blueprint("email_templates", __name__, url_prefix="/templates")

def _contact_from(values):
    """The contact chosen in "Preview as" (None: a sample person) and a note when the address is unknown."""
    address = (values.get("contact") or "").strip()
    if not address:
        return None, address, ""
    contact = services.find_contact(g.team, address)
    if contact is None:
        return None, address, f"No contact with the address {address}: showing a sample person."
    return contact, address, ""


def _preview_fragment(item, frame_url, values):
    contact, address, note = _contact_from(values)
    summary = services.preview_summary(g.team, item, contact)
    return render_template("email_templates/_preview.html", frame_url=frame_url, contact_note=note,
                           contact_address=address, **summary)


@bp.route("/")
@require("view")
def index():
    templates = services.team_templates(g.team)
    return render_template("email_templates/index.html", builtins=services.builtin_templates(), templates=templates,
                           starters=services.block_starters(),
                           layouts={t.id for t in templates if drafts.layout_slot(t)})


# --- Editing ---------------------------------------------------------------------------

def _editor(template=None, form=None, errors=None, status=200):
    values = form or ({"name": template.name, "kind": template.kind, "body": template.body} if template
                      else {"name": "", "kind": request.args.get("kind", "blocks"), "body": ""})
    return render_template("email_templates/edit.html", template=template, form=values, errors=errors or {},
                           kind_choices=drafts.KIND_CHOICES,
                           starters=[] if template else [(item.key, item.name) for item in services.block_starters()],
                           contacts=services.contact_choices(g.team),
                           is_layout=drafts.layout_slot(template)), status


@bp.route("/new")
@require("edit_content")
def new():
    return _editor()


@bp.route("/new", methods=["POST"])
@require("edit_content")
def create():
    try:
        template = services.create_template(g.team, request.form)
    except services.TemplateError as error:
        return _editor(form=request.form, errors=error.errors, status=422)
    flash(f"Saved “{template.name}”.", "success")
    return redirect(url_for("email_templates.edit", template_id=template.id))


@bp.route("/<int:template_id>")
@require("view")
def edit(template_id):
    return _editor(team_object_or_404(Template, template_id))


@bp.route("/<int:template_id>", methods=["POST"])
@require("edit_content")
def update(template_id):
    template = team_object_or_404(Template, template_id)
    try:
        template = services.update_template(g.team, template, request.form)
    except services.TemplateError as error:
        return _editor(template, form=request.form, errors=error.errors, status=422)
    flash(f"Saved “{template.name}”.", "success")
    return redirect(url_for("email_templates.edit", template_id=template.id))


@bp.route("/<int:template_id>/duplicate", methods=["POST"])
@require("edit_content")
def duplicate(template_id):
    copy = services.duplicate(g.team, team_object_or_404(Template, template_id))
    flash(f"Made a copy: “{copy.name}”.", "success")
    return redirect(url_for("email_templates.edit", template_id=copy.id))


@bp.route("/<int:template_id>/delete", methods=["POST"])
@require("edit_content")
def delete(template_id):
    template = team_object_or_404(Template, template_id)
    services.delete_template(g.team, template)
    flash(f"Deleted “{template.name}”.", "info")
    return redirect(url_for("email_templates.index"))


def _builtin_starting_point(family, key):
    """A built-in HTML template ("builtin") or block template ("starter"): both are read-only starting points."""
    found = services.block_starter(key) if family == "starter" else services.builtin(key)
    return found or abort(404)


@bp.route("/builtin/<key>", defaults={"family": "builtin"})
@bp.route("/starter/<key>", defaults={"family": "starter"})
@require("view")
def builtin(key, family):
    layout = _builtin_starting_point(family, key)
    return render_template("email_templates/builtin.html", layout=layout,
                           contacts=services.contact_choices(g.team))


@bp.route("/builtin/<key>/use", defaults={"family": "builtin"}, methods=["POST"])
@bp.route("/starter/<key>/use", defaults={"family": "starter"}, methods=["POST"])
@require("edit_content")
def use_builtin(key, family):
    copy = services.duplicate(g.team, _builtin_starting_point(family, key))
    flash(f"“{copy.name}” is now in your templates: edit it to make it yours.", "success")
    return redirect(url_for("email_templates.edit", template_id=copy.id))


# --- Campaigns from templates ------------------------------------------------------------

def _new_campaign(start_from, back):
    """A draft campaign starting from a template (its content, or it as the layout when it has a
    {{ content }} slot), then its editor; see campaigns.drafts.create_campaign."""
    try:
        campaign = drafts.create_campaign(g.team, current_user.id, "", start_from=start_from)
    except CampaignError as exc:
        flash(str(exc), "error")
        return redirect(back)
    flash(f"A new draft campaign starts from “{campaign.name}”: choose its audience, check it, then send it.",
          "success")
    return redirect(url_for("campaigns.edit", campaign_id=campaign.id))


@bp.route("/<int:template_id>/campaign", methods=["POST"])
@require("edit_content")
def new_campaign(template_id):
    template = team_object_or_404(Template, template_id)
    return _new_campaign(f"template:{template.id}", url_for("email_templates.edit", template_id=template.id))


@bp.route("/builtin/<key>/campaign", defaults={"family": "builtin"}, methods=["POST"])
@bp.route("/starter/<key>/campaign", defaults={"family": "starter"}, methods=["POST"])
@require("edit_content")
def builtin_new_campaign(key, family):
    layout = _builtin_starting_point(family, key)
    return _new_campaign(f"{family}:{layout.key}", url_for("email_templates.builtin", key=layout.key, family=family))


# --- Previews ----------------------------------------------------------------------------

@bp.route("/preview", methods=["POST"])
@require("edit_content")
def preview_draft():
    """The live preview of the editor's unsaved text (HTMX, on every pause in typing)."""
    slot = request.form.get("template_id") or "new"
    if slot != "new" and (not slot.isdigit() or services.get_template(g.team, int(slot)) is None):
        abort(404)
    draft = services.save_draft(g.team, current_user.id, slot, request.form)
    item = services.Draft(draft.name, draft.kind, draft.body)
    frame_url = url_for("email_templates.draft_html", token=draft.token, contact=request.form.get("contact") or None,
                        v=int(draft.updated_at.timestamp() * 1000))
    return _preview_fragment(item, frame_url, request.form)


@bp.route("/drafts/<token>.html")
@require("view")
def draft_html(token):
    draft = team_object_or_404(TemplateDraft, token=token, user=current_user.id)  # one's own drafts only
    contact, _address, _note = _contact_from(request.args)
    return untrusted_html_response(services.preview_html(g.team, services.Draft(draft.name, draft.kind, draft.body), contact))


@bp.route("/<int:template_id>/preview")
@require("view")
def preview(template_id):
    template = team_object_or_404(Template, template_id)
    frame_url = url_for("email_templates.preview_html", template_id=template.id,
                        contact=request.args.get("contact") or None)
    return _preview_fragment(template, frame_url, request.args)


@bp.route("/<int:template_id>/preview.html")
@require("view")
def preview_html(template_id):
    contact, _address, _note = _contact_from(request.args)
    return untrusted_html_response(services.preview_html(g.team, team_object_or_404(Template, template_id), contact))


@bp.route("/builtin/<key>/preview", defaults={"family": "builtin"})
@bp.route("/starter/<key>/preview", defaults={"family": "starter"})
@require("view")
def builtin_preview(key, family):
    layout = _builtin_starting_point(family, key)
    frame_url = url_for("email_templates.builtin_preview_html", key=key, family=family,
                        contact=request.args.get("contact") or None)
    return _preview_fragment(layout, frame_url, request.args)


@bp.route("/builtin/<key>/preview.html", defaults={"family": "builtin"})
@bp.route("/starter/<key>/preview.html", defaults={"family": "starter"})
@require("view")
def builtin_preview_html(key, family):
    contact, _address, _note = _contact_from(request.args)
    layout = _builtin_starting_point(family, key)
    return untrusted_html_response(services.preview_html(g.team, layout, contact))


# --- Test sends ----------------------------------------------------------------------------

def _test_send(item, action):
    status = 200
    results, error = [], None
    try:
        addresses = services.parse_addresses(request.form.get("addresses", ""))
        contact, _address, _note = _contact_from(request.form)
        results = services.send_test(item, addresses, g.team, contact)
    except services.TemplateError as exc:
        error, status = "; ".join(exc.errors.values()), 422
    fragment = render_template("email_templates/_test_send.html", action=action, results=results, error=error,
                               addresses=request.form.get("addresses", ""), contact=request.form.get("contact", ""))
    if is_htmx():
        return fragment, status
    return render_template("email_templates/test_send.html", fragment=fragment, item=item), status


@bp.route("/<int:template_id>/test", methods=["POST"])
@require("send")
def send_test(template_id):
    template = team_object_or_404(Template, template_id)
    return _test_send(template, url_for("email_templates.send_test", template_id=template.id))


@bp.route("/builtin/<key>/test", defaults={"family": "builtin"}, methods=["POST"])
@bp.route("/starter/<key>/test", defaults={"family": "starter"}, methods=["POST"])
@require("send")
def builtin_send_test(key, family):
    layout = _builtin_starting_point(family, key)
    return _test_send(layout, url_for("email_templates.builtin_send_test", key=key, family=family))
