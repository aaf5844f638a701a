"""Email-safe HTML: what campaign and template bodies may contain.

Every body is cleaned with bleach on save and again when a campaign is frozen
for sending, with an allowlist of the markup email clients actually render
(tables, inline styles, images, links) and nothing that runs: no <script>,
no on* handlers, no javascript:/vbscript:/data: URLs, no <style> blocks, no
SVG, iframes, forms or embeds. Inline styles are kept, but only email-safe
properties, and never values that can load or run anything (url(),
expression(), behaviour bindings).

Bodies are Jinja templates, so the cleaner protects every Jinja construct
before bleach sees the markup and puts it back afterwards: `{{ contact.name }}`
inside text, `href="{{ unsubscribe_url }}"` inside attributes, and
`{% if %}` between table rows all survive exactly as written. A construct that
sat where no markup is allowed (inside a removed <script>, or between a tag's
attributes) is dropped; `protect_and_clean()` reports which ones, so saving
can refuse the template with a clear message instead of silently changing it.

What Jinja prints literally must be exactly what bleach approved, so two more
rules hold (app.content.prepare enforces the second and third on every
render, not only on save):

* a "{" that would start a Jinja delimiter in the *cleaned* text (bleach can
  make one by removing a tag, as in "{<x></x>% raw %}") becomes "&#123;";
* {% raw %} is refused: its content is printed as written, but was hidden
  from bleach as Jinja, so it would smuggle <script>, forms and meta refresh;
* the parts of one {% if %} … {% endif %} sit in one place (all between
  elements, or all inside one attribute value, see slot_places()): otherwise
  a condition could cut a tag in two and turn approved text into attributes.
"""
import functools
import re
import threading

import bleach
from bleach.css_sanitizer import CSSSanitizer

TAGS = frozenset((
    "a", "abbr", "address", "b", "big", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strike",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
))

_COMMON_ATTRIBUTES = ["style", "class", "id", "align", "valign", "dir", "lang", "title", "width", "height",
                      "bgcolor", "role"]
ATTRIBUTES = {
    "*": _COMMON_ATTRIBUTES,
    "a": _COMMON_ATTRIBUTES + ["href", "name", "target", "rel"],
    "img": _COMMON_ATTRIBUTES + ["src", "alt", "border", "hspace", "vspace"],
    "table": _COMMON_ATTRIBUTES + ["border", "cellpadding", "cellspacing", "background", "summary"],
    "td": _COMMON_ATTRIBUTES + ["colspan", "rowspan", "nowrap", "scope"],
    "th": _COMMON_ATTRIBUTES + ["colspan", "rowspan", "nowrap", "scope"],
    "col": _COMMON_ATTRIBUTES + ["span"],
    "colgroup": _COMMON_ATTRIBUTES + ["span"],
    "font": _COMMON_ATTRIBUTES + ["color", "face", "size"],
    "ol": _COMMON_ATTRIBUTES + ["start", "type"],
    "ul": _COMMON_ATTRIBUTES + ["type"],
    "li": _COMMON_ATTRIBUTES + ["value"],
    "hr": _COMMON_ATTRIBUTES + ["size", "noshade", "color"],
    "blockquote": _COMMON_ATTRIBUTES + ["cite"],
    "q": _COMMON_ATTRIBUTES + ["cite"],
}

# href/src (and cite/background) may use only these. data: is refused even for
# images: most clients block it, and it is a favourite way to smuggle content.
PROTOCOLS = frozenset(("http", "https", "mailto", "tel", "cid"))

CSS_PROPERTIES = frozenset((
    "background-color", "border", "border-bottom", "border-bottom-color", "border-bottom-left-radius",
    "border-bottom-right-radius", "border-bottom-style", "border-bottom-width", "border-collapse",
    "border-color", "border-left", "border-left-color", "border-left-style", "border-left-width",
    "border-radius", "border-right", "border-right-color", "border-right-style", "border-right-width",
    "border-spacing", "border-style", "border-top", "border-top-color", "border-top-left-radius",
    "border-top-right-radius", "border-top-style", "border-top-width", "border-width", "box-sizing",
    "caption-side", "clear", "color", "direction", "display", "float", "font", "font-family", "font-size",
    "font-style", "font-variant", "font-weight", "height", "letter-spacing", "line-height", "list-style",
    "list-style-position", "list-style-type", "margin", "margin-bottom", "margin-left", "margin-right",
    "margin-top", "max-height", "max-width", "min-height", "min-width", "mso-hide", "mso-line-height-rule",
    "mso-table-lspace", "mso-table-rspace", "opacity", "overflow", "padding", "padding-bottom",
    "padding-left", "padding-right", "padding-top", "table-layout", "text-align", "text-decoration",
    "text-indent", "text-transform", "vertical-align", "visibility", "white-space", "width", "word-break",
    "word-spacing", "word-wrap", "overflow-wrap", "background",
))

