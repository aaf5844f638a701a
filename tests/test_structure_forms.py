"""Forms have one home: templates/_macros.html. Checked like behaviour, so a hand-written form cannot come back.

- Every POST form is written `{% call form_to(url, target=..., ...) %}`: the URL once (action, and
  hx-post when htmx swaps the answer in) and the CSRF token always, so no form can forget it.
  Two kinds of <form> stay written by hand:
  - GET forms (search boxes, "preview as"): they change nothing and carry no token, and their
    hx-get is usually a fragment URL different from the page in `action`;
  - consent/_embed_snippet.html and consent/_built_snippet.html: the markup a list owner copies onto
    their own website (a list's form, a built form), shown as text on Loft's page; it posts to an
    absolute URL from a page that has no Loft session.
- No CSRF input is written by hand (form_to writes it).
- No template defines its own copy of the form-field macro (field() in _macros.html is the one).
And the two macros themselves: what form_to and field() render.
"""
import re

from flask import render_template_string

from app.config import ROOT

HOME = ROOT / "templates" / "_macros.html"
SNIPPETS = (ROOT / "templates" / "consent" / "_embed_snippet.html", ROOT / "templates" / "consent" / "_built_snippet.html")
FORM_TAG = re.compile(r"<form\b[^>]*>", re.I)
GET_FORM = re.compile(r"""\bmethod\s*=\s*["']?get\b""", re.I)
CSRF_INPUT = re.compile(r"""name\s*=\s*["']csrf_token["']""", re.I)
FIELD_MACRO = re.compile(r"\{%-?\s*macro\s+(field|input|select|textarea)\s*\(")


def template_files():
    return sorted(path for path in (ROOT / "templates").rglob("*.html") if path != HOME and path not in SNIPPETS)


def rel(path):
    return str(path.relative_to(ROOT))


def line_of(source, offset):
    return source.count("\n", 0, offset) + 1


def hand_written_forms(source):
    """(line, tag) of every POST <form> written by hand (a GET form may be)."""
    return [(line_of(source, match.start()), match.group(0)[:60]) for match in FORM_TAG.finditer(source)
            if not GET_FORM.search(match.group(0))]


def hand_written_tokens(source):
    return [(line_of(source, match.start()), match.group(0)) for match in CSRF_INPUT.finditer(source)]


def field_macro_copies(source):
    return [(line_of(source, match.start()), match.group(1)) for match in FIELD_MACRO.finditer(source)]


def test_every_post_form_is_written_with_form_to():
    found = []
    for path in template_files():
        source = path.read_text(encoding="utf-8")
        found += [f"{rel(path)}:{line} {what}" for line, what in hand_written_forms(source)]
        found += [f"{rel(path)}:{line} {what}" for line, what in hand_written_tokens(source)]
    assert found == [], "write the form as {% call form_to(url, target=...) %}...{% endcall %} (templates/_macros.html)"


def test_no_template_has_its_own_field_macro():
    found = []
    for path in template_files():
        found += [f"{rel(path)}:{line} macro {name}" for line, name in field_macro_copies(path.read_text("utf-8"))]
    assert found == [], "use field() from templates/_macros.html"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the checks cannot pass by finding nothing."""
    assert [tag for _, tag in hand_written_forms('<p>\n<form method="post" action="/x">')] == \
        ['<form method="post" action="/x">']
    assert hand_written_forms('<form\n  class="inline" action="/x">')[0][0] == 1
    assert hand_written_forms('<form action="/x">') != []  # no method is a POST to the checker too
    assert hand_written_forms('<form method="get" action="/search" role="search">') == []
    assert hand_written_forms("{% call form_to(url_for('x'), target='#y') %}<button>Go</button>{% endcall %}") == []
    assert hand_written_tokens('<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">') != []
    assert hand_written_tokens('<body hx-headers=\'{"X-CSRF-Token": "{{ csrf_token() }}"}\'>') == []
    assert [name for _, name in field_macro_copies('{% macro input(name, label) -%}')] == ["input"]
    assert field_macro_copies('{% macro chart_table(caption) -%}') == []


RENDER = '{% from "_macros.html" import form_to, field %}'


def render(app, source):
    with app.test_request_context("/"):  # csrf_token() keeps its token in the session
        return render_template_string(RENDER + source)


def test_form_to_writes_the_url_once_and_the_token_always(app):
    html = render(app, "{% call form_to('/teams/invite', target='#members', confirm='Sure?', "
                       "id='invite', novalidate=True) %}<button>Invite</button>{% endcall %}")
    assert 'action="/teams/invite"' in html and 'hx-post="/teams/invite"' in html
    assert 'hx-target="#members" hx-swap="outerHTML"' in html and 'hx-confirm="Sure?"' in html
    assert 'id="invite"' in html and " novalidate" in html and "<button>Invite</button></form>" in html
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', html)
    plain = render(app, "{% call form_to('/x') %}{% endcall %}")
    assert "hx-post" not in plain and 'name="csrf_token"' in plain
    public = render(app, "{% call form_to('/x', public=True) %}{% endcall %}")
    assert "csrf_token" not in public


def test_field_ties_the_help_and_the_error_to_the_input(app):
    html = render(app, "{{ field('attr.seats', 'Seats', {'attr.seats': 'x'}, {'attr.seats': 'Bad'},"
                       " help='A number.') }}")
    assert '<label for="f-attr-seats">Seats</label>' in html and 'value="x"' in html
    assert 'aria-invalid="true" aria-describedby="e-attr-seats h-attr-seats"' in html
    assert re.search(r'<p class="error" id="e-attr-seats"><svg [^>]*aria-hidden="true".*?</svg><span>Bad</span></p>', html)
    assert '<p class="help" id="h-attr-seats">' in html
    password = render(app, "{{ field('password', 'Password', {'password': 'secret'}, type='password') }}")
    assert "secret" not in password and "aria-invalid" not in password
    select = render(app, "{{ field('role', 'Role', {'role': 'admin'}, options=[('author', 'Author'),"
                       " ('admin', 'Admin')]) }}")
    assert '<option value="admin" selected>Admin</option>' in select and '<option value="author">' in select
    second = render(app, "{{ field('value', 'Check', errors={'value': 'No'}, id='check-value') }}")
    assert 'id="f-check-value" name="value"' in second and 'aria-describedby="e-check-value"' in second


def test_form_error_shows_the_message_once(app):
    at_field = render(app, "{% from '_macros.html' import form_error %}{{ form_error('Bad name', {'name': 'Bad name'}) }}")
    assert "flash" not in at_field  # shown at its field only
    whole = render(app, "{% from '_macros.html' import form_error %}{{ form_error('Try later', {}) }}")
    assert '<p class="flash flash-error" role="alert">Try later</p>' in whole
    both = render(app, "{% from '_macros.html' import form_error %}{{ form_error(errors={'': 'Busy', 'name': 'x'}) }}")
    assert ">Busy</p>" in both
