"""The block document: what a block email is made of, and the one check every document passes.

    {"version": 1, "blocks": [{"id": "...", "type": "heading", ...}, ...]}

validate_document() returns a clean copy holding only the known fields of each block, with numbers
and choices in range and rich text sanitized, or raises BlockProblem with a message for the person
editing. Every writer (ops, store) goes through it, so a stored document is always a valid one.
"""
import re
import secrets

from app.content.blocks.richtext import RichTextProblem
from app.content.blocks.richtext import clean_rich_text
from app.content.sandbox import LINK_VARIABLES
from app.errors import Problem

VERSION = 1

BLOCK_TYPES = {
    "heading": "Heading",
    "text": "Text",
    "image": "Image",
    "button": "Button",
    "divider": "Divider",
    "spacer": "Spacer",
    "columns": "Columns",
    "social": "Social links",
    "footer": "Footer",
}

SOCIAL_NETWORKS = {
    "x": "X", "facebook": "Facebook", "instagram": "Instagram", "linkedin": "LinkedIn", "youtube": "YouTube",
    "mastodon": "Mastodon", "tiktok": "TikTok", "website": "Website",
}
ALIGNMENTS = ("left", "center", "right")

MAX_BLOCKS = 200  # in the whole document, blocks inside columns included
MAX_SOCIAL_LINKS = 10
MAX_PLAIN = {"heading": 300, "button": 80, "footer": 2000, "alt": 300}
MAX_RICH_TEXT = 20000
MAX_URL = 2000
IMAGE_WIDTH = (1, 600)
IMAGE_HEIGHT = (1, 4000)
SPACER_HEIGHT = (4, 120)

BLOCK_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MEDIA_PATH = re.compile(r"/m/[A-Za-z0-9_-]{1,100}\.(?:png|jpe?g|gif|webp)")
# A merge tag in a link: one variable, optionally dotted (contact.first_name); anything more (filters,
# quotes, statements) has no business inside an address.
LINK_TAG = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BlockProblem(Problem):
    pass


def new_id():
    return secrets.token_urlsafe(9)  # 12 url-safe characters


def new_block(block_type):
    """A block of `block_type` with its starting values, ready to be edited."""
    defaults = {
        "heading": {"text": "A heading", "level": 2, "align": "left"},
        "text": {"html": "<p>Write something your readers will want to read.</p>"},
        "image": {"src": "", "alt": "", "href": "", "width": 600},
        "button": {"text": "Read more", "href": "", "align": "center", "color": ""},
        "divider": {},
        "spacer": {"height": 24},
        "columns": {"columns": [[], []]},
        "social": {"links": []},
        "footer": {"text": ""},
    }
    if block_type not in defaults:
        raise BlockProblem(f"There is no block of type “{block_type}”.", field="type")
    return {"id": new_id(), "type": block_type, **defaults[block_type]}


def empty_document():
    return {"version": VERSION, "blocks": []}


