"""HTML to plain text: the text part of every email, and the text of HTML bounce reports.

One converter for both, so a paragraph, a list or a link reads the same wherever Loft turns
HTML into text.
"""
import re
from html.parser import HTMLParser

from app.content import sanitize

class _TextMaker(HTMLParser):
    """HTML to readable plain text: paragraphs, headings, lists, 'text (url)' links."""

    BLOCKS = frozenset(("p", "div", "table", "tr", "ul", "ol", "blockquote", "center", "address", "pre", "dl",
                        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "thead", "tbody", "tfoot", "caption", "dt", "dd"))
    SKIP = frozenset(("script", "style", "head", "title", "template", "noscript"))
    VOID = frozenset(("br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"))

    def __init__(self, keep_slots=False, drop_slots=()):
        super().__init__(convert_charrefs=True)
        self.keep_slots = keep_slots
        self.drop_slots = drop_slots
        self.out = []
        self.links = []  # stack of (href, index in out)
        self.lists = []  # stack of [kind, counter]
        self.headings = []  # stack of (tag, index in out)
        self.skip_depth = 0
        self.skip_tag = None
        self.pre = 0

    def _break(self, count):
        self.out.append("\n" * count)

    def handle_starttag(self, tag, attrs):
        if self.skip_depth:
            if tag == self.skip_tag:
                self.skip_depth += 1
            return
        attributes = dict(attrs)
        style = (attributes.get("style") or "").replace(" ", "").lower()
        if tag in self.SKIP or ("display:none" in style and tag not in self.VOID):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self.out.append("\n\n" + "-" * 40 + "\n\n")
        elif tag in ("ul", "ol"):
            self.lists.append([tag, 0])
            if len(self.lists) == 1:
                self._break(2)  # a nested list starts on its item's own new line
        elif tag == "li":
            indent = _INDENT * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] == "ol":
                self.lists[-1][1] += 1
                self.out.append(f"\n{indent}{self.lists[-1][1]}. ")
            else:
                self.out.append(f"\n{indent}- ")
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._break(2)
            self.headings.append((tag, len(self.out)))
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.out)))
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            if alt and self.links:
                self.out.append(alt)
        elif tag == "pre":
            self.pre += 1
            self._break(2)
        elif tag in self.BLOCKS:
            self._break(2 if tag in ("p", "table", "blockquote", "center", "address", "dl") else 1)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if self.skip_depth:
            if tag == self.skip_tag:
                self.skip_depth -= 1
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            text = _collapse("".join(self.out[start:])).strip()
            target = href.strip()
            lowered = target.lower()
            if target and not lowered.startswith("#"):
                shown = target[7:] if lowered.startswith("mailto:") else target
                if not text:
                    self.out.append(shown)
                elif text != shown and text != target:
                    self.out.append(f" ({shown})")
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self.headings:
            _tag, start = self.headings.pop()
            text = _collapse("".join(self.out[start:])).strip()
            del self.out[start:]
            # Markdown-style marks: readable, and right whatever length a personalised heading has.
            self.out.append("#" * min(int(tag[1]), 3) + " " + text if text else "")
            self._break(2)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            if not self.lists:
                self._break(2)
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
            self._break(2)
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in self.BLOCKS:
            self._break(2 if tag in ("p", "table", "blockquote", "center", "address", "dl") else 1)

    def handle_data(self, data):
        if self.skip_depth:
            return
        self.out.append(data if self.pre else _collapse(data))

    def handle_comment(self, data):
        if self.keep_slots and not self.skip_depth and re.fullmatch("\ue002\\d+\ue003", data):
            if int(data[1:-1]) not in self.drop_slots:
                self.out.append(data)

    def text(self):
        raw = "".join(self.out)
        lines = [line.strip().replace(_INDENT, "  ") for line in raw.split("\n")]
        text = "\n".join(lines)
        text = re.sub(r"\n{3,}", "\n\n", text)
        return text.strip("\n") + "\n"


_INDENT = "\x01"  # list indentation, kept apart from the whitespace that is trimmed


def _collapse(text):
    return re.sub(r"[ \t\r\n\f\u00a0]+", " ", text)


def html_to_text(markup):
    """A readable plain-text version of an HTML email."""
    maker = _TextMaker()
    maker.feed(markup or "")
    maker.close()
    return maker.text()


def text_template_source(cleaned_with_slots, constructs):
    """The plain-text Jinja template matching a cleaned HTML template (slots in place)."""
    comments = {index for index, construct in enumerate(constructs) if construct.startswith("{#")}
    maker = _TextMaker(keep_slots=True, drop_slots=comments)
    maker.feed(cleaned_with_slots)
    maker.close()
    text = maker.text()
    # Literal braces in the text must stay literal once Jinja reads it.
    text = re.sub("\\{(?=[{%#\ue000\ue002])", "{{ '{' }}", text)  # also just before a slot
    text = text.replace("\ue002", "\ue000").replace("\ue003", "\ue001")
    return sanitize.TEXT_SLOT.sub(lambda m: constructs[int(m.group(1))], text)
