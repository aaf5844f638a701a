"""What to render: a campaign (or one A/B variant) or a template, as a Source, and the built-in layouts."""
import functools
import re
from pathlib import Path

from app.models import Campaign

# "blocks": body is the HTML rendered from the block document (app/content/blocks), read as HTML.
KINDS = ("html", "markdown", "blocks")

LAYOUT_SLOT = re.compile(r"\{\{-?\s*content\s*-?\}\}")

# The built-in layouts, one file each; names starting with "_" are parts Loft uses itself
# (the Markdown layout, the sample content shown in a layout's preview), not offered to teams.
LAYOUTS_DIR = Path(__file__).resolve().parent / "layouts"


def builtin_layout(name):
    return (LAYOUTS_DIR / f"{name}.html").read_text(encoding="utf-8")


def builtin_layouts():
    """(key, source) of every layout offered to teams, by name; a file is read again once it changes."""
    signature = tuple((path.name, path.stat().st_mtime_ns) for path in sorted(LAYOUTS_DIR.glob("*.html"))
                      if not path.name.startswith("_"))
    return _read_layouts(signature)


@functools.lru_cache(maxsize=1)
def _read_layouts(signature):
    return tuple((name.removesuffix(".html"), (LAYOUTS_DIR / name).read_text(encoding="utf-8"))
                 for name, _changed in signature)


class Source:
    """What to render: the body, its kind, subject, preheader and layout."""

    def __init__(self, body, kind, subject="", preheader="", layout=None, name="", from_name=None, utm=None):
        self.body = body or ""
        self.kind = kind if kind in KINDS else "html"
        self.subject = subject or ""
        self.preheader = preheader or ""
        self.layout = layout
        self.name = name
        self.from_name = from_name  # None: the sender's default (a template has none of its own)
        self.utm = utm  # a campaign's UTM settings (app/content/utm.py); None: links are not tagged


def source_of(item, variant=None):
    """A Source for a Campaign (optionally one A/B Variant) or a Template-like object."""
    if isinstance(item, Campaign):
        layout = None
        if item.template_id and item.kind != "blocks":  # a block email is a whole email, never wrapped
            template = item.template
            if template is not None and template.kind == "html" and LAYOUT_SLOT.search(template.body or ""):
                layout = template.body
        body = item.body
        subject = item.subject
        from_name = item.from_name
        preheader = item.preheader
        if variant is not None:
            body = variant.body or body
            subject = variant.subject or subject
            from_name = variant.from_name or from_name
            preheader = variant.preheader or preheader
        return Source(body, item.kind, subject, preheader, layout, item.name, from_name=from_name,
                      utm=item.utm)
    body = getattr(item, "body", "") or ""
    kind = getattr(item, "kind", "html")
    layout = None
    if kind == "html" and LAYOUT_SLOT.search(body):
        # A layout previewed on its own shows sample content in its slot.
        layout, body = body, builtin_layout("_sample_content")
    return Source(body, kind, getattr(item, "subject", "") or getattr(item, "name", ""), "", layout,
                  getattr(item, "name", ""))