def validate_document(doc):
    """A clean copy of `doc`, or BlockProblem saying what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), list):
        raise BlockProblem("This is not a block email: it needs a list of blocks.")
    if doc.get("version", VERSION) != VERSION:
        raise BlockProblem(f"This block email was made by a newer version of Loft (format {doc.get('version')}).")
    seen = set()
    blocks = [_block(block, seen, inside_columns=False) for block in doc["blocks"]]
    if len(seen) > MAX_BLOCKS:
        raise BlockProblem(f"An email can hold at most {MAX_BLOCKS} blocks; this one has {len(seen)}.")
    return {"version": VERSION, "blocks": blocks}


def validate_block(block, inside_columns=False):
    """A clean copy of one block (its id checked for shape only)."""
    return _block(block, set(), inside_columns)


def _block(block, seen, inside_columns):
    if not isinstance(block, dict):
        raise BlockProblem("Every block must be an object with an id and a type.")
    block_type = block.get("type")
    if block_type not in BLOCK_TYPES:
        raise BlockProblem(f"There is no block of type “{str(block_type)[:40]}”.", field="type")
    block_id = block.get("id")
    if not isinstance(block_id, str) or not block_id:
        raise BlockProblem(f"A {BLOCK_TYPES[block_type].lower()} block has no id.")
    if not BLOCK_ID.fullmatch(block_id):
        raise BlockProblem("A block id is 8 to 64 letters, digits, “-” or “_”.")
    if block_id in seen:
        raise BlockProblem("Two blocks share the same id.")
    seen.add(block_id)
    clean = {"id": block_id, "type": block_type}
    if block_type == "columns":
        if inside_columns:
            raise BlockProblem("Columns cannot hold other columns.", field="type")
        columns = block.get("columns")
        if not isinstance(columns, list) or not all(isinstance(column, list) for column in columns):
            raise BlockProblem("A columns block needs a list of columns.")
        if len(columns) not in (2, 3):
            raise BlockProblem(f"Columns come in twos or threes, not {len(columns)}.", field="count")
        clean["columns"] = [[_block(inner, seen, inside_columns=True) for inner in column] for column in columns]
    else:
        clean.update(FIELDS[block_type](block))
    return clean


# --- one function per block type: its fields, checked ---------------------------------------------

def plain_text(value, name, limit, label):
    text = "" if value is None else str(value)
    text = _CONTROL.sub(lambda m: "\n" if m.group(0) == "\n" else " ", text.replace("\r\n", "\n")).strip()
    if len(text) > limit:
        raise BlockProblem(f"{label} is too long ({len(text):,} characters; at most {limit:,}).", field=name)
    return text


def whole_number(value, name, bounds, label):
    try:
        number = int(str(value).strip().removesuffix("px"))
    except (TypeError, ValueError):
        number = None
    if number is None or not bounds[0] <= number <= bounds[1]:
        raise BlockProblem(f"{label} is a whole number of pixels from {bounds[0]} to {bounds[1]}.", field=name)
    return number


def choice(value, name, options, default):
    if value in (None, ""):
        return default
    if value not in options:
        raise BlockProblem(f"Choose one of: {', '.join(str(option) for option in options)}.", field=name)
    return value


def link(value, name="href", required=False):
    """A link address a reader can follow: http(s), mailto, or one merge tag ({{ unsubscribe_url }})."""
    url = "" if value is None else str(value).strip()
    if not url:
        if required:
            raise BlockProblem("Enter the address this links to, starting with https://.", field=name)
        return ""
    if len(url) > MAX_URL:
        raise BlockProblem(f"This address is too long (at most {MAX_URL:,} characters).", field=name)
    outside_tags = LINK_TAG.sub("", url)
    if LINK_TAG.fullmatch(url):
        if url.strip("{} ") not in LINK_VARIABLES:
            raise BlockProblem("A link that is only a merge tag must be {{ unsubscribe_url }}, {{ preferences_url }} "
                               "or {{ webview_url }}; put other fields after https://, so that no field value can "
                               "turn the link into a script.", field=name)
        return url
    if _CONTROL.search(url) or re.search(r"[\s\"'<>`\\{}]", outside_tags):
        raise BlockProblem("A link address cannot contain spaces, quotes, angle brackets or braces "
                           "(other than a merge tag such as {{ contact.email }}).", field=name)
    if not re.match(r"(?:https?://[^/?#]|mailto:[^/])", url, re.IGNORECASE):
        raise BlockProblem("A link must start with https://, http:// or mailto:, or be a merge tag such as "
                           "{{ unsubscribe_url }}.", field=name)
    return url


def image_source(value):
    src = "" if value is None else str(value).strip()
    if not src:
        return ""
    if MEDIA_PATH.fullmatch(src):
        return src
    if len(src) > MAX_URL or not re.fullmatch(r"https://[^/?#\s\"'<>`\\{}]+[^\s\"'<>`\\{}]*", src, re.IGNORECASE):
        raise BlockProblem("Choose an image from the media library, or enter an address starting with https://.",
                           field="src")
    return src


def color(value, name="color"):
    text = "" if value is None else str(value).strip()
    if text and not COLOR.fullmatch(text):
        raise BlockProblem("A colour is written as # and six hex digits, such as #1d4ed8.", field=name)
    return text.lower()


def _heading(block):
    return {"text": plain_text(block.get("text"), "text", MAX_PLAIN["heading"], "The heading"),
            "level": int(choice(_int_or_same(block.get("level")), "level", (1, 2, 3), 2)),
            "align": choice(block.get("align"), "align", ALIGNMENTS, "left")}


def _text(block):
    html = "" if block.get("html") is None else str(block.get("html"))
    if len(html) > MAX_RICH_TEXT:
        raise BlockProblem(f"This text is too long ({len(html):,} characters; at most {MAX_RICH_TEXT:,}).",
                           field="html")
    try:
        return {"html": clean_rich_text(html)}
    except RichTextProblem as exc:
        raise BlockProblem(exc.message, field="html") from None


def _image(block):
    src = image_source(block.get("src"))
    alt = plain_text(block.get("alt"), "alt", MAX_PLAIN["alt"], "The image description").replace("\n", " ")
    if src and not alt:
        raise BlockProblem("Describe the image in a few words (its alt text), for readers who cannot see it.",
                           field="alt")
    clean = {"src": src, "alt": alt, "href": link(block.get("href")),
             "width": whole_number(block.get("width") or 600, "width", IMAGE_WIDTH, "The width")}
    if block.get("height") not in (None, ""):
        clean["height"] = whole_number(block.get("height"), "height", IMAGE_HEIGHT, "The height")
    if block.get("align") not in (None, ""):
        clean["align"] = choice(block.get("align"), "align", ALIGNMENTS, "center")
    return clean


def _button(block):
    text = plain_text(block.get("text"), "text", MAX_PLAIN["button"], "The button text").replace("\n", " ")
    if not text:
        raise BlockProblem("Give the button a few words, such as “Read more”.", field="text")
    return {"text": text, "href": link(block.get("href")),
            "align": choice(block.get("align"), "align", ALIGNMENTS, "center"), "color": color(block.get("color"))}


def _spacer(block):
    return {"height": whole_number(block.get("height") or 24, "height", SPACER_HEIGHT, "The space")}


def _social(block):
    links = block.get("links") or []
    if not isinstance(links, list):
        raise BlockProblem("Social links are a list of networks and addresses.", field="links")
    if len(links) > MAX_SOCIAL_LINKS:
        raise BlockProblem(f"At most {MAX_SOCIAL_LINKS} social links.", field="links")
    clean = []
    for index, item in enumerate(links):
        item = item if isinstance(item, dict) else {}
        network = choice(item.get("network"), f"network_{index}", tuple(SOCIAL_NETWORKS), None)
        if network is None:
            raise BlockProblem("Choose the network of each social link.", field=f"network_{index}")
        clean.append({"network": network, "url": link(item.get("url"), f"url_{index}", required=True)})
    return {"links": clean}


def _footer(block):
    return {"text": plain_text(block.get("text"), "text", MAX_PLAIN["footer"], "The footer text")}


def _int_or_same(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


FIELDS = {
    "heading": _heading, "text": _text, "image": _image, "button": _button, "divider": lambda block: {},
    "spacer": _spacer, "social": _social, "footer": _footer,
}
