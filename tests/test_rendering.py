"""Rendering: signed tokens, the email sanitiser, the Jinja sandbox and its caps,
Markdown, the plain-text part and previews."""
import os
import re
import time
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup

from app import tokens
from app.content import prepare
from app.content import sandbox
from app.content import sanitize
from app.content import sources
from app.content.fields import contact_fields
from app.content.sandbox import RenderError
from app.content.text import html_to_text
from app.tokens import Signer


def clean_html(markup):
    """What the sanitiser keeps of `markup`, its Jinja constructs put back as written."""
    cleaned, constructs, _lost = sanitize.protect_and_clean(markup)
    return sanitize.restore(cleaned, constructs)


def html(markup):
    return BeautifulSoup(markup, "html.parser")


# --- Tokens -----------------------------------------------------------------------------

def test_tokens_round_trip_and_are_compact():
    signer = Signer("secret")
    for ids in [(0,), (1,), (127,), (128,), (2_000_000,), (2 ** 40,), (5, 77, 123456)]:
        token = signer.sign("click", *ids)
        assert signer.verify("click", token) == ids
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(signer.sign("open", 1_999_999)) == 26
    assert signer.sign_one("view", 300) == signer.sign("view", 300)


def test_tokens_are_bound_to_purpose_and_secret():
    signer = Signer("secret")
    token = signer.sign("open", 42)
    for purpose in ("click", "unsubscribe", "view", "preferences", "header"):
        assert signer.verify(purpose, token) is None
    assert Signer("another secret").verify("open", token) is None
    assert signer.verify("no such purpose", token) is None
    with pytest.raises(ValueError):
        signer.sign("no such purpose", 1)
    with pytest.raises(ValueError):
        signer.sign("open", -1)


def test_tampered_and_garbage_tokens_are_refused():
    signer = Signer("secret")
    token = signer.sign("unsubscribe", 42)
    for position in range(len(token)):
        replacement = "A" if token[position] != "A" else "B"
        assert signer.verify("unsubscribe", token[:position] + replacement + token[position + 1:]) is None
    for garbage in ["", "x", "!!!!", token + "A", token[:-1], "=" * 30, "A" * 500, None, 42, "ä" * 26]:
        assert signer.verify("unsubscribe", garbage) is None


def test_module_functions_use_the_app_secret(app):
    with app.app_context():
        token = tokens.sign("view", 7)
        assert tokens.verify("view", token) == (7,)
        assert token == Signer("test-secret").sign("view", 7)


# --- Sanitiser --------------------------------------------------------------------------------

@pytest.mark.parametrize("dirty,gone", [
    ("<p>Hi</p><script>alert(1)</script>", ["script", "alert(1)"]),
    ('<img src="x.png" onerror="alert(1)"><p onclick="steal()">x</p>', ["onerror", "onclick", "steal"]),
    ('<a href="javascript:alert(1)">x</a><a href="JaVaScRiPt:alert(1)">y</a><a href=" java\tscript:alert(1)">z</a>',
     ["javascript", "JaVaScRiPt", "java"]),
    ('<a href="vbscript:msgbox">x</a><a href="data:text/html;base64,PHNjcmlwdD4=">y</a>', ["vbscript", "data:"]),
    ('<img src="data:image/png;base64,iVBOR">', ["data:"]),
    ("<style>p { width: expression(alert(1)) }</style><p>x</p>", ["<style", "expression"]),
    ('<p style="width: expression(alert(1)); color: red">x</p>', ["expression"]),
    ('<p style="background: url(javascript:alert(1))">x</p>', ["url(", "javascript"]),
    ('<p style="behavior: url(x.htc); -moz-binding: url(x.xml)">x</p>', ["behavior", "binding"]),
    ('<svg onload="alert(1)"><circle r="1"/></svg>', ["svg", "circle", "alert"]),
    ('<iframe src="https://evil.example"></iframe><object data="x"></object><embed src="y">', ["iframe", "object", "embed", "evil"]),
    ('<form action="https://evil.example"><input name="password"><button>Go</button></form>', ["<form", "<input", "<button", "evil"]),
    ("<!--[if mso]><script>alert(1)</script><![endif]--><p>x</p>", ["<!--", "alert"]),
    ('<meta http-equiv="refresh" content="0;url=https://evil.example"><base href="https://evil.example/">', ["meta", "base", "evil"]),
])
def test_sanitiser_removes_anything_that_runs(dirty, gone):
    cleaned = clean_html(dirty)
    for fragment in gone:
        assert fragment.lower() not in cleaned.lower(), (fragment, cleaned)


