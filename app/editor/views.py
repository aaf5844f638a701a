"""The block editor of a campaign or a template: every change is one POST answered with a fragment that
static/editor.js swaps in, focuses and announces: an edit with its own block (templates/editor/_one_block.html),
every other change with the whole editor (templates/editor/_editor.html), as the order or count changed.

Without JavaScript the same forms post normally and come back to the owner's page. The pages
embed the editor with the template global block_editor(owner); each change answers with the
HX-Trigger event "blocks-changed", on which the page's preview reloads the saved email.
"""
from flask import Blueprint
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from markupsafe import Markup

from app.content.blocks.schema import BlockProblem
from app.editor import services
from app.htmx import is_htmx
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.teams.permissions import can

bp = Blueprint("editor", __name__, url_prefix="/editor")

OWNER_PAGES = {"campaign": ("campaigns.edit", "campaign_id"), "template": ("email_templates.edit", "template_id")}
MEDIA_PICKER = "media.picker"
# The fields each block's edit form shows (templates/editor/_block.html); a refusal about any other
# field is shown at the top of the block instead.
FORM_FIELDS = {"heading": ("text", "level", "align"), "text": ("html",), "image": ("src", "alt", "href", "width", "height", "align"),
               "button": ("text", "href", "align", "color"), "spacer": ("height",), "columns": ("count",),
               "social": ("network_", "url_"), "footer": ("text",)}


def _owner(owner_type, owner_id):
    return team_object_or_404(services.OWNER_MODELS[owner_type], owner_id)


def _context(owner, doc, change=None, problem=None, problem_block=None):
    owner_type = services.owner_type_of(owner)
    if problem_block and services.find(doc, problem_block) is None:
        problem_block = None  # the block is gone: the message goes above the blocks
    editable = (g.membership is not None and can(g.membership.role, "edit_content")
                and not services.is_read_only(owner))
    focus, open_blocks, error_at_block = None, set(), False
    if change is not None:
        focus = f"block-{change.focus}" if change.focus else "block-undo"
        if change.opens:
            open_blocks.add(change.focus)
    elif problem is not None:
        focus = f"block-{problem_block}" if problem_block else "block-editor-error"
        error_at_block = bool(problem_block) and not _shown_at_field(doc, problem_block, problem.field)
    return dict(owner=owner, owner_type=owner_type, doc=doc, editable=editable,
                base=url_for("editor.blocks", owner_type=owner_type, owner_id=owner.id),
                message=change.message if change else "", focus=focus, focus_field=bool(change and change.added),
                error=problem.message if problem else None, errors=problem.errors if problem else {},
                error_block=problem_block, error_at_block=error_at_block, open_blocks=open_blocks, swapped=None,
                typed=request.form if problem_block else {}, types=services.block_types(),
                networks=services.social_networks(), fields=services.merge_fields(g.team),
                picker=MEDIA_PICKER in current_app.view_functions,
                type_label=services.type_label, summary=services.summary, named=services.named,
                move_targets=services.move_targets(doc), current_target=services.current_target)


def _shown_at_field(doc, block_id, field):
    """Whether the block's edit form shows a message about `field` next to that field."""
    if not field:
        return False
    block = services.find(doc, block_id)
    return bool(block) and field.startswith(FORM_FIELDS.get(block.get("type"), ()))


@bp.app_template_global("block_editor")
def block_editor(owner):
    """The editor of `owner`'s blocks, for the campaign and template pages; a stored document that no longer
    passes the checks is named above an empty editor instead of failing the whole page."""
    try:
        context = _context(owner, services.document(g.team, owner))
    except BlockProblem as problem:
        context = _context(owner, services.empty_document(), problem=problem)
    return Markup(render_template("editor/_panel.html", **context))


