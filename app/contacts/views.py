"""Views of the contacts area: contacts, lists, custom fields, bulk actions, export.

Thin views: parse the request, call one service, pick a template. Every
lookup goes through g.team, so another team's id is a 404.
"""

from flask import Blueprint
from flask import Response
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import stream_with_context
from flask import url_for
from flask_login import current_user

from app.automations import runs
from app.contacts import bulk as bulk_actions
from app.contacts import export as exports
from app.contacts import fields as custom_fields
from app.contacts import lists as mailing_lists
from app.contacts import query
from app.contacts import services
from app.contacts import tags as contact_tags
from app.contacts import timeline as timelines
from app.contacts import validity
from app.contacts.common import ContactError
from app.contacts.common import NotFound
from app.contacts.query import ContactFilter
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.models import AuditLog
from app.models import CONTACT_STATUSES
from app.models import Contact
from app.models import CustomField
from app.models import FIELD_TYPES
from app.models import MailingList
from app.models import SUBSCRIPTION_STATUSES
from app.models import TAG_NAME_MAX
from app.models import Tag
from app.reports.charts import bar_chart
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.wording import plural
from tasks import contacts as contact_tasks

bp = Blueprint("contacts", __name__, url_prefix="/contacts")


@bp.context_processor
def labels():
    return {"status_labels": services.STATUS_LABELS, "field_type_labels": custom_fields.FIELD_TYPE_LABELS,
            "event_labels": timelines.EVENT_LABELS, "bulk_actions": bulk_actions.BULK_ACTIONS,
            "contact_statuses": CONTACT_STATUSES, "subscription_statuses": SUBSCRIPTION_STATUSES,
            "display_value": custom_fields.display_value, "describe_event": timelines.describe_event,
            "validation_labels": validity.STATUS_LABELS, "reason_words": validity.reason_words}


def _go(url):
    """Navigate after a successful form: HX-Redirect for htmx, a plain redirect otherwise."""
    return hx_redirect(url) if is_htmx() else redirect(url)


# --- Contact list ---------------------------------------------------------------

def _results(endpoint, base_args, contact_filter, fixed_list=None):
    """The contact table for a filter: (template context, error) shared by the list and list-detail pages."""
    try:
        resolved = query.resolve_filter(g.team, contact_filter)
    except NotFound:
        abort(404)
    before = request.args.get("before", type=int)
    after = request.args.get("after", type=int)
    error = None
    try:
        page = query.contact_page(g.team, resolved, before=before, after=after)
    except ContactError as exc:
        page, error = query.Page([]), str(exc)
    filter_args = contact_filter.to_args()
    if fixed_list is not None:
        filter_args.pop("list", None)

    def page_url(**cursor):
        return url_for(endpoint, **base_args, **filter_args, **cursor)

    ids = [c.id for c in page.contacts]
    return dict(page=page, filter=contact_filter, resolved=resolved, page_url=page_url, results_url=page_url(),
                lists_by_contact=mailing_lists.lists_of_contacts(ids), tags_by_contact=contact_tags.tags_of_contacts(ids),
                tags=contact_tags.tags_of_team(g.team),
                has_any=bool(page.contacts) or query.team_has_contacts(g.team), error=error,
                first_page=not before and not after, lists=mailing_lists.lists_of(g.team),
                segments=query.segments_of(g.team), live_automations=runs.live_automations(g.team.id))


@bp.route("/")
@require("view")
def index():
    contact_filter = ContactFilter.from_args(request.args)
    context = _results("contacts.index", {}, contact_filter)
    if is_htmx() and request.headers.get("HX-Target") == "contact-results":
        return render_template("contacts/_results.html", **context)
    return render_template("contacts/index.html", **context)


# --- One contact ----------------------------------------------------------------

def _render_form(template, status=200, **context):
    fields = custom_fields.fields_of(g.team)
    if is_htmx():
        template = "contacts/_form.html"
    return render_template(template, fields=fields, lists=mailing_lists.lists_of(g.team), **context), status


@bp.route("/new", methods=["GET", "POST"])
@require("edit_content")
def new_contact():
    if request.method == "POST":
        try:
            contact = services.create_contact(g.team, request.form, current_user)
        except ContactError as exc:
            return _render_form("contacts/new.html", 422, form=request.form, errors=exc.errors, contact=None)
        flash(f"{contact.email} was added.", "success")
        return _go(url_for("contacts.show", contact_id=contact.id))
    return _render_form("contacts/new.html", form={}, errors={}, contact=None)


