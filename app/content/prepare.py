"""A body made ready to send: composed with its layout, cleaned, checked, link-rewritten and compiled.

clean_source() checks a body when it is saved; prepare() runs the same checks on every render
(send, web view, preview), so bodies stored before a check existed get it too, and compiles the
HTML, plain-text and subject templates once for many recipients. preview() shows a campaign or
template as one contact would receive it.
"""
import html
import re

import markdown as markdown_lib
from markupsafe import escape as html_escape

from app import settings as instance_settings
from app.content import sanitize
from app.content import utm
from app.content.blocks.render import EMAIL_HEAD as BLOCKS_SHELL_TOP
from app.content.blocks.render import finish_mso
from app.content.fields import base_context
from app.content.fields import contact_context
from app.content.fields import one_line
from app.content.fields import preview_links
from app.content.fields import sample_contact
from app.content.media_urls import absolute_media_urls
from app.content.sandbox import CLICK_TOKEN
from app.content.sandbox import CSS_FILTER
from app.content.sandbox import LINK_VARIABLES
from app.content.sandbox import MAX_SOURCE
from app.content.sandbox import MAX_SUBJECT
from app.content.sandbox import OPEN_TOKEN
from app.content.sandbox import TRACKING_NAMES
from app.content.sandbox import RenderError
from app.content.sandbox import compile_template
from app.content.sandbox import render
from app.content.sources import KINDS
from app.content.sources import LAYOUT_SLOT
from app.content.sources import builtin_layout
from app.content.sources import source_of
from app.content.text import text_template_source
from app.models import CustomField

_MD_SLOT = re.compile("\ue004(\\d+)\ue005")

MARKDOWN_STYLES = {
    "p": "margin:0 0 16px;",
    "h1": "margin:0 0 16px;font-size:26px;line-height:32px;font-weight:bold;color:#111827;",
    "h2": "margin:24px 0 12px;font-size:20px;line-height:28px;font-weight:bold;color:#111827;",
    "h3": "margin:20px 0 8px;font-size:17px;line-height:24px;font-weight:bold;color:#111827;",
    "ul": "margin:0 0 16px;padding-left:24px;",
    "ol": "margin:0 0 16px;padding-left:24px;",
    "li": "margin:0 0 6px;",
    "blockquote": "margin:0 0 16px;padding:4px 16px;border-left:4px solid #d1d5db;color:#4b5563;",
    "pre": "margin:0 0 16px;padding:12px;background-color:#f3f4f6;border-radius:6px;white-space:pre-wrap;",
    "code": "font-family:Menlo,Consolas,monospace;font-size:14px;",
    "hr": "border:0;border-top:1px solid #e5e7eb;margin:24px 0;",
    "table": "border-collapse:collapse;margin:0 0 16px;",
    "th": "border:1px solid #e5e7eb;padding:6px 10px;text-align:left;",
    "td": "border:1px solid #e5e7eb;padding:6px 10px;",
}
_BARE_TAG = re.compile(r"<(%s)>" % "|".join(MARKDOWN_STYLES))


def markdown_to_html(source):
    """Markdown (with Jinja left intact) to HTML with inline styles, not yet cleaned."""
    constructs = []

    def hide(match):
        constructs.append(match.group(0))
        return f"\ue004{len(constructs) - 1}\ue005"

    protected = sanitize.JINJA.sub(hide, sanitize.PRIVATE_USE.sub("", source))
    converted = markdown_lib.markdown(protected, extensions=["tables", "fenced_code", "sane_lists"],
                                      output_format="html")
    converted = _BARE_TAG.sub(lambda m: f'<{m.group(1)} style="{MARKDOWN_STYLES[m.group(1)]}">', converted)
    converted = re.sub(r"<a (?![^>]*style=)", '<a style="color:#4338ca;text-decoration:underline;" ', converted)
    converted = re.sub(r"<img (?![^>]*style=)", '<img style="max-width:100%;height:auto;border:0;" ', converted)
    return _MD_SLOT.sub(lambda m: constructs[int(m.group(1))], converted)


