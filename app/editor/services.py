"""The block editor's changes: one function per thing a person does to an email's blocks.

Each loads the owner's document (a campaign or a template of the team), applies one pure operation
of app.content.blocks.ops and saves the result with app.content.blocks.store, which validates it,
keeps the previous document for undo and renders the body again. A refusal is a BlockProblem whose
message is meant for the person at the block; nothing is stored then.

A Change says what happened in words (the editor announces it) and which block to focus next, so a
person using the keyboard stays on the block they just changed.
"""
import dataclasses
import re

from app.brand.services import brand_for
from app.contacts.fields import fields_of
from app.content.blocks import ops
from app.content.blocks import schema
from app.content.blocks import store
from app.content.blocks.schema import BlockProblem
from app.content.text import html_to_text
from app.models import Campaign
from app.models import Template

OWNER_MODELS = {"campaign": Campaign, "template": Template}
# The contact fields every team has, in the order people look for them.
STANDARD_FIELDS = (("first_name", "First name"), ("last_name", "Last name"), ("name", "Full name"),
                   ("email", "Email address"))
SUMMARY_LENGTH = 60
_SPACES = re.compile(r"\s+")


@dataclasses.dataclass
class Change:
    document: dict
    focus: str | None  # the id of the block to focus after the change, None: the editor's toolbar
    message: str  # what happened, in words
    opens: bool = False  # the focused block's edit form stays open (it was just added or edited)
    added: bool = False  # a new block: the focus goes into its first field


def owner_type_of(owner):
    return "campaign" if isinstance(owner, Campaign) else "template"


def is_read_only(owner):
    """A campaign that has left draft is frozen (store.check_editable): its blocks are shown without controls."""
    try:
        store.check_editable(owner)
    except BlockProblem:
        return True
    return False


def document(team, owner):
    _check_owner(team, owner)
    return store.load(owner)


def empty_document():
    return schema.empty_document()


def merge_fields(team):
    """[(key, label)]: the fields a personalisation tag can name, standard ones first."""
    return list(STANDARD_FIELDS) + [(field.key, field.label) for field in fields_of(team)]


def merge_tag(key):
    return "{{ contact.%s }}" % key


def block_types():
    return list(schema.BLOCK_TYPES.items())


def social_networks():
    return list(schema.SOCIAL_NETWORKS.items())


def place(doc, block_id):
    """(position from 1, blocks in its list, the columns block holding it or None), or None when it is gone."""
    for index, block in enumerate(doc.get("blocks", [])):
        if block.get("id") == block_id:
            return index + 1, len(doc["blocks"]), None
        for column in block.get("columns") or []:
            for inner_index, inner in enumerate(column):
                if inner.get("id") == block_id:
                    return inner_index + 1, len(column), block["id"]
    return None


def block_type(team, owner, block_id):
    """The type of the owner's block `block_id`, or None when there is no such block."""
    try:
        return (find(document(team, owner), block_id) or {}).get("type")
    except BlockProblem:  # a stored document that fails the checks: the change itself names the problem
        return None


def is_block_id(value):
    return bool(schema.BLOCK_ID.fullmatch(value or ""))


def find(doc, block_id):
    """The block with this id in `doc`, or None."""
    try:
        return ops.find(doc, block_id)
    except BlockProblem:
        return None


# --- Words about a block ---------------------------------------------------------------------

def type_label(block):
    return schema.BLOCK_TYPES.get(block.get("type"), "Block")


def summary(block):
    """A short line that tells this block from the others ("Welcome, {{ contact.first_name }}")."""
    kind = block.get("type")
    if kind == "text":
        text = _SPACES.sub(" ", html_to_text(block.get("html") or "")).strip()
    elif kind == "image":
        text = block.get("alt") or block.get("src") or ""
    elif kind == "spacer":
        text = f"{block.get('height', '')} px"
    elif kind == "columns":
        text = f"{len(block.get('columns') or [])} columns"
    elif kind == "social":
        text = ", ".join(link.get("network", "") for link in block.get("links") or [])
    else:
        text = block.get("text") or ""
    return text if len(text) <= SUMMARY_LENGTH else text[:SUMMARY_LENGTH - 1].rstrip() + "…"


def named(block):
    """The block as a sentence names it: the heading “Welcome”, the divider."""
    text = summary(block)
    label = type_label(block).lower()
    return f"the {label} “{text}”" if text else f"the {label}"


# --- Changes ---------------------------------------------------------------------------------

def add_block(team, owner, block_type, after=None, into=None):
    """A new block of `block_type` after the block `after` (at the end without one), or at the end of
    the column `into` ("<columns block id>:<column index>")."""
    doc = document(team, owner)
    if into:
        changed, block = ops.add_block(doc, block_type, into=into)
    else:
        changed, block = ops.add_block(doc, block_type, index=_top_level_index(doc, after) + 1 if after else None)
    saved = store.save(owner, changed, brand_for(team))
    return Change(saved, block["id"], f"Added {named(block)}.", opens=True, added=True)


