"""Views of the segments area: the list, the rule builder, live counts, save and delete.

Thin views: parse the request, call the builder and one service, pick a
template. The builder posts its whole form on every change; an HTMX request
gets the builder fragment back (with the count swapped out of band), a plain
one the whole page, so every button also works without JavaScript.
"""
from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.htmx import is_htmx
from app.models import Segment
from app.segments import builder
from app.segments import services
from app.segments.compiler import MAX_RULES
from app.segments.compiler import Catalogue
from app.segments.compiler import SegmentError
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.teams.permissions import can

bp = Blueprint("segments", __name__, url_prefix="/segments")


def _editor(segment, tree, catalogue, *, name=None, errors=None, message=None, focus=None,
            show_incomplete=False):
    """The template context of the editor page and its fragments."""
    root, _, countable = builder.state(g.team.id, tree, catalogue, show_incomplete)
    rule_nodes = list(builder.rule_nodes(root))
    return dict(
        segment=segment, root=root, rule_nodes=rule_nodes, message=message, focus=focus,
        problems=list(builder.with_errors(root)),
        name=segment.name if name is None and segment else (name or ""), errors=errors or {},
        count=services.count_matching(g.team.id, countable) if countable is not None else None,
        incomplete=builder.has_incomplete(tree, catalogue),
        field_groups=builder.field_groups(catalogue), choices=services.choices(g.team, builder.campaign_ids(tree)),
        max_rules=MAX_RULES,
        save_url=url_for("segments.save", segment_id=segment.id) if segment else url_for("segments.create"),
        builder_url=url_for("segments.builder_update", segment_id=segment.id if segment else None),
        count_url=url_for("segments.live_count", segment_id=segment.id if segment else None),
    )


def _posted_tree(catalogue):
    return builder.normalise(builder.from_form(request.form), catalogue)


# --- Pages ----------------------------------------------------------------------

@bp.route("/")
@require("view")
def index():
    segments = services.list_segments(g.team)
    catalogue = Catalogue(g.team.id)
    descriptions = {s.id: services.describe(g.team, services.rules_of(s), catalogue) for s in segments}
    return render_template("segments/index.html", segments=segments, descriptions=descriptions)


@bp.route("/new")
@require("edit_content")
def new():
    catalogue = Catalogue(g.team.id)
    tree = {"op": "and", "rules": [dict(builder.NEW_RULE)]}
    return render_template("segments/edit.html", **_editor(None, tree, catalogue, focus="f-name"))


@bp.route("/new", methods=["POST"])
@require("edit_content")
def create():
    catalogue = Catalogue(g.team.id)
    tree = _posted_tree(catalogue)
    try:
        segment = services.create_segment(g.team, request.form.get("name"), builder.to_rules(tree))
    except SegmentError as exc:
        return _refused(None, tree, catalogue, exc)
    flash(f"Segment “{segment.name}” was saved.", "success")
    return redirect(url_for("segments.show", segment_id=segment.id))


@bp.route("/<int:segment_id>")
@require("view")
def show(segment_id):
    segment = team_object_or_404(Segment, segment_id)
    catalogue = Catalogue(g.team.id)
    rules = services.rules_of(segment)
    if not can(g.membership.role, "edit_content"):
        return render_template("segments/show.html", segment=segment, **_stored_count(segment),
                               description=services.describe(g.team, rules, catalogue))
    tree = builder.from_rules(rules)
    return render_template("segments/edit.html", **_editor(segment, tree, catalogue, show_incomplete=True))


@bp.route("/<int:segment_id>", methods=["POST"])
@require("edit_content")
def save(segment_id):
    segment = team_object_or_404(Segment, segment_id)
    catalogue = Catalogue(g.team.id)
    tree = _posted_tree(catalogue)
    try:
        services.update_segment(g.team, segment, request.form.get("name"), builder.to_rules(tree))
    except SegmentError as exc:
        return _refused(segment, tree, catalogue, exc)
    flash(f"Segment “{segment.name}” was saved.", "success")
    return redirect(url_for("segments.show", segment_id=segment.id))


def _refused(segment, tree, catalogue, exc):
    """The editor again with the errors where they belong (422); nothing was stored."""
    errors = {"name": exc.errors["name"]} if "name" in exc.errors else {}
    message = exc.errors.get("") or (None if exc.errors else exc.message)
    context = _editor(segment, tree, catalogue, name=request.form.get("name", ""), errors=errors,
                      message=message, show_incomplete=True)
    if not errors and not message and not context["problems"]:
        context["message"] = exc.message
    return render_template("segments/edit.html", **context), 422


# --- The builder and the live count ------------------------------------------------

@bp.route("/new/builder", methods=["POST"], defaults={"segment_id": None})
@bp.route("/<int:segment_id>/builder", methods=["POST"])
@require("edit_content")
def builder_update(segment_id):
    """One builder action (add, remove, a changed field or operator): the builder again."""
    segment = team_object_or_404(Segment, segment_id) if segment_id else None
    catalogue = Catalogue(g.team.id)
    tree, message, focus = builder.apply(_posted_tree(catalogue), request.form.get("action"))
    context = _editor(segment, tree, catalogue, name=request.form.get("name", ""), message=message, focus=focus)
    if is_htmx():
        return render_template("segments/_builder_update.html", **context)
    return render_template("segments/edit.html", **context)


@bp.route("/new/count", methods=["POST"], defaults={"segment_id": None})
@bp.route("/<int:segment_id>/count", methods=["POST"])
@require("edit_content")
def live_count(segment_id):
    """The count for the rules as they stand in the form (and each rule's error, out of band)."""
    segment = team_object_or_404(Segment, segment_id) if segment_id else None
    catalogue = Catalogue(g.team.id)
    context = _editor(segment, _posted_tree(catalogue), catalogue)
    if is_htmx():
        return render_template("segments/_count_update.html", **context)
    return render_template("segments/edit.html", **context)


@bp.route("/<int:segment_id>/count")
@require("view")
def count(segment_id):
    """The stored segment's count, for the list page (loaded after the page, one row at a time)."""
    segment = team_object_or_404(Segment, segment_id)
    return render_template("segments/_stored_count.html", segment=segment, **_stored_count(segment))


def _stored_count(segment):
    try:
        return {"count": services.count_matching(g.team.id, services.rules_of(segment)), "problem": None}
    except SegmentError as exc:
        return {"count": None, "problem": exc.message}


# --- Delete ------------------------------------------------------------------------

@bp.route("/<int:segment_id>/delete", methods=["GET", "POST"])
@require("edit_content")
def delete(segment_id):
    segment = team_object_or_404(Segment, segment_id)
    if request.method == "POST":
        try:
            services.delete_segment(g.team, segment)
        except SegmentError as exc:
            # The same page as the GET, so the campaigns that use the segment are listed beside the message.
            return render_template("segments/delete.html", segment=segment, error=exc.message,
                                   using=services.campaigns_using(g.team, segment)), 422
        flash(f"Segment “{segment.name}” was deleted.", "success")
        return redirect(url_for("segments.index"))
    return render_template("segments/delete.html", segment=segment, error=None,
                           using=services.campaigns_using(g.team, segment))
