"""Rich text of a text block: paragraphs, line breaks, bold, italic, underline, links and lists, nothing else.

What the editor sends (contenteditable markup, pasted Word or web pages) is cut down to that subset on
the server: every other element is unwrapped (its text kept), every attribute but a link's href is
dropped, and a link keeps its href only for http, https, mailto or one merge tag. Merge tags in the text
({{ contact.first_name }}) survive as written; Jinja statements and comments ({% %}, {# #}) become text,
so a text block cannot add logic that cuts the email's markup apart.
"""
import functools
import re

import bleach

from app.content import sanitize
from app.content.sandbox import LINK_VARIABLES
from app.errors import Problem

TAGS = frozenset(("p", "br", "strong", "b", "em", "i", "u", "a", "ul", "ol", "li"))
LINK_SCHEMES = re.compile(r"(?:https?://[^/?#\s]|mailto:[^/\s])", re.IGNORECASE)
# One merge tag used as a whole link address: a variable, optionally dotted.
LINK_TAG = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*\}\}")
_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_COMMENT_SLOT = re.compile("<!--\ue002(\\d+)\ue003-->")
_ANY_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# Elements whose content is code or chrome, not text: dropped whole rather than unwrapped.
_DROP_WITH_CONTENT = re.compile(
    r"<(script|style|title|head|iframe|object|embed|applet|svg|math|noscript|template|textarea|select|xml)\b"
    r"[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCKISH = re.compile(r"</?(?:p|ul|ol|li)\b", re.IGNORECASE)


class RichTextProblem(Problem):
    pass


def clean_rich_text(html):
    """The allowed subset of `html`, with its merge tags intact."""
    return _clean(html or "")


@functools.lru_cache(maxsize=1024)  # every change to a document validates its unchanged text blocks again
def _clean(html):
    source = sanitize.PRIVATE_USE.sub("", html or "").replace("\r\n", "\n").replace("\r", "\n")
    source = _STATEMENT.sub(lambda m: m.group(0).replace("{", "&#123;"), source)
    protected, constructs = sanitize.protect(source)

    def keep_href(tag, name, value):
        if tag != "a" or name != "href":
            return False
        address = sanitize.restore(value, constructs).strip()
        if LINK_TAG.fullmatch(address):
            return address.strip("{} ") in LINK_VARIABLES  # a field's value could be a javascript: address
        outside = LINK_TAG.sub("", address)
        return bool(LINK_SCHEMES.match(address)) and not re.search(r"[\s\"'<>`\\{}]", outside)

    cleaner = bleach.Cleaner(tags=TAGS, attributes=keep_href, protocols=("http", "https", "mailto"), strip=True,
                             strip_comments=False)
    cleaned = cleaner.clean(_DROP_WITH_CONTENT.sub("", protected))
    cleaned = _ANY_COMMENT.sub(lambda m: m.group(0) if _COMMENT_SLOT.fullmatch(m.group(0)) else "", cleaned)
    cleaned = sanitize.STRAY_OPENER.sub("&#123;", cleaned)
    cleaned = re.sub(r"<a>(.*?)</a>", r"\1", cleaned, flags=re.DOTALL)  # a link whose address was refused
    cleaned = sanitize.restore(cleaned, constructs).strip()
    if cleaned and not _BLOCKISH.match(cleaned):
        cleaned = f"<p>{cleaned}</p>"
    return cleaned