def test_sanitiser_gives_each_thread_the_same_result_as_one_thread_alone():
    """A web worker's threads clean at once (a test send beside a live preview): bleach's Cleaner keeps its
    parser's state on the instance, so a shared one mixed their documents up."""
    import threading
    bodies = [f"{{# note {i} #}}\n<table><tr><td>{{{{ contact.name }}}} {i}</td></tr></table>" + "<p>Lorem ipsum.</p>" * 40
              for i in range(8)]
    expected = [sanitize.protect_and_clean(body) for body in bodies]
    wrong = []
    start = threading.Barrier(len(bodies))

    def clean(i):
        start.wait()
        for _ in range(30):
            try:
                same = sanitize.protect_and_clean(bodies[i]) == expected[i]
            except Exception:  # a mixed-up parser may raise as well
                same = False
            if not same:
                wrong.append(i)
                return

    threads = [threading.Thread(target=clean, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_sanitiser_leaves_no_link_that_a_browser_would_run():
    cleaned = clean_html('<a href="JaVaScRiPt&colon;alert(1)">a</a><a href="&#106;avascript:alert(1)">b</a>'
                         '<a href="&#x6A;avascript&#x3A;alert(1)">c</a><img src="java&#09;script:alert(1)">')
    for element in html(cleaned).select("[href], [src]"):
        value = "".join((element.get("href") or element.get("src")).split()).lower()
        assert not value.startswith(("javascript:", "vbscript:", "data:")), cleaned


def test_sanitiser_keeps_email_markup_and_inline_styles():
    markup = ('<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" bgcolor="#ffffff">'
              '<tbody><tr><td align="center" valign="top" style="padding: 12px; color: #333333; font-family: Arial;">'
              '<h1 style="font-size: 24px;">Title</h1><center><font color="red">Old school</font></center>'
              '<a href="https://example.com/?a=1&amp;b=2" target="_blank" style="color: #1d4ed8;">Link</a>'
              '<a href="mailto:a@example.com">Mail</a><a href="tel:+15551234">Call</a>'
              '<img src="https://example.com/logo.png" alt="Logo" width="120" style="display: block; max-width: 100%;">'
              '<img src="cid:logo123" alt="Inline"><ul><li>One</li></ul><hr><br><strong>b</strong><em>i</em><u>u</u>'
              '</td></tr></tbody></table>')
    page = html(clean_html(markup))
    cell = page.select_one("td")
    assert cell["style"] == "padding: 12px; color: #333333; font-family: Arial;"
    assert cell["align"] == "center" and cell["valign"] == "top"
    assert page.select_one("table")["cellpadding"] == "0"
    assert page.select_one("a")["href"] == "https://example.com/?a=1&b=2"
    assert [a["href"] for a in page.select("a")][1:] == ["mailto:a@example.com", "tel:+15551234"]
    assert page.select_one("img")["style"] == "display: block; max-width: 100%;"
    assert page.select("img")[1]["src"] == "cid:logo123"
    assert page.select_one("font")["color"] == "red"
    for tag in ("h1", "center", "ul", "li", "hr", "br", "strong", "em", "u"):
        assert page.select_one(tag) is not None, tag


def test_sanitiser_keeps_jinja_exactly_where_it_was():
    markup = ('<table>{% if contact.vip %}<tr><td>VIP {{ contact.name }}</td></tr>{% endif %}'
              '<tr><td><a href="{{ unsubscribe_url }}" title="{{ contact.name|default(\'x\') }}">u</a></td></tr></table>'
              '<p style="color: {{ contact.colour }};">{# a note #}x &amp; y</p>')
    cleaned = clean_html(markup)
    # (html5lib adds the <tbody> a browser would; the condition still wraps the row.)
    assert re.search(r"\{% if contact.vip %\}(<tbody>)?<tr><td>VIP \{\{ contact.name \}\}</td></tr>\{% endif %\}", cleaned)
    assert '<a href="{{ unsubscribe_url }}" title="{{ contact.name|default(\'x\') }}">' in cleaned
    assert "{{ contact.colour }}" in cleaned and "{# a note #}" in cleaned
    assert clean_html(cleaned) == cleaned  # cleaning twice changes nothing


def test_unsafe_link_variables_are_refused_on_save():
    with pytest.raises(RenderError, match=r"Line 2: the address in href=\"\{\{ contact.website \}\}\""):
        prepare.clean_source('<p>Hi</p>\n<a href="{{ contact.website }}">site</a>', "html")
    with pytest.raises(RenderError, match="must start with https://"):
        prepare.clean_source('<img src="{{ contact.avatar }}">', "html")
    # Our own link variables, and variables after a fixed scheme and host, are fine.
    for fine in ['<a href="{{ unsubscribe_url }}">u</a>', '<a href="{{ webview_url }}">w</a>',
                 '<a href="https://example.com/p?e={{ contact.email|urlencode }}">p</a>',
                 '<a href="mailto:{{ contact.email }}">m</a>']:
        assert prepare.clean_source(fine, "html")


def test_jinja_that_cleaning_would_drop_is_refused_with_its_line():
    with pytest.raises(RenderError, match=r"Line 3: “\{\{ contact.name \}\}” is in a place"):
        prepare.clean_source("<p>a</p>\n<p>b</p>\n<script>{{ contact.name }}</script>", "html")
    with pytest.raises(RenderError, match="between the attributes of a tag"):
        prepare.clean_source('<td {% if contact.vip %}bgcolor="gold"{% endif %}>x</td>', "html")


def test_markdown_is_converted_then_cleaned():
    prepared = prepare.prepare("# Hi {{ contact.name }}\n\n[site](https://example.com) <script>x()</script>\n\n"
                               "<a href=\"javascript:alert(1)\">bad</a>", "markdown", "Subject")
    out = sandbox.render(prepared.html_template, {"contact": sandbox.Record({"name": "<Ann>"})})
    page = html(out)
    assert page.select_one("h1").text == "Hi <Ann>"
    assert page.select_one("a")["href"] == "https://example.com"
    assert "script" not in out and "javascript" not in out


# --- Sandbox ---------------------------------------------------------------------------------

CONTEXT = {"contact": sandbox.Record({"name": "Zoë <b>", "email": "z@example.org", "first_name": "Zoë",
                                      "plan": "Pro", "seats": 3, "vip": True})}


def render(source, context=CONTEXT):
    template, _names = sandbox.compile_template(source, True)
    return sandbox.render(template, context)


@pytest.mark.parametrize("source", [
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{{ [0] * 10**9 }}",
    "{{ 2 ** 10000000 }}",
    "{{ 9 ** 999999 }}",
    "{{ (10**1000) * (10**1000) }}",
    "{% set a = 'x' * 90000 %}{% set b = a ~ a %}{{ b }}",
    "{% set a = 'x' * 90000 %}{{ a + a }}",
    "{{ ('x' * 50000)|replace('x', 'xxxxx') }}",
    "{{ ('x' * 50000).replace('x', 'xxxxx') }}",
    "{{ ('x' * 9000)|list|join('y' * 100) }}",
    "{{ '%1000000000s' % 'x' }}",
    "{{ '%*s' % (10**9, 'x') }}",
    "{% set a = 'x' * 90000 %}" + "{{ a }}" * 12,
    "{% set a = 'x' * 90000 %}" + "".join("{%% set b%d = a + '%d' %%}" % (i, i) for i in range(50)),
])
def test_oversized_output_fails_cleanly_and_fast(source):
    started = time.process_time()
    with pytest.raises(RenderError, match="longer than|too large|more than|widths"):
        render(source)
    assert time.process_time() - started < 5  # a clean refusal, not a gigabyte allocated first


@pytest.mark.parametrize("source,message", [
    ("{% for i in range(10) %}x{% endfor %}", "loops"),
    ("{% macro m() %}x{% endmacro %}{{ m() }}", "macros"),
    ("{% set x %}a{% endset %}", "endset"),
    ("{% filter upper %}a{% endfilter %}", "filter"),
    ("{% include 'x.html' %}", "includes"),
    ("{% extends 'x.html' %}", "inheritance"),
    ("{% autoescape false %}{{ contact.name }}{% endautoescape %}", "autoescape"),
    ("{{ contact.name|safe }}", "No filter named 'safe'"),
    ("{{ 'x'|center(10**9) }}", "No filter named 'center'"),
    ("{{ 'x'|format(1) }}", "No filter named 'format'"),
    ("{{ 'x'.ljust(10**9) }}", "ljust"),
    ("{{ '{0:>999999999}'.format(1) }}", "format"),
    ("{{ contact.name.__class__.__mro__ }}", "unsafe"),
    ("{{ contact.name.__class__.__base__.__subclasses__() }}", "unsafe"),
    ("{{ range(10) }}", "undefined"),
    ("{{ lipsum() }}", "undefined"),
    ("{{ cycler(1) }}", "undefined"),
])
def test_sandbox_refuses_programs_and_escapes(source, message):
    with pytest.raises(RenderError, match=message):
        render(source)


def test_the_sandbox_sees_only_its_context(app):
    with app.test_request_context("/"):
        assert render("[{{ config }}{{ request }}{{ g }}{{ session }}{{ url_for }}{{ self._TemplateReference__context }}]") == "[]"
        assert render("{{ contact._data }}{{ contact.__dict__ }}{{ contact.items }}{{ contact.name.__class__ }}") == ""


def test_personalisation_features():
    assert render("Hi {{ contact.first_name or 'there' }}!") == "Hi Zoë!"
    assert render("{{ contact.name }}") == "Zoë &lt;b&gt;"  # contact data is always escaped
    assert render("{% if contact.vip %}VIP{% else %}-{% endif %} {{ contact.seats + 1 }}") == "VIP 4"
    assert render("{{ contact.plan|upper }} {{ contact.name.split()[0]|lower }} {{ contact.missing }}.") == "PRO zoë ."
    assert render("{{ contact.email|urlencode }} {{ contact['plan'] }} {{ [1, 2]|join(', ') }}") == \
        "z%40example.org Pro 1, 2"
    assert render("{% set greeting = 'Dear ' ~ contact.first_name %}{{ greeting }}") == "Dear Zoë"


def test_syntax_errors_point_at_the_line():
    with pytest.raises(RenderError, match=r"^Line 3: unexpected '}'"):
        prepare.clean_source("<p>one</p>\n<p>two</p>\n<p>{{ contact.name }</p>", "html")
    with pytest.raises(RenderError, match=r"^Line 2: .*Encountered unknown tag 'endfor'"):
        prepare.clean_source("ok\n{% endfor %}", "markdown")
    with pytest.raises(RenderError, match=r"^Line 2: there is no variable called 'contatc'"):
        prepare.clean_source("<p>Hi</p>\n<p>{{ contatc.name }}</p>", "html")


def test_runtime_errors_point_at_the_line():
    with pytest.raises(RenderError, match=r"^Line 3: ZeroDivisionError"):
        render("a\nb\n{{ 1 / 0 }}")


def test_typed_custom_fields():
    contact = SimpleNamespace(email="t@example.org", name="Tim  Berners Lee",
                              attributes={"n": "12", "f": 1.5, "d": "2024-02-29", "b": "yes", "t": "x\r\ny", "bad": "zz"})
    fields = contact_fields(contact, {"n": "number", "f": "number", "d": "date", "b": "boolean", "t": "text",
                                      "bad": "number", "absent": "text", "email": "text"})
    assert fields["n"] == 12 and fields["f"] == 1.5 and fields["b"] is True and fields["t"] == "x\ny"
    assert fields["d"].year == 2024 and fields["bad"] is None and fields["absent"] is None
    assert fields["email"] == "t@example.org"  # a custom field can never shadow the real address
    assert (fields["first_name"], fields["last_name"]) == ("Tim", "Berners Lee")
    context = {"contact": sandbox.Record(fields)}
    assert render("{{ contact.d.strftime('%d %B %Y') }}", context) == "29 February 2024"


# --- Plain text ---------------------------------------------------------------------------

def test_html_to_text():
    text = html_to_text(
        "<div style=\"display:none\">hidden preheader</div><h1>Big news</h1><h2>Sub</h2>"
        "<p>First   paragraph\nwith <a href='https://example.com/a'>a link</a> and "
        "<a href='https://example.com/b'>https://example.com/b</a>.</p>"
        "<ul><li>one</li><li>two<ol><li>inner</li></ol></li></ul><p>Tom &amp; Jerry<br>next line</p>"
        "<table><tr><td>cell 1</td><td>cell 2</td></tr></table><a href='mailto:x@example.com'>x@example.com</a>"
        "<a href='#top'>Top</a><style>p{}</style><script>alert(1)</script><img src='x' alt='logo'>")
    assert text == ("# Big news\n\n## Sub\n\nFirst paragraph with a link (https://example.com/a) and "
                    "https://example.com/b.\n\n- one\n- two\n  1. inner\n\nTom & Jerry\nnext line\n\n"
                    "cell 1 cell 2\n\nx@example.comTop\n")


# --- Preview ---------------------------------------------------------------------------------

def test_built_in_layouts_are_the_files_offered_to_teams_read_again_when_one_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "LAYOUTS_DIR", tmp_path)
    (tmp_path / "_frame.html").write_text("{{ content }}", encoding="utf-8")  # Loft's own part: not offered
    (tmp_path / "news.html").write_text("<p>one</p>", encoding="utf-8")
    (tmp_path / "letter.html").write_text("<p>dear</p>", encoding="utf-8")
    assert sources.builtin_layouts() == (("letter", "<p>dear</p>"), ("news", "<p>one</p>"))
    (tmp_path / "news.html").write_text("<p>two</p>", encoding="utf-8")
    os.utime(tmp_path / "news.html", ns=(1, 1))  # a change the next call must see, whatever the clock did
    assert sources.builtin_layouts() == (("letter", "<p>dear</p>"), ("news", "<p>two</p>"))
    assert sources.builtin_layout("_frame") == "{{ content }}"


def test_preview_of_a_built_in_layout(app):
    from app.email_templates import services
    with app.app_context():
        team = SimpleNamespace(id=1, name="Acme", postal_address="1 Main Street\nSpringfield")
        for layout in services.builtin_templates():
            contact = SimpleNamespace(email="ann@example.org", name="Ann Lee", attributes={})
            subject, markup, text = prepare.preview(layout, contact, team=team, custom_fields=[])
            page = html(markup)
            assert "Hi Ann" in page.text, layout.key
            assert "1 Main Street, Springfield" in page.text, layout.key
            unsubscribe = [a for a in page.select("a") if "Unsubscribe" in a.text]
            assert unsubscribe and unsubscribe[0]["href"] == "http://loft.test/u/preview"
            assert "Hi Ann" in text and "Unsubscribe (http://loft.test/u/preview)" in text
            assert page.select_one("meta[name=viewport]") is not None
            assert page.select_one("script") is None
