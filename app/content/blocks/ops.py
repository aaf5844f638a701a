"""Changes to a block document: pure functions that take a document and return a NEW, validated one.

A block lives either at the top level or in one column of a columns block; `into` names such a column
as (columns block id, column index) or "<columns id>:<index>". Every function refuses an unknown id
with BlockProblem, and validates its result, so the editor never stores a half-made document.
"""
import copy

from app.content.blocks.schema import BLOCK_TYPES
from app.content.blocks.schema import SOCIAL_NETWORKS
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import new_block
from app.content.blocks.schema import new_id
from app.content.blocks.schema import validate_block
from app.content.blocks.schema import validate_document

# The fields an edit form may change, per block type (anything else in the form is ignored).
EDITABLE = {
    "heading": ("text", "level", "align"),
    "text": ("html",),
    "image": ("src", "alt", "href", "width", "height", "align"),
    "button": ("text", "href", "align", "color"),
    "divider": (),
    "spacer": ("height",),
    "columns": (),
    "social": (),
    "footer": ("text",),
}


def find(doc, block_id):
    """The block with `block_id` (a copy is not made: do not change it), or BlockProblem."""
    container, index = _locate(doc, block_id)
    return container[index]


def add_block(doc, block_type, index=None, into=None):
    """(new document, the new block): a fresh `block_type` block at `index` (the end when None)."""
    if block_type not in BLOCK_TYPES:
        raise BlockProblem(f"There is no block of type “{str(block_type)[:40]}”.", field="type")
    doc = _copy(doc)
    container = _column(doc, into) if into not in (None, "") else doc["blocks"]
    if container is not doc["blocks"] and block_type == "columns":
        raise BlockProblem("Columns cannot hold other columns.", field="type")
    block = new_block(block_type)
    container.insert(_position(index, len(container)), block)
    return validate_document(doc), block


def add(doc, block_type, index=None, into=None):
    return add_block(doc, block_type, index, into)[0]


def update(doc, block_id, form):
    """The document with block `block_id` changed by an edit form's fields (validated and sanitized)."""
    doc = _copy(doc)
    container, index = _locate(doc, block_id)
    block = dict(container[index])
    for name in EDITABLE.get(block.get("type"), ()):
        if name in form:
            value = form[name]
            block[name] = value.strip() if isinstance(value, str) and name != "html" else value
    if block.get("type") == "social":
        block["links"] = social_links(form) if _has_social_fields(form) else block.get("links", [])
    if block.get("type") == "columns" and form.get("count") not in (None, ""):
        block["columns"] = _recount(block["columns"], form["count"])
    container[index] = validate_block(block, inside_columns=container is not doc["blocks"])
    return validate_document(doc)


def move(doc, block_id, to_index):
    """The document with the block moved to `to_index` within its own list (clamped to its ends)."""
    doc = _copy(doc)
    container, index = _locate(doc, block_id)
    block = container.pop(index)
    container.insert(_position(to_index, len(container)), block)
    return validate_document(doc)


def move_by(doc, block_id, delta):
    """The block moved `delta` places up (negative) or down; at either end it stays where it is."""
    container, index = _locate(doc, block_id)
    try:
        delta = int(delta)
    except (TypeError, ValueError):
        raise BlockProblem("Move a block by a whole number of places.") from None
    return move(doc, block_id, max(0, index + delta))


def move_into(doc, block_id, into, index=None):
    """The block moved into another list: a column ("<columns id>:<n>") or the top level (into=None)."""
    doc = _copy(doc)
    container, position = _locate(doc, block_id)
    block = container.pop(position)
    target = _column(doc, into) if into not in (None, "") else doc["blocks"]
    if target is not doc["blocks"] and block.get("type") == "columns":
        raise BlockProblem("Columns cannot hold other columns.", field="type")
    target.insert(_position(index, len(target)), block)
    return validate_document(doc)


def duplicate(doc, block_id):
    """The document with a copy of the block (new ids, inner blocks too) right after it."""
    doc = _copy(doc)
    container, index = _locate(doc, block_id)
    container.insert(index + 1, _fresh_ids(copy.deepcopy(container[index])))
    return validate_document(doc)


def delete(doc, block_id):
    doc = _copy(doc)
    container, index = _locate(doc, block_id)
    del container[index]
    return validate_document(doc)


def social_links(form):
    """Social links from an edit form: network_0/url_0, network_1/url_1, ... (empty rows skipped), or a list."""
    if isinstance(form.get("links"), list):
        return form["links"]
    links = []
    for index in range(len(SOCIAL_NETWORKS) * 2):
        network = str(form.get(f"network_{index}") or "").strip()
        url = str(form.get(f"url_{index}") or "").strip()
        if network or url:
            links.append({"network": network, "url": url})
    return links


def _has_social_fields(form):
    return "links" in form or any(str(name).startswith(("network_", "url_")) for name in form)


def _recount(columns, count):
    try:
        count = int(count)
    except (TypeError, ValueError):
        count = 0
    if count not in (2, 3):
        raise BlockProblem("Columns come in twos or threes.", field="count")
    columns = [list(column) for column in columns]
    while len(columns) < count:
        columns.append([])
    while len(columns) > count:
        columns[count - 1].extend(columns.pop())  # the last column's blocks join the one before: nothing lost
    return columns


def _copy(doc):
    """A copy to change; the result is validated whole before it is returned."""
    if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), list):
        raise BlockProblem("This is not a block email: it needs a list of blocks.")
    return copy.deepcopy(doc)


def _locate(doc, block_id):
    """(the list holding the block, its index) in `doc` itself."""
    for index, block in enumerate(doc["blocks"]):
        if not isinstance(block, dict):
            continue
        if block.get("id") == block_id:
            return doc["blocks"], index
        for column in block.get("columns") or () if block.get("type") == "columns" else ():
            for inner_index, inner in enumerate(column if isinstance(column, list) else ()):
                if isinstance(inner, dict) and inner.get("id") == block_id:
                    return column, inner_index
    raise BlockProblem("That block is no longer in this email; reload the page to see the latest version.")


def _column(doc, into):
    if isinstance(into, str):
        columns_id, _sep, number = into.rpartition(":")
    else:
        columns_id, number = into
    container, index = _locate(doc, columns_id)
    block = container[index]
    if block.get("type") != "columns":
        raise BlockProblem("Blocks can only be put inside columns.")
    try:
        return block["columns"][int(number)]
    except (TypeError, ValueError, IndexError):
        raise BlockProblem("That column does not exist.") from None


def _position(index, length):
    if index in (None, ""):
        return length
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise BlockProblem("A position is a whole number.") from None
    return max(0, min(index, length))


def _fresh_ids(block):
    block["id"] = new_id()
    if block["type"] == "columns":
        block["columns"] = [[_fresh_ids(inner) for inner in column] for column in block["columns"]]
    return block