def edit_block(team, owner, block_id, form):
    doc = document(team, owner)
    saved = store.save(owner, ops.update(doc, block_id, form), brand_for(team))
    return Change(saved, block_id, f"Saved {named(ops.find(saved, block_id))}.", opens=True)


def move_block(team, owner, block_id, direction=None, to_index=None):
    """Up or down by one (direction "up"/"down"), or to a position among its neighbours (a drop)."""
    doc = document(team, owner)
    block = ops.find(doc, block_id)
    if to_index is not None:
        changed, where = ops.move(doc, block_id, to_index), f"to position {to_index + 1}"
    elif direction in ("up", "down"):
        changed, where = ops.move_by(doc, block_id, -1 if direction == "up" else 1), direction
    else:
        raise BlockProblem("Say where the block goes: up, down or a position.")
    if changed == doc:
        edge = "first" if direction == "up" or to_index == 0 else "last"
        return Change(doc, block_id, f"{named(block).capitalize()} is already the {edge} block.")
    saved = store.save(owner, changed, brand_for(team))
    return Change(saved, block_id, f"Moved {named(block)} {where}.")


TOP_LEVEL = "top"


def move_targets(doc):
    """[(value, label)]: where a block can be moved with its "Move to" menu: the top level, then each column
    of each columns block, named by the columns block's position so two of them are told apart."""
    targets = [(TOP_LEVEL, "Top level")]
    for position, block in enumerate(doc.get("blocks", []), start=1):
        if block.get("type") == "columns":
            for number in range(len(block.get("columns") or [])):
                targets.append((f"{block['id']}:{number}", f"Column {number + 1} of the columns (block {position})"))
    return targets


def current_target(doc, block_id):
    """The "Move to" value of the list that holds the block now."""
    where = place(doc, block_id)
    if not where or where[2] is None:
        return TOP_LEVEL
    for number, column in enumerate(find(doc, where[2]).get("columns") or []):
        if any(inner.get("id") == block_id for inner in column):
            return f"{where[2]}:{number}"
    return TOP_LEVEL


def move_block_to(team, owner, block_id, into, to_index=None):
    """Into a column ("<columns id>:<n>", at its end or at `to_index`) or out to the top level (`into` "top":
    right below the columns block that held it, or at `to_index`)."""
    doc = document(team, owner)
    block = ops.find(doc, block_id)
    if block.get("type") == "columns" and into != TOP_LEVEL:  # also when `into` names one of its own columns
        raise BlockProblem("Columns cannot hold other columns.", field="type")
    if into == current_target(doc, block_id) and to_index is None:
        return Change(doc, block_id, f"{named(block).capitalize()} is already there.")
    if into == TOP_LEVEL:
        holder = place(doc, block_id)[2]
        index = to_index if to_index is not None else (_top_level_index(doc, holder) + 1 if holder else None)
        changed, where = ops.move_into(doc, block_id, None, index), "to the top level"
    elif into and ":" in into:
        changed = ops.move_into(doc, block_id, into, to_index)
        label = dict(move_targets(doc)).get(into, "the column")
        where = f"into {label[0].lower()}{label[1:]}"
    else:
        raise BlockProblem("Choose where the block goes: the top level or a column.")
    saved = store.save(owner, changed, brand_for(team))
    return Change(saved, block_id, f"Moved {named(block)} {where}.")


def duplicate_block(team, owner, block_id):
    doc = document(team, owner)
    block = ops.find(doc, block_id)
    changed = ops.duplicate(doc, block_id)
    before = set(_all_ids(doc))
    copy_id = next((new for new in _all_ids(changed) if new not in before), block_id)
    saved = store.save(owner, changed, brand_for(team))
    return Change(saved, copy_id, f"Duplicated {named(block)}: the copy is below it.")


def delete_block(team, owner, block_id):
    """Delete a block; the focus goes to the block before it (or after it, or the toolbar)."""
    doc = document(team, owner)
    block = ops.find(doc, block_id)
    ids = [b["id"] for b in doc.get("blocks", [])]
    neighbour = None
    if block_id in ids:
        at = ids.index(block_id)
        rest = ids[:at][-1:] + ids[at + 1:at + 2]
        neighbour = rest[0] if rest else None
    saved = store.save(owner, ops.delete(doc, block_id), brand_for(team))
    return Change(saved, neighbour, f"Deleted {named(block)}. Undo brings it back.")


def undo(team, owner):
    _check_owner(team, owner)
    restored = store.undo(owner, brand_for(team))
    return Change(restored, None, "Undone: the blocks are as they were before the last change.")


# --- Helpers -----------------------------------------------------------------------------------

def _check_owner(team, owner):
    if owner.team_id != team.id:
        raise BlockProblem("This email belongs to another team.")


def _top_level_index(doc, block_id):
    for index, block in enumerate(doc.get("blocks", [])):
        if block.get("id") == block_id:
            return index
    ops.find(doc, block_id)  # an unknown id: its BlockProblem
    raise BlockProblem("A block inside columns gets new blocks from its column's own “Add” menu.")


def _all_ids(doc):
    for block in doc.get("blocks", []):
        yield block.get("id")
        for column in block.get("columns") or []:
            for inner in column:
                yield inner.get("id")