def _answer(owner, change=None, problem=None, problem_block=None, one_block=None):
    """The fragment for htmx (422 with the problem), else back to the owner's page with a message.

    With `one_block` (an edit, whose form targets its own block) only that block is rendered and swapped:
    the others are as they were, and any unsaved typing in them stays. Should the block be gone, the
    whole editor is sent and retargeted."""
    if is_htmx():
        doc = change.document if change else services.document(g.team, owner)
        context = _context(owner, doc, change, problem, problem_block)
        place = services.place(doc, one_block) if one_block else None
        if place:
            context["swapped"] = one_block
            body = render_template("editor/_one_block.html", block=services.find(doc, one_block), place=place,
                                   **context)
        else:
            body = render_template("editor/_editor.html", **context)
        response = current_app.make_response((body, 422 if problem else 200))
        if one_block and not place:
            response.headers["HX-Retarget"] = "#block-editor"
            response.headers["HX-Reswap"] = "outerHTML"
        if change is not None:
            response.headers["HX-Trigger"] = "blocks-changed"
        return response
    if problem is not None:
        flash(problem.message, "error")
    else:
        flash(change.message, "success")
    endpoint, argument = OWNER_PAGES[services.owner_type_of(owner)]
    anchor = problem_block or (change.focus if change else None)
    if anchor and not services.is_block_id(anchor):  # from the URL: only a real block id goes into the Location
        anchor = None
    return redirect(url_for(endpoint, **{argument: owner.id}) + (f"#block-{anchor}" if anchor else "#block-editor"))


def _run(owner, change_of, block_id=None, one_block=False):
    try:
        return _answer(owner, change_of(), one_block=block_id if one_block else None)
    except BlockProblem as problem:
        return _answer(owner, problem=problem, problem_block=block_id, one_block=block_id if one_block else None)


OWNER = "/<any(campaign, template):owner_type>/<int:owner_id>/blocks"


@bp.route(OWNER)
@require("view")
def blocks(owner_type, owner_id):
    owner = _owner(owner_type, owner_id)
    if is_htmx():
        return render_template("editor/_editor.html", **_context(owner, services.document(g.team, owner)))
    endpoint, argument = OWNER_PAGES[owner_type]
    return redirect(url_for(endpoint, **{argument: owner.id}) + "#block-editor")


@bp.route(OWNER + "/add", methods=["POST"])
@require("edit_content")
def add(owner_type, owner_id):
    owner = _owner(owner_type, owner_id)
    return _run(owner, lambda: services.add_block(g.team, owner, request.form.get("type", ""),
                                                  after=request.form.get("after") or None,
                                                  into=request.form.get("into") or None))


@bp.route(OWNER + "/<block_id>/edit", methods=["POST"])
@require("edit_content")
def edit(owner_type, owner_id, block_id):
    owner = _owner(owner_type, owner_id)
    # A columns block's new count changes every block's "Move to…" menu: the whole editor is sent then.
    one_block = services.block_type(g.team, owner, block_id) != "columns"
    response = _run(owner, lambda: services.edit_block(g.team, owner, block_id, request.form), block_id,
                    one_block=one_block)
    if not one_block and is_htmx():  # the form targets its own block
        response.headers["HX-Retarget"] = "#block-editor"
        response.headers["HX-Reswap"] = "outerHTML"
    return response


@bp.route(OWNER + "/<block_id>/move", methods=["POST"])
@require("edit_content")
def move(owner_type, owner_id, block_id):
    owner = _owner(owner_type, owner_id)
    position = request.form.get("to_index", "")
    to_index = int(position) if position.isdigit() else None
    if request.form.get("into"):  # the "Move to" menu, or a drag into or out of a column
        return _run(owner, lambda: services.move_block_to(g.team, owner, block_id, request.form["into"],
                                                          to_index=to_index), block_id)
    return _run(owner, lambda: services.move_block(g.team, owner, block_id, direction=request.form.get("direction"),
                                                   to_index=to_index), block_id)


@bp.route(OWNER + "/<block_id>/duplicate", methods=["POST"])
@require("edit_content")
def duplicate(owner_type, owner_id, block_id):
    owner = _owner(owner_type, owner_id)
    return _run(owner, lambda: services.duplicate_block(g.team, owner, block_id), block_id)


@bp.route(OWNER + "/<block_id>/delete", methods=["POST"])
@require("edit_content")
def delete(owner_type, owner_id, block_id):
    owner = _owner(owner_type, owner_id)
    return _run(owner, lambda: services.delete_block(g.team, owner, block_id), block_id)


@bp.route(OWNER + "/undo", methods=["POST"])
@require("edit_content")
def undo(owner_type, owner_id):
    owner = _owner(owner_type, owner_id)
    return _run(owner, lambda: services.undo(g.team, owner))