@bp.route("/<int:contact_id>")
@require("view")
def show(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    events, cursor = timelines.activity(contact, request.args.get("events_before", ""))
    return render_template("contacts/show.html", contact=contact, fields=custom_fields.fields_of(g.team),
                           attributes=services.attributes_of(contact), events=events, cursor=cursor,
                           **_lists_context(contact), **_tags_context(contact))


@bp.route("/<int:contact_id>/timeline")
@require("view")
def timeline(contact_id):
    """More of the timeline: the next items for htmx's "Load more", or the page from that point."""
    contact = team_object_or_404(Contact, contact_id)
    before = request.args.get("before", "")[:64]
    if not is_htmx():
        return redirect(url_for("contacts.show", contact_id=contact.id, events_before=before, _anchor="timeline"))
    events, cursor = timelines.activity(contact, before)
    return render_template("contacts/_timeline_items.html", contact=contact, events=events, cursor=cursor)


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
@require("edit_content")
def edit(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    if request.method == "POST":
        try:
            contact = services.update_contact(g.team, contact, request.form, current_user)
        except ContactError as exc:
            return _render_form("contacts/edit.html", 422, form=request.form, errors=exc.errors, contact=contact)
        flash("Changes saved.", "success")
        return _go(url_for("contacts.show", contact_id=contact.id))
    attributes = services.attributes_of(contact)
    # ?email= proposes a new address (the address check's "Did you mean …?"): shown to review, saved only by Save.
    form = {"email": (request.args.get("email") or contact.email)[:320], "name": contact.name, "status": contact.status}
    form.update({f"attr.{field.key}": custom_fields.form_value(field, attributes)
                 for field in custom_fields.fields_of(g.team)})
    return _render_form("contacts/edit.html", form=form, errors={}, contact=contact)


@bp.route("/<int:contact_id>/delete", methods=["GET", "POST"])
@require("edit_content")
def delete(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    if request.method == "POST":
        services.delete_contact(g.team, contact, current_user)
        flash(f"{contact.email} was deleted.", "success")
        return _go(url_for("contacts.index"))
    return render_template("contacts/delete.html", contact=contact)


def _lists_context(contact, **extra):
    subscriptions = services.subscriptions_of(contact)
    on = {s.list_id for s in subscriptions}
    addable = [lst for lst in mailing_lists.lists_of(g.team) if lst.id not in on]
    return dict(subscriptions=subscriptions, addable=addable, **extra)


def _render_lists(contact, status=200, **extra):
    if is_htmx():
        return render_template("contacts/_lists.html", contact=contact, **_lists_context(contact, **extra)), status
    if extra.get("list_error"):
        flash(extra["list_error"], "error")
    elif extra.get("list_notice"):
        flash(extra["list_notice"], "success")
    return redirect(url_for("contacts.show", contact_id=contact.id, _anchor="lists"))


@bp.route("/<int:contact_id>/lists", methods=["POST"])
@require("edit_content")
def add_to_list(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    mailing_list = mailing_lists.get_list(g.team, request.form.get("list_id", type=int))
    if mailing_list is None:
        return _render_lists(contact, 422, list_error="Choose a list.")
    try:
        services.add_to_list(g.team, contact, mailing_list)
    except ContactError as exc:
        return _render_lists(contact, 422, list_error=str(exc))
    return _render_lists(contact, list_notice=f"Added to “{mailing_list.name}”.")


@bp.route("/<int:contact_id>/lists/<int:list_id>/remove", methods=["POST"])
@require("edit_content")
def remove_from_list(contact_id, list_id):
    contact = team_object_or_404(Contact, contact_id)
    mailing_list = team_object_or_404(MailingList, list_id)
    services.remove_from_list(g.team, contact, mailing_list)
    return _render_lists(contact, list_notice=f"Removed from “{mailing_list.name}”.")


# --- Tags of one contact --------------------------------------------------------

def _tags_context(contact, **extra):
    return dict(contact_tags=contact_tags.tags_of(contact), all_tags=contact_tags.tags_of_team(g.team),
                tag_name_max=TAG_NAME_MAX, **extra)


def _render_tags(contact, status=200, **extra):
    if is_htmx():
        return render_template("contacts/_tags.html", contact=contact, **_tags_context(contact, **extra)), status
    if extra.get("tag_error"):
        flash(extra["tag_error"], "error")
    elif extra.get("tag_notice"):
        flash(extra["tag_notice"], "success")
    return redirect(url_for("contacts.show", contact_id=contact.id, _anchor="tags"))


@bp.route("/<int:contact_id>/tags", methods=["POST"])
@require("edit_content")
def add_tags(contact_id):
    contact = team_object_or_404(Contact, contact_id)
    try:
        added = contact_tags.add_tags(g.team, contact, request.form.get("tags"))
    except ContactError as exc:
        return _render_tags(contact, 422, tag_error=str(exc), tag_form=request.form)
    names = ", ".join(f"“{tag.name}”" for tag in added)
    return _render_tags(contact, tag_notice=f"Tagged {names}." if added else "It already has that tag.", refocus=True)


@bp.route("/<int:contact_id>/tags/<int:tag_id>/remove", methods=["POST"])
@require("edit_content")
def remove_tag(contact_id, tag_id):
    contact = team_object_or_404(Contact, contact_id)
    tag = team_object_or_404(Tag, tag_id)
    contact_tags.untag_contact(g.team, contact, tag)
    return _render_tags(contact, tag_notice=f"Removed the tag “{tag.name}”.", refocus=True)


# --- The team's tags ------------------------------------------------------------

def _render_tags_page(status=200, **context):
    template = "contacts/_tags_table.html" if is_htmx() else "contacts/tags.html"
    return render_template(template, tag_counts=contact_tags.tags_with_counts(g.team), tag_name_max=TAG_NAME_MAX,
                           form=context.pop("form", {}), errors=context.pop("errors", {}), **context), status


@bp.route("/tags")
@require("view")
def tags():
    return _render_tags_page()


@bp.route("/tags/new", methods=["POST"])
@require("edit_content")
def create_tag():
    try:
        tag = contact_tags.create_tag(g.team, request.form.get("name"))
    except ContactError as exc:
        return _render_tags_page(422, form=request.form, errors=exc.errors)
    return _render_tags_page(notice=f"Tag “{tag.name}” created. Add it to contacts from their page or in bulk.")


@bp.route("/tags/<int:tag_id>/rename", methods=["POST"])
@require("edit_content")
def rename_tag(tag_id):
    tag = team_object_or_404(Tag, tag_id)
    try:
        renamed = contact_tags.rename_tag(g.team, tag, request.form.get("name"))
    except ContactError as exc:
        return _render_tags_page(422, errors={f"name-{tag.id}": str(exc)}, edit_form=request.form)
    return _render_tags_page(notice=f"Renamed “{tag.name}” to “{renamed.name}”.")


@bp.route("/tags/<int:tag_id>/delete", methods=["GET", "POST"])
@require("edit_content")
def delete_tag(tag_id):
    tag = team_object_or_404(Tag, tag_id)
    if request.method == "POST":
        lost = contact_tags.delete_tag(g.team, tag, current_user)
        flash(f"Tag “{tag.name}” deleted; {plural(lost, 'contact')} lost it.", "success")
        return _go(url_for("contacts.tags"))
    return render_template("contacts/tag_delete.html", tag=tag, usage=contact_tags.contact_count(tag))


# --- Bulk actions ---------------------------------------------------------------

@bp.route("/bulk", methods=["POST"])
@require("edit_content")
def bulk():
    """Validate, ask for confirmation when it deletes or covers a whole filter, then run it as a task."""
    form = request.form
    try:
        bulk_actions.validate_bulk(g.team, form)
        if (form.get("action") == "delete" or form.get("scope") == "filter") and not form.get("confirmed"):
            return render_template("contacts/bulk_confirm.html", form=form, count=bulk_actions.bulk_count(g.team, form),
                                   target=mailing_lists.get_list(g.team, form.get("list_id", type=int)),
                                   automation=runs.team_automation(g.team, form.get("automation_id", type=int)))
        job = bulk_actions.start_bulk(g.team, current_user, form)
    except ContactError as exc:
        flash(str(exc), "error")
        return redirect(url_for("contacts.index", **ContactFilter.from_args(form).to_args()))
    contact_tasks.run_bulk(job.id)
    return redirect(url_for("contacts.bulk_status", job_id=job.id))


@bp.route("/bulk/<int:job_id>")
@require("view")
def bulk_status(job_id):
    job = team_object_or_404(AuditLog, job_id, action="contacts.bulk")
    data = job.data
    template = "contacts/_bulk_status.html" if is_htmx() else "contacts/bulk_status.html"
    return render_template(template, job=job, data=data)


# --- Export ---------------------------------------------------------------------

@bp.route("/export")
@require("export_data")
def export():
    """The filtered contacts as CSV, streamed batch by batch; recorded in the audit log first."""
    contact_filter = ContactFilter.from_args(request.args)
    try:
        resolved = query.resolve_filter(g.team, contact_filter)
    except NotFound:
        abort(404)
    except ContactError as exc:
        abort(422, description=str(exc))
    exports.record_export(g.team, current_user, resolved)
    response = Response(stream_with_context(exports.export_csv(g.team, resolved)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.export_filename(g.team, resolved)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Lists ----------------------------------------------------------------------

def _render_lists_page(status=200, **context):
    lists = mailing_lists.lists_of(g.team)
    template = "contacts/_lists_table.html" if is_htmx() else "contacts/lists.html"
    return render_template(template, lists=lists, counts=mailing_lists.list_counts([lst.id for lst in lists]),
                           form=context.pop("form", {"double_opt_in": "1"}), errors=context.pop("errors", {}),
                           **context), status


@bp.route("/lists")
@require("view")
def lists():
    return _render_lists_page()


@bp.route("/lists/new", methods=["POST"])
@require("edit_content")
def create_list():
    try:
        mailing_list = mailing_lists.create_list(g.team, request.form)
    except ContactError as exc:
        return _render_lists_page(422, form=request.form, errors=exc.errors)
    return _render_lists_page(notice=f"List “{mailing_list.name}” created.")


@bp.route("/lists/<int:list_id>")
@require("view")
def show_list(list_id):
    mailing_list = team_object_or_404(MailingList, list_id)
    contact_filter = ContactFilter.from_args(request.args)
    contact_filter.list_id = mailing_list.id
    context = _results("contacts.show_list", {"list_id": mailing_list.id}, contact_filter, fixed_list=mailing_list)
    if is_htmx() and request.headers.get("HX-Target") == "contact-results":
        return render_template("contacts/_results.html", **context)
    return render_template("contacts/list_show.html", mailing_list=mailing_list,
                           counts=mailing_lists.list_counts([mailing_list.id])[mailing_list.id],
                           form=mailing_list.__data__, errors={}, **_validation_context(mailing_list), **context)


@bp.route("/lists/<int:list_id>/edit", methods=["POST"])
@require("edit_content")
def edit_list(list_id):
    mailing_list = team_object_or_404(MailingList, list_id)
    try:
        mailing_list = mailing_lists.update_list(g.team, mailing_list, request.form)
    except ContactError as exc:
        if is_htmx():
            return render_template("contacts/_list_form.html", mailing_list=mailing_list, form=request.form,
                                   errors=exc.errors), 422
        flash(str(exc), "error")
        return redirect(url_for("contacts.show_list", list_id=mailing_list.id))
    if is_htmx():
        return render_template("contacts/_list_form.html", mailing_list=mailing_list, form=mailing_list.__data__,
                               errors={}, notice="Saved.")
    flash("List saved.", "success")
    return redirect(url_for("contacts.show_list", list_id=mailing_list.id))


@bp.route("/lists/<int:list_id>/delete", methods=["GET", "POST"])
@require("edit_content")
def delete_list(list_id):
    mailing_list = team_object_or_404(MailingList, list_id)
    if request.method == "POST":
        mailing_lists.delete_list(g.team, mailing_list, current_user)
        flash(f"List “{mailing_list.name}” deleted. Its contacts are still in Contacts.", "success")
        return _go(url_for("contacts.lists"))
    counts = mailing_lists.list_counts([mailing_list.id])[mailing_list.id]
    return render_template("contacts/list_delete.html", mailing_list=mailing_list, counts=counts)


# --- Address validation ---------------------------------------------------------

@bp.route("/<int:contact_id>/validate", methods=["POST"])
@require("edit_content")
def validate_contact(contact_id):
    """Check the address now (app.deliverability.validation) and keep the verdict on the contact."""
    contact = team_object_or_404(Contact, contact_id)
    verdict = validity.validate_contact(contact)
    if is_htmx():
        return render_template("contacts/_validation.html", contact=contact, verdict=verdict)
    flash(f"{contact.email}: {verdict.message}", "success" if verdict.status == "valid" else "error")
    return redirect(url_for("contacts.show", contact_id=contact.id, _anchor="validation"))


def _validation_context(mailing_list, **extra):
    """What the list's address-check card shows: progress while its job runs (it polls itself), then the results."""
    job = validity.latest_job(mailing_list)
    context = dict(job=job, flagged=[], cursor=None, chart=None,
                   flagged_status=request.args.get("verdict") if request.args.get("verdict") in ("risky", "invalid")
                   else "", **extra)
    if job is not None and not validity.is_active(job):
        context["flagged"], context["cursor"] = validity.flagged(job, context["flagged_status"],
                                                                 request.args.get("flagged_after", type=int))
        context["chart"] = bar_chart("Addresses by verdict", ["Valid", "Risky", "Invalid"],
                                     [("Contacts", [job.valid, job.risky, job.invalid])],
                                     f"{job.valid:,} valid, {job.risky:,} risky and {job.invalid:,} invalid.")
    if job is not None:
        context.update(percent=validity.progress(job), reasons=validity.reason_counts(job))
    return context


def _render_list_validation(mailing_list, status=200, **extra):
    template = "contacts/_list_validation.html" if is_htmx() else "contacts/list_validation.html"
    return render_template(template, mailing_list=mailing_list, **_validation_context(mailing_list, **extra)), status


@bp.route("/lists/<int:list_id>/validation")
@require("view")
def list_validation(list_id):
    return _render_list_validation(team_object_or_404(MailingList, list_id))


@bp.route("/lists/<int:list_id>/validate", methods=["POST"])
@require("edit_content")
def validate_list(list_id):
    """Start "Validate this list": a task checks every contact on it, the card shows its progress."""
    mailing_list = team_object_or_404(MailingList, list_id)
    try:
        job = validity.start_job(g.team, mailing_list, current_user)
    except ContactError as exc:
        return _render_list_validation(mailing_list, 409, validation_error=str(exc))
    contact_tasks.validate_list(job.id)
    if is_htmx():
        return _render_list_validation(mailing_list)
    return redirect(url_for("contacts.list_validation", list_id=mailing_list.id))


@bp.route("/lists/<int:list_id>/validation/cancel", methods=["POST"])
@require("edit_content")
def cancel_list_validation(list_id):
    mailing_list = team_object_or_404(MailingList, list_id)
    job = validity.latest_job(mailing_list)
    cancelled = job is not None and validity.cancel_job(job)
    notice = "Cancelled. The addresses checked so far keep their verdict." if cancelled else "It had already ended."
    if is_htmx():
        return _render_list_validation(mailing_list, validation_notice=notice)
    flash(notice, "success")
    return redirect(url_for("contacts.list_validation", list_id=mailing_list.id))


# --- Custom fields --------------------------------------------------------------

def _render_fields_page(status=200, **context):
    template = "contacts/_fields.html" if is_htmx() else "contacts/fields.html"
    return render_template(template, fields=custom_fields.fields_of(g.team), types=FIELD_TYPES,
                           form=context.pop("form", {}), errors=context.pop("errors", {}), **context), status


@bp.route("/fields")
@require("view")
def fields():
    return _render_fields_page()


@bp.route("/fields/new", methods=["POST"])
@require("edit_content")
def create_field():
    try:
        field = custom_fields.create_field(g.team, request.form)
    except ContactError as exc:
        form = request.form.to_dict()
        form["key"] = form.get("key", "").strip() or custom_fields.key_from_label(form.get("label", ""))  # to edit
        return _render_fields_page(422, form=form, errors=exc.errors)
    return _render_fields_page(notice=f"Field “{field.label}” added. Use it in emails as {{{{ contact.{field.key} }}}}.")


@bp.route("/fields/<int:field_id>/edit", methods=["POST"])
@require("edit_content")
def edit_field(field_id):
    field = team_object_or_404(CustomField, field_id)
    try:
        custom_fields.update_field(g.team, field, request.form)
    except ContactError as exc:
        return _render_fields_page(422, errors={f"label-{field.id}": str(exc)}, edit_form=request.form)
    return _render_fields_page(notice="Field renamed.")


@bp.route("/fields/<int:field_id>/delete", methods=["GET", "POST"])
@require("edit_content")
def delete_field(field_id):
    field = team_object_or_404(CustomField, field_id)
    if request.method == "POST":
        cleared = custom_fields.delete_field(g.team, field, current_user)
        flash(f"Field “{field.label}” deleted; its value was removed from {plural(cleared, 'contact')}.", "success")
        return _go(url_for("contacts.fields"))
    return render_template("contacts/field_delete.html", field=field, usage=custom_fields.field_usage(g.team, field))