# Anything in a CSS value that can fetch or execute: url() loads remote content
# (and javascript: in old engines), expression() and behavior run script in IE,
# -moz-binding in old Firefox; escapes could spell any of them.
_CSS_DANGER = re.compile(r"url\s*\(|expression|javascript|vbscript|behavior|behaviour|-moz-binding|@import|\\",
                         re.IGNORECASE)


class EmailCSSSanitizer(CSSSanitizer):
    """bleach's CSS sanitizer checks property names only; this one also rejects dangerous values."""

    def __init__(self):
        super().__init__(allowed_css_properties=CSS_PROPERTIES, allowed_svg_properties=frozenset())

    def sanitize_css(self, style):
        return self._sanitize_css(style)

    # One answer per distinct style: an email repeats the same few style attributes (a block email
    # its blocks' styles) and tinycss2's parse is a third of a clean's time. Bounded; thread-safe.
    @functools.lru_cache(maxsize=4096)
    def _sanitize_css(self, style):
        cleaned = super().sanitize_css(style)
        if not cleaned or not _CSS_DANGER.search(cleaned):
            return cleaned
        kept = [part for part in cleaned.split(";") if part.strip() and not _CSS_DANGER.search(part)]
        # Splitting on ";" is safe here: a ";" inside a quoted value would only
        # break a declaration in two, and each half is checked on its own.
        return "; ".join(part.strip() for part in kept) + (";" if kept else "")


# One Cleaner per thread: a Cleaner's HTML parser keeps its state on the instance (bleach says so: "not
# thread-safe"), and two threads of a gunicorn worker or a huey consumer cleaning at once mangled each other's
# output (a test send beside a live preview lost a Jinja comment).
_cleaners = threading.local()


def _cleaner():
    cleaner = getattr(_cleaners, "cleaner", None)
    if cleaner is None:
        cleaner = _cleaners.cleaner = bleach.Cleaner(tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS,
                                                     strip=True, strip_comments=False,
                                                     css_sanitizer=EmailCSSSanitizer())
    return cleaner

# Elements whose *content* must go too (bleach strip=True keeps the text of a
# removed element, which for a script is its source code).
_DROP_WITH_CONTENT = re.compile(
    r"<(script|style|title|head|iframe|object|embed|applet|svg|math|noscript|template|textarea|select|xml)\b"
    r"[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_DANGLING_OPENERS = re.compile(r"<(script|style|iframe|object|embed|svg|math|noscript|template)\b[^>]*>.*\Z",
                               re.IGNORECASE | re.DOTALL)

# Jinja constructs; a string containing "}}" inside {{ }} is not supported.
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Placeholders use private-use characters, which are removed from input first,
# so they cannot collide with anything a person typed.
PRIVATE_USE = re.compile("[\ue000-\ue00f]")
TEXT_SLOT = re.compile("\ue000(\\d+)\ue001")
_COMMENT_SLOT = re.compile("<!--\ue002(\\d+)\ue003-->")
_ANY_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# A Jinja opener in cleaned text that is not one of our placeholders, or a "{" just before one
# (restored, "{" + "{{ x }}" would read "{{{ x }}", a different construct from the one checked).
STRAY_OPENER = re.compile("\\{(?=[{%#]|<!--\ue002|\ue000)")
# Placeholders, and what changes where we are in the markup: a tag's start and end, quotes.
_MARKUP_STEP = re.compile("(<!--\ue002(\\d+)\ue003-->)|\ue000(\\d+)\ue001|<(?=[A-Za-z/!])|>|\"|'")