# bleach always quotes attribute values, with ' when the value contains ".
_URL_ATTRIBUTE = re.compile(r"""\s(href|src|background|cite)=(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_SAFE_URL_START = re.compile(r"^\s*(https?://|mailto:|tel:|#)", re.IGNORECASE)
_LINK_VARIABLE = re.compile(r"^\{\{-?\s*(%s)\s*-?\}\}$" % "|".join(LINK_VARIABLES))


def check_link_addresses(cleaned, constructs, lines=None):
    """Refuse a link address that a variable could turn into something other than a web or mail link."""
    for match in _URL_ATTRIBUTE.finditer(cleaned):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        slot = sanitize.TEXT_SLOT.search(value)
        if not slot:
            continue
        prefix = html.unescape(value[:slot.start()])
        construct = constructs[int(slot.group(1))]
        if prefix.strip() == "" and _LINK_VARIABLE.match(construct.strip()):
            continue
        if prefix.strip() and _SAFE_URL_START.match(prefix):
            continue
        line = lines[int(slot.group(1))] if lines else None
        raise RenderError(f"the address in {match.group(1)}=\"{sanitize.restore(value, constructs)}\" must start with "
                          "https://, mailto: or tel: (or be exactly {{ unsubscribe_url }}, {{ preferences_url }} "
                          "or {{ webview_url }}), so that no field value can turn it into a script.", line)


_EXPRESSION = re.compile(r"^\{\{(-?)(.*?)(-?)\}\}$", re.DOTALL)


def guard_style_values(cleaned, constructs):
    """Pass every {{ value }} printed inside a style attribute through sanitize.safe_css_value.

    Autoescaping keeps a contact's value inside the attribute, but not inside one CSS
    declaration: style="color: {{ contact.colour }}" with "red; background: url(…)"
    would add a declaration the CSS sanitiser never saw."""
    for index in sanitize.style_slots(cleaned):
        match = _EXPRESSION.match(constructs[index])
        if match:
            constructs[index] = "{{%s (%s)|%s %s}}" % (match.group(1), match.group(2), CSS_FILTER, match.group(3))


_BLOCK_TAG = re.compile(r"\{%[-+]?\s*(\w+)")
# Tags that open a block closed by an {% end… %} (the sandbox refuses all but if and with,
# but the places of any of them are checked the same way).
_BLOCK_OPENERS = frozenset(("if", "with", "for", "macro", "call", "filter", "block", "autoescape", "trans"))


def check_constructs(cleaned, constructs, lines=None):
    """Refuse Jinja that would print something the sanitiser did not see.

    {% raw %} prints its content as written, but the sanitiser saw that content as
    Jinja and left it alone: `{% raw %}{{ '<script>…' }}{% endraw %}` reached the
    inbox. And a condition whose parts sit in different places of the markup can
    cut a tag in two: `<a href="https://x/{% if 0 %}">…{% endif %}" onmouseover="…`
    prints an attribute the sanitiser only saw as text. Everything else Jinja
    prints is either approved markup or an autoescaped value.
    """
    stack = []
    for index, place in sanitize.slot_places(cleaned):
        construct = constructs[index]
        match = _BLOCK_TAG.match(construct)
        if not match:
            continue
        word = match.group(1)
        line = lines[index] if lines else None
        if word in ("raw", "endraw"):
            raise RenderError("{% raw %} cannot be used in email templates: what it shows would not be checked "
                              "like the rest of the email. To show {{ as text, write {{ '{{' }}.", line)
        if word in _BLOCK_OPENERS:
            stack.append((word, place, construct))
        elif stack and (word in ("elif", "else") or word.startswith("end")):
            opener, opened_at, first = stack[-1]
            if place != opened_at:
                raise RenderError(f"“{construct}” and the “{first}” it belongs to are in different places of the "
                                  f"HTML (inside and outside a tag, or in two attributes). Put the whole "
                                  f"{{% {opener} %}} … {{% end{opener} %}} around whole elements, or inside "
                                  "one attribute value.", line)
            if word.startswith("end"):
                stack.pop()


def check_unclosed(content):
    """Report an opener with no closer ("{{ contact.name </p>") as Jinja's syntax error, with its line.

    The sanitiser turns such a stray "{{" into text (see sanitize.STRAY_OPENER), which
    would silently print it; saving already compiles the text as written, and this
    does the same for bodies stored before, or composed with a layout."""
    if sanitize.STRAY_OPENER.search(sanitize.JINJA.sub("", content)):
        compile_template(content, True, extra_names=("content", *TRACKING_NAMES))


def _construct_lines(source):
    return [source.count("\n", 0, match.start()) + 1 for match in sanitize.JINJA.finditer(source)]


def clean_source(source, kind):
    """Check and clean a body before it is saved; returns what to store.

    HTML is cleaned (bleach) and returned; Markdown is stored as written and
    cleaned after conversion each time it is rendered. Raises RenderError for
    Jinja syntax errors, things the sandbox does not offer, unknown
    variables, unsafe link addresses, and Jinja that cleaning would remove.
    """
    if kind not in KINDS:
        raise RenderError("Choose HTML or Markdown.")
    source = (source or "").replace("\r\n", "\n").replace("\r", "\n")
    # Syntax first, on the text as written, so line numbers match the editor.
    compile_template(source, autoescape=True, extra_names=("content",), strict_names=True)
    html_source = markdown_to_html(source) if kind == "markdown" else source
    protected_source = sanitize.PRIVATE_USE.sub("", html_source)
    cleaned, constructs, lost = sanitize.protect_and_clean(protected_source)
    lines = _construct_lines(protected_source)
    if lost:
        index = next(i for i, construct in enumerate(constructs) if construct == lost[0])
        raise RenderError(f"“{lost[0]}” is in a place email HTML cannot keep (inside a removed element such as "
                          "<script> or <style>, or between the attributes of a tag). Move it into the text or "
                          "into an attribute value.", lines[index] if kind == "html" else None)
    check_link_addresses(cleaned, constructs, lines if kind == "html" else None)
    check_constructs(cleaned, constructs, lines if kind == "html" else None)
    result = sanitize.restore(cleaned, constructs)
    compile_template(result, autoescape=True, extra_names=("content",))
    return source if kind == "markdown" else result


SHELL_TOP = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<meta name="color-scheme" content="light">
<title></title>
</head>
<body style="margin:0;padding:0;width:100%;-webkit-text-size-adjust:100%;">
"""
SHELL_BOTTOM = "</body>\n</html>\n"
PREHEADER = ('<div style="display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;mso-hide:all;'
             'font-size:1px;line-height:1px;color:transparent;">{text}</div>\n')
FOOTER = ('<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">'
          '<tr><td align="center" style="padding:24px 16px;font-family:Arial,Helvetica,sans-serif;font-size:12px;'
          'line-height:18px;color:#6b7280;">{parts}</td></tr></table>\n')


def _uses(constructs, name):
    pattern = re.compile(r"\b%s\b" % name)
    return any(pattern.search(construct) for construct in constructs)


class Prepared:
    """A body made ready to render many times: compiled HTML, text and subject templates.

    Built once per campaign (or preview); rendering is then a Jinja generate()
    per recipient with a small context.
    """

    def __init__(self, html_template, html_names, text_template, text_names, subject_template, subject_names,
                 links, html_source, text_source):
        self.html_template = html_template
        self.text_template = text_template
        self.subject_template = subject_template
        self.names = frozenset(html_names) | frozenset(text_names) | frozenset(subject_names)
        self.html_names = frozenset(html_names)
        self.subject_names = frozenset(subject_names)
        self.links = links
        self.html_source = html_source
        self.text_source = text_source

    @property
    def personal(self):
        return "contact" in self.names


def prepare(body, kind, subject, *, layout=None, preheader="", track_opens=False, track_clicks=False,
            base_url="", link_id=None, utm_settings=None, marketing_footer=True):
    """Compose, clean, link-rewrite and compile a body into a Prepared.

    layout: HTML source containing {{ content }}, wrapped around the body; a
    Markdown body without one gets the built-in Markdown layout.
    link_id(url) -> int registers a tracked link (only called with track_clicks).
    utm_settings: a campaign's Campaign.utm; its parameters are added to the web links
    (app/content/utm.py) whether clicks are tracked or not.
    marketing_footer=False leaves out the postal address and unsubscribe link a campaign must carry: a transactional
    message (a receipt) is no marketing and has nothing to unsubscribe from.
    """
    if kind not in KINDS:
        raise RenderError("Choose HTML or Markdown.")
    body = (body or "").replace("\r\n", "\n").replace("\r", "\n")
    content = markdown_to_html(body) if kind == "markdown" else body
    if layout is None and kind == "markdown":
        layout = builtin_layout("_markdown_layout")
    if layout:
        layout = layout.replace("\r\n", "\n").replace("\r", "\n")
        if LAYOUT_SLOT.search(layout):
            content = LAYOUT_SLOT.sub(lambda _m: content, layout, count=1)
    if len(content) > MAX_SOURCE:
        raise RenderError(f"This email is too long ({len(content):,} characters; at most {MAX_SOURCE:,}).")

    check_unclosed(content)
    cleaned, constructs, lost = sanitize.protect_and_clean(content)
    if lost:
        raise RenderError(f"“{lost[0]}” is in a place email HTML cannot keep; edit the body and save it again.")
    check_link_addresses(cleaned, constructs)
    check_constructs(cleaned, constructs)  # also for bodies stored before these checks existed
    guard_style_values(cleaned, constructs)

    footer = []
    if marketing_footer and not _uses(constructs, "postal_address"):
        footer.append(_slot(constructs, "{{ postal_address }}", in_tag=False))
    if marketing_footer and not _uses(constructs, "unsubscribe_url"):
        footer.append(f'<a href="{_slot(constructs, "{{ unsubscribe_url }}", in_tag=True)}" '
                      'style="color:#6b7280;text-decoration:underline;">Unsubscribe</a>')
    if footer:
        cleaned += "\n" + FOOTER.format(parts="<br>".join(footer))

    cleaned = absolute_media_urls(cleaned, base_url)  # before links are tagged and tracked
    if utm.active(utm_settings):
        cleaned = _tag_links(cleaned, utm_settings, base_url)
    links = []
    if track_clicks and link_id is not None:
        cleaned = _rewrite_links(cleaned, constructs, base_url, link_id, links)

    text_source = text_template_source(cleaned, constructs)
    body_html = sanitize.restore(cleaned, constructs)
    if kind == "blocks":
        body_html = finish_mso(body_html)  # Outlook's ghost tables: fixed text, added after cleaning
    preheader_html = ""
    if preheader:
        safe = str(html_escape(one_line(preheader))).replace("{", "&#123;")
        preheader_html = PREHEADER.format(text=safe + "&#847;&zwnj;&nbsp;" * 20)
    pixel = ""
    if track_opens:
        pixel = (f'<img src="{base_url}/o/{{{{ {OPEN_TOKEN} }}}}.gif" width="1" height="1" alt="" '
                 'style="display:block;border:0;width:1px;height:1px;">\n')
    shell_top = BLOCKS_SHELL_TOP if kind == "blocks" else SHELL_TOP
    html_source = shell_top + preheader_html + body_html.rstrip("\n") + "\n" + pixel + SHELL_BOTTOM

    internal = (OPEN_TOKEN, CLICK_TOKEN)
    html_template, html_names = compile_template(html_source, True, extra_names=internal)
    text_template, text_names = compile_template(text_source, False, extra_names=internal)
    subject = one_line(subject)[:MAX_SUBJECT]
    subject_template, subject_names = compile_template(subject, False)
    return Prepared(html_template, html_names, text_template, text_names, subject_template, subject_names, links,
                    html_source, text_source)


def _slot(constructs, construct, in_tag):
    constructs.append(construct)
    index = len(constructs) - 1
    return f"\ue000{index}\ue001" if in_tag else f"<!--\ue002{index}\ue003-->"


_LINK = re.compile(r"""(<a\s[^>]*?\bhref=)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def _tag_links(cleaned, utm_settings, base_url):
    """Add the campaign's utm_* parameters to every literal http(s) link (utm.tag says which)."""

    def tag(match):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if sanitize.TEXT_SLOT.search(value):
            return match.group(0)  # personalised or one of our own links: left alone
        url = html.unescape(value).strip()
        tagged = utm.tag(url, utm_settings, base_url)
        if tagged == url:
            return match.group(0)
        return f'{match.group(1)}"{html.escape(tagged, quote=True)}"'

    return _LINK.sub(tag, cleaned)


def _rewrite_links(cleaned, constructs, base_url, link_id, links):
    """Point every literal http(s) link at the click redirect; the target stays server-side."""
    click_slot = None

    def rewrite(match):
        nonlocal click_slot
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if sanitize.TEXT_SLOT.search(value):
            return match.group(0)  # personalised or one of our own links: left alone
        url = html.unescape(value).strip()
        if not re.match(r"https?://", url, re.IGNORECASE):
            return match.group(0)  # mailto:, tel:, #anchors
        identifier = link_id(url)
        if identifier is None:
            return match.group(0)
        if url not in links:
            links.append(url)
        if click_slot is None:
            click_slot = _slot(constructs, "{{ %s }}" % CLICK_TOKEN, in_tag=True)
        return f'{match.group(1)}"{base_url}/c/{click_slot}/{identifier}"'

    return _LINK.sub(rewrite, cleaned)


def preview(item, contact, *, team=None, custom_fields=None, base_url=None, variant=None):
    """(subject, html, text) of a campaign or template as `contact` would receive it (no tracking).

    Its links start with the same base URL as the mail sent (app.settings.base_url)."""
    source = source_of(item, variant)
    team = team if team is not None else getattr(item, "team", None)
    base_url = (base_url if base_url is not None else instance_settings.base_url()).rstrip("/")
    if custom_fields is None and team is not None:
        custom_fields = list(CustomField.select().where(CustomField.team == team))
    prepared = prepare(source.body, source.kind, source.subject, layout=source.layout, preheader=source.preheader,
                       base_url=base_url, utm_settings=source.utm)
    from_name = source.from_name if source.from_name is not None else getattr(item, "from_name", "")
    context = base_context(team, base_url, source.subject, from_name, getattr(item, "from_email", ""))
    context.update(preview_links(base_url))
    context.update(contact_context(contact or sample_contact(), custom_fields or []))
    subject = one_line(render(prepared.subject_template, context, MAX_SUBJECT * 4))[:MAX_SUBJECT]
    return subject, render(prepared.html_template, context), render(prepared.text_template, context)
