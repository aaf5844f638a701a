"""A block email kept on its owner (a Campaign, Template or TemplateDraft), with undo.

save() validates the document, renders the body the rest of Loft reads (so preview and sending need
nothing new), and keeps the document it replaces as a BlockRevision for undo (the last MAX_REVISIONS
per owner); copy_to() and refresh() render again without an undo step. A campaign is editable only
while it is a draft (or failed), the rule the campaign form follows.

The body is stored as rendered: it is made only of validated values, escaped text and rich text already
cut to its allowed subset, and every reader of a body (preview, test send, sending, web view) cleans it
again in app.content.prepare. Saving checks what would otherwise only show when the email is rendered,
the merge tags' names, at a fraction of the cost of cleaning the whole email on every small change.
"""
from app.content import sanitize
from app.content.blocks.render import render_body
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import empty_document
from app.content.blocks.schema import validate_document
from app.content.sandbox import MAX_SOURCE
from app.content.sandbox import RenderError
from app.content.sandbox import compile_template
from app.db import db
from app.models import BlockRevision
from app.models import Campaign
from app.models import CampaignState
from app.models import Template
from app.models import TemplateDraft
from app.models import utcnow

MAX_REVISIONS = 30
EDITABLE_STATES = (CampaignState.DRAFT, CampaignState.FAILED)


def owner_type(owner):
    if isinstance(owner, Campaign):
        return "campaign"
    if isinstance(owner, Template):
        return "template"
    if isinstance(owner, TemplateDraft):
        return "template_draft"
    raise TypeError(f"{type(owner).__name__} holds no block email")


def load(owner):
    """The owner's block document (an empty one when it has none yet)."""
    if getattr(owner, "kind", "") == "blocks" and isinstance(owner.blocks, dict):
        return validate_document(owner.blocks)
    return empty_document()


def check_editable(owner):
    if isinstance(owner, Campaign) and owner.state not in EDITABLE_STATES:
        raise BlockProblem("This campaign has started sending, so its email can no longer be changed. "
                           "Duplicate it to make a new version.")
    if isinstance(owner, Template) and owner.team_id is None:
        raise BlockProblem("Built-in templates cannot be changed. Save a copy to your team first.")


def rendered_body(doc, brand=None):
    """The body HTML of a valid document, or BlockProblem in words (e.g. an unknown merge tag)."""
    body = render_body(doc, brand)
    if len(body) > MAX_SOURCE:
        raise BlockProblem(f"This email is too long ({len(body):,} characters of HTML; at most {MAX_SOURCE:,}). "
                           "Remove some blocks or shorten the longest texts.")
    try:
        compile_template("\n".join(sanitize.JINJA.findall(body)), autoescape=True, strict_names=True)
    except RenderError as error:
        raise BlockProblem(f"This email cannot be saved: {error.message}") from None
    return body


def save(owner, doc, brand=None):
    """Validate `doc`, keep the owner's current document for undo, and write blocks, body and kind."""
    check_editable(owner)
    clean = validate_document(doc)
    body = rendered_body(clean, brand)
    previous = owner.blocks if owner.kind == "blocks" and isinstance(owner.blocks, dict) else None
    with db.atomic():
        if previous is not None and previous != clean and owner.id is not None:
            _remember(owner, previous)
        _write(owner, clean, body)
    return clean


def undo(owner, brand=None):
    """Put back the document the owner had before its last change; BlockProblem when there is none."""
    check_editable(owner)
    if owner.id is None:
        raise BlockProblem("Nothing to undo.")
    revision = (BlockRevision.select().where((BlockRevision.owner_type == owner_type(owner))
                                             & (BlockRevision.owner_id == owner.id))
                .order_by(BlockRevision.id.desc()).first())
    if revision is None:
        raise BlockProblem("Nothing to undo.")
    restored = validate_document(revision.document)
    body = rendered_body(restored, brand)
    with db.atomic():
        revision.delete_instance()
        _write(owner, restored, body)
    return restored


def can_undo(owner):
    return owner.id is not None and BlockRevision.select().where(
        (BlockRevision.owner_type == owner_type(owner)) & (BlockRevision.owner_id == owner.id)).exists()


def refresh(owner, brand=None):
    """Render the owner's body again from its blocks (the brand kit changed, or before sending); no undo step."""
    if owner.kind != "blocks" or not isinstance(owner.blocks, dict):
        return owner
    clean = validate_document(owner.blocks)
    _write(owner, clean, rendered_body(clean, brand))
    return owner


def copy_to(source, target, brand=None):
    """Give `target` the block email of `source`, rendered again (the caller saves it); no undo step."""
    clean = validate_document(source.blocks)
    target.blocks = clean
    target.body = rendered_body(clean, brand)
    target.kind = "blocks"
    return target


def forget(owner):
    """Delete the owner's undo history (call it when the owner itself is deleted)."""
    if owner.id is not None:
        BlockRevision.delete().where((BlockRevision.owner_type == owner_type(owner))
                                     & (BlockRevision.owner_id == owner.id)).execute()


def _remember(owner, previous):
    kind = owner_type(owner)
    BlockRevision.create(owner_type=kind, owner_id=owner.id, document=previous)
    stale = [row.id for row in BlockRevision.select(BlockRevision.id)
             .where((BlockRevision.owner_type == kind) & (BlockRevision.owner_id == owner.id))
             .order_by(BlockRevision.id.desc()).offset(MAX_REVISIONS)]
    if stale:
        BlockRevision.delete().where(BlockRevision.id << stale).execute()


def _write(owner, doc, body):
    owner.blocks, owner.body, owner.kind = doc, body, "blocks"
    owner.updated_at = utcnow()
    if owner.id is None:
        owner.save()
    else:
        owner.save(only=[type(owner).blocks, type(owner).body, type(owner).kind, type(owner).updated_at])
