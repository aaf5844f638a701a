"""A block document rendered to email HTML: table layout, inline styles, 600 px wide, Outlook-safe.

render_body() is what a blocks campaign or template stores in `body`: the markup inside <body>,
which then goes through the same cleaning, sandbox and sending as any HTML body. The parts the
cleaner removes by design are added back by Loft itself, after cleaning, from fixed text that no
person writes: the <head> (EMAIL_HEAD: dark-mode and phone rules) and Outlook's ghost tables
(finish_mso() turns the empty loft-mso-* marker spans into conditional comments).
render_html() is the whole document, for a preview outside the sending pipeline.

Brand values come from the team's brand kit; each is checked again here (a colour is #rrggbb, a font
stack is letters, digits, spaces, commas, quotes and dashes), and DEFAULT_BRAND fills what is missing.
"""
import functools
import json
import re
from pathlib import Path

import jinja2
from markupsafe import Markup
from markupsafe import escape

from app.content.blocks.schema import COLOR
from app.content.blocks.schema import SOCIAL_NETWORKS
from app.content.blocks.schema import image_source
from app.content.blocks.schema import validate_document
from app.errors import Problem

DEFAULT_BRAND = {
    "logo_url": "",
    "logo_alt": "",
    "primary_color": "#1d4ed8",
    "background_color": "#f3f4f6",
    "card_color": "#ffffff",
    "text_color": "#1f2937",
    "font_family": "Arial, Helvetica, sans-serif",
    "footer_text": "",
}
FONT_STACK = re.compile(r"[A-Za-z0-9 ,'\"\-]{1,200}")

# Under 480 px columns stack and images fill the width; in dark mode (Apple Mail, iOS, Outlook.com's
# [data-ogsc]) the card turns dark and text light, so nothing is left dark on dark. Clients that invert
# colours themselves get a light card with explicit text colours, which inverts to a readable pair.
EMAIL_HEAD = """<!DOCTYPE html>
<html lang="en" xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<meta name="color-scheme" content="light dark">
<meta name="supported-color-schemes" content="light dark">
<title></title>
<!--[if mso]><noscript><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml></noscript><![endif]-->
<style>
:root { color-scheme: light dark; supported-color-schemes: light dark; }
body { margin: 0; padding: 0; }
table, td { mso-table-lspace: 0pt; mso-table-rspace: 0pt; }
img { -ms-interpolation-mode: bicubic; }
@media only screen and (max-width: 480px) {
  .loft-col { display: block !important; width: 100% !important; max-width: 100% !important; }
  .loft-pad { padding-left: 16px !important; padding-right: 16px !important; }
  .loft-cols { padding-left: 8px !important; padding-right: 8px !important; }
  img.loft-fluid { width: 100% !important; height: auto !important; }
}
@media (prefers-color-scheme: dark) {
  .loft-bg { background-color: #0b1120 !important; }
  .loft-card { background-color: #1e293b !important; }
  .loft-heading, .loft-text, .loft-text p, .loft-text li { color: #f1f5f9 !important; }
  .loft-text a { color: #93c5fd !important; }
  .loft-muted { color: #cbd5e1 !important; }
  .loft-rule { border-top-color: #475569 !important; }
}
[data-ogsc] .loft-heading, [data-ogsc] .loft-text, [data-ogsc] .loft-text p, [data-ogsc] .loft-text li { color: #f1f5f9 !important; }
[data-ogsc] .loft-text a { color: #93c5fd !important; }
[data-ogsc] .loft-muted { color: #cbd5e1 !important; }
</style>
</head>
<body style="margin:0;padding:0;width:100%;-webkit-text-size-adjust:100%;">
"""
EMAIL_TAIL = "</body>\n</html>\n"

_GHOST_START = ('<!--[if mso]><table role="presentation" width="568" cellpadding="0" cellspacing="0" border="0">'
                '<tr><td width="{cell}" valign="top"><![endif]-->')
_GHOST_NEXT = '<!--[if mso]></td><td width="{cell}" valign="top"><![endif]-->'
MSO_MARKERS = {
    '<span class="loft-mso-wrap-start"></span>':
        '<!--[if mso]><table role="presentation" align="center" width="600" cellpadding="0" cellspacing="0" '
        'border="0"><tr><td><![endif]-->',
    '<span class="loft-mso-wrap-end"></span>': "<!--[if mso]></td></tr></table><![endif]-->",
    '<span class="loft-mso-start-2"></span>': _GHOST_START.format(cell=284),
    '<span class="loft-mso-next-2"></span>': _GHOST_NEXT.format(cell=284),
    '<span class="loft-mso-start-3"></span>': _GHOST_START.format(cell=189),
    '<span class="loft-mso-next-3"></span>': _GHOST_NEXT.format(cell=189),
    '<span class="loft-mso-end"></span>': "<!--[if mso]></td></tr></table><![endif]-->",
}
_MSO_MARKER = re.compile("|".join(re.escape(marker) for marker in MSO_MARKERS))