def _jinja_positions(source):
    """Each Jinja construct with whether it sits inside an HTML tag (between < and >)."""
    found = []
    in_tag = False
    quote = None
    position = 0
    for match in JINJA.finditer(source):
        for char_index in range(position, match.start()):
            char = source[char_index]
            if in_tag:
                if quote:
                    if char == quote:
                        quote = None
                elif char in "\"'":
                    quote = char
                elif char == ">":
                    in_tag = False
            elif char == "<" and char_index + 1 < len(source) and (source[char_index + 1].isalpha()
                                                                     or source[char_index + 1] in "/!"):
                in_tag = True
        position = match.end()
        found.append((match, in_tag))
    return found


def protect(source):
    """Replace Jinja constructs with placeholders bleach keeps in place.

    Inside a tag (attribute values) a construct becomes a run of private-use
    characters; elsewhere an HTML comment, which the HTML parser leaves where it
    is even between table rows (text there would be moved before the table).
    Returns (protected_html, constructs).
    """
    source = PRIVATE_USE.sub("", source)
    constructs = []
    parts = []
    position = 0
    for match, in_tag in _jinja_positions(source):
        parts.append(source[position:match.start()])
        index = len(constructs)
        constructs.append(match.group(0))
        parts.append(f"\ue000{index}\ue001" if in_tag else f"<!--\ue002{index}\ue003-->")
        position = match.end()
    parts.append(source[position:])
    return "".join(parts), constructs


def restore(html, constructs):
    html = _COMMENT_SLOT.sub(lambda m: constructs[int(m.group(1))], html)
    return TEXT_SLOT.sub(lambda m: constructs[int(m.group(1))], html)


def _bleach(html):
    html = _DROP_WITH_CONTENT.sub("", html)
    html = _DANGLING_OPENERS.sub("", html)
    cleaned = _cleaner().clean(html)
    # Comments were kept only so that our placeholders survive; drop every other
    # one (bleach escapes "<" in attribute values, so "<!--" only starts a real comment).
    cleaned = _ANY_COMMENT.sub(lambda m: m.group(0) if _COMMENT_SLOT.fullmatch(m.group(0)) else "", cleaned)
    # Placeholders hold every real construct; any other "{{", "{%" or "{#" is text (or bleach's
    # doing) and must stay text once Jinja reads the result. &#123; is "{" to every HTML reader.
    return STRAY_OPENER.sub("&#123;", cleaned)


_STYLE_VALUE = re.compile(r"""\sstyle=(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def style_slots(cleaned):
    """Indexes of the constructs that sit inside a style="…" attribute of cleaned HTML."""
    found = set()
    for match in _STYLE_VALUE.finditer(cleaned):
        value = match.group(1) if match.group(1) is not None else match.group(2)
        found.update(int(index) for index in TEXT_SLOT.findall(value))
    return found


def safe_css_value(value):
    """A value printed inside style="…": kept only if it cannot add a declaration or load anything.

    The CSS sanitiser checked the style with the variable's placeholder in it; the
    value arrives later, from a contact field, and must stay one plain value
    ("#b91c1c", "bold", "12px") rather than "red; background: url(https://…)".
    """
    text = str(value)
    if re.search(r"[;:{}<>\"'\\]", text) or _CSS_DANGER.search(text):
        return ""
    return value


def slot_places(cleaned):
    """(construct index, place) for each placeholder in cleaned HTML, in the order Jinja will read them.

    place is None between elements (text), else the offset where the enclosing
    attribute value starts (or the tag, for a placeholder outside any quotes): two
    constructs share a place only inside the same attribute value of the same tag.
    """
    found = []
    in_tag = False
    quote = None
    place = None
    for match in _MARKUP_STEP.finditer(cleaned):
        token = match.group(0)
        if match.group(1) or match.group(3):
            index = int(match.group(2) or match.group(3))
            found.append((index, place if in_tag else None))
        elif in_tag and quote:
            if token == quote:
                quote, place = None, match.start()  # after a value, still in the tag
        elif in_tag:
            if token in "\"'":
                quote, place = token, match.start()
            elif token == ">":
                in_tag = False
        elif token == "<":
            in_tag, place = True, match.start()
    return found


def protect_and_clean(source):
    """(cleaned_html_with_placeholders, constructs, lost) — lost lists the Jinja
    constructs that did not survive cleaning, in source order."""
    protected, constructs = protect(source.replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = _bleach(protected)
    kept = {int(i) for i in _COMMENT_SLOT.findall(cleaned)} | {int(i) for i in TEXT_SLOT.findall(cleaned)}
    lost = [constructs[i] for i in range(len(constructs)) if i not in kept]
    return cleaned, constructs, lost