# A merge tag printed in text stays as written; every other "{" becomes &#123; so that text can never
# open a Jinja statement or comment.
_MERGE_TAG = re.compile(r"\{\{(?:(?!\}\}).)*\}\}", re.DOTALL)

RICH_TEXT_STYLES = {
    "p": "margin:0 0 16px;",
    "ul": "margin:0 0 16px;padding-left:24px;",
    "ol": "margin:0 0 16px;padding-left:24px;",
    "li": "margin:0 0 6px;",
}
_BARE_TAG = re.compile(r"<(%s)>" % "|".join(RICH_TEXT_STYLES))


class BlockRenderError(Problem):
    pass


def with_tags(value):
    """Plain text as HTML: escaped, with its {{ merge tags }} kept for the sandbox."""
    text = "" if value is None else str(value)
    parts, position = [], 0
    for match in _MERGE_TAG.finditer(text):
        parts.append(str(escape(text[position:match.start()])).replace("{", "&#123;"))
        parts.append(match.group(0))
        position = match.end()
    parts.append(str(escape(text[position:])).replace("{", "&#123;"))
    return Markup("".join(parts))


def styled(html, brand):
    """Cleaned rich text with the inline styles email clients need (the cleaner left its tags bare)."""
    html = _BARE_TAG.sub(lambda m: f'<{m.group(1)} style="{RICH_TEXT_STYLES[m.group(1)]}">', html or "")
    link = f'<a style="color:{readable_link(brand["primary_color"])};text-decoration:underline;" href='
    return Markup(html.replace("<a href=", link))


def lines(value):
    return Markup(str(value).replace("\n", "<br>"))


def _luminance(color):
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def ink(fill):
    """White or near-black text, whichever reads better on `fill` (a button's colour)."""
    return "#ffffff" if (1.05 / (_luminance(fill) + 0.05)) >= ((_luminance(fill) + 0.05) / 0.0686) else "#111827"


def readable_link(color):
    """The brand colour for links on the white card, or a dark blue when it is too light to read there."""
    return color if (1.05 / (_luminance(color) + 0.05)) >= 4.5 else "#1d4ed8"


def brand_values(brand=None):
    """DEFAULT_BRAND with the usable values of `brand` (a dict from the team's brand kit)."""
    values = dict(DEFAULT_BRAND)
    for key, value in (brand or {}).items():
        value = "" if value is None else str(value).strip()
        if key.endswith("_color"):
            if COLOR.fullmatch(value):
                values[key] = value.lower()
        elif key == "font_family":
            if FONT_STACK.fullmatch(value):
                # Unquoted: a quote in a style attribute is escaped to &#39;, which the cleaner's CSS parser
                # reads as the start of a string that swallows the rest of the style. Family names of
                # plain words need no quotes.
                values[key] = re.sub(r"\s+", " ", value.replace("'", "").replace('"', "")).strip()
        elif key == "logo_url":
            try:
                values[key] = image_source(value)
            except Problem:
                values[key] = ""
        elif key in ("footer_text", "logo_alt"):
            values[key] = value[:2000]
    values["logo_alt"] = values["logo_alt"] or "Logo"
    return values


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_environment.filters.update(tags=with_tags, styled=styled, lines=lines, ink=ink, readable_link=readable_link)
_environment.globals["networks"] = SOCIAL_NETWORKS


def render_body(doc, brand=None):
    """The email's markup inside <body>, with loft-mso-* markers; `doc` is validated first."""
    doc = validate_document(doc)
    values = brand_values(brand)
    brand_key = tuple(sorted(values.items()))
    macros = _macros()
    rows = [_row(json.dumps(block, sort_keys=True), brand_key) for block in doc["blocks"]]
    return "\n".join([str(macros.top(values)), *rows, str(macros.bottom(values))]) + "\n"


def _macros():
    return _environment.get_template("email.html").module


@functools.lru_cache(maxsize=4096)
def _row(block_json, brand_key):
    """One top-level block's rows; rendering is pure, so an edit re-renders only the block it changed."""
    return str(_macros().row(json.loads(block_json), dict(brand_key))).strip()


def finish_mso(html):
    """Outlook's ghost tables in place of the marker spans (after cleaning: the cleaner drops comments)."""
    return _MSO_MARKER.sub(lambda m: MSO_MARKERS[m.group(0)], html)


def render_html(doc, brand=None):
    """A complete email HTML document for `doc`, merge tags left intact."""
    return EMAIL_HEAD + finish_mso(render_body(doc, brand)) + EMAIL_TAIL
