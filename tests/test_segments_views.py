"""The segments pages: the HTMX rule builder (add, change, remove without a reload), the live count,
saving, roles, another team's ids, and the same buttons working without JavaScript."""

import pytest

from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def acme(app, admin):
    """The admin's team with four contacts, a list and a number field."""
    team = Team.get(Team.name == "Acme")
    CustomField.create(team=team, key="plan", label="Plan", type="number")
    news = MailingList.create(team=team, name="News")
    for index, (email, status, plan) in enumerate([("ann@a.example", "active", 1), ("bob@b.example", "active", 7),
                                                   ("cat@a.example", "bounced", 9), ("dan@d.example", "active", None)]):
        attributes = {"plan": plan} if plan is not None else {}
        contact = Contact.create(team=team, email=email, domain=email.split("@")[1], status=status,
                                 attributes=attributes)
        if index < 3:
            Subscription.create(contact=contact, list=news)
    team.news = news
    return team


def form(name="Engaged", op="and", rules=(), **extra):
    """The builder form as a browser posts it: rules.<path>.<field|operator|value|was>."""
    data = {"name": name, "rules.op": op}
    for path, rule in rules:
        if rule.get("kind") == "group":
            data[f"rules.{path}.kind"] = "group"
            data[f"rules.{path}.op"] = rule.get("op", "and")
            continue
        data[f"rules.{path}.field"] = rule["field"]
        data[f"rules.{path}.was"] = rule.get("was", rule["field"])
        data[f"rules.{path}.was_operator"] = rule.get("was_operator", rule["operator"])
        data[f"rules.{path}.operator"] = rule["operator"]
        if "value" in rule:
            data[f"rules.{path}.value"] = rule["value"]
    data.update(extra)
    return data


def rule(field, operator, value=None, **extra):
    result = {"field": field, "operator": operator, **extra}
    if value is not None:
        result["value"] = value
    return result


def count_text(page):
    return " ".join(page.select_one("#segment-count").get_text(" ", strip=True).split())


def test_empty_state_explains_segments(web, acme):
    page = soup(web.get("/segments/"))
    empty = page.select_one("section.empty")
    assert "A segment is a saved set of rules" in empty.get_text()
    assert empty.select_one("a.button.primary")["href"] == "/segments/new"
    assert page.select_one("nav.tabs a[aria-current=page]").get_text(strip=True) == "Segments"


def test_new_page_has_one_rule_and_a_count(web, acme):
    page = soup(web.get("/segments/new"))
    builder = page.select_one("form#segment-form #builder")
    assert len(builder.select(".rule")) == 1
    assert builder.select_one("select[name='rules.0.field'] option[selected]")["value"] == "email"
    # Every control has a label.
    for control in builder.select("select, input:not([type=hidden])"):
        assert page.select_one(f"label[for='{control['id']}']"), control
    assert "4 contacts match" in count_text(page)


def test_add_rule_returns_the_builder_fragment_with_one_more_rule(web, acme):
    data = form(rules=[("0", rule("status", "is", "active"))], action="add_rule:")
    response = web.post("/segments/new/builder", data, htmx=True)
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("html") is None  # a fragment, not a page
    builder = page.select_one("div#builder")
    assert [r["data-path"] for r in builder.select(".rule")] == ["0", "1"]
    assert builder.select_one("#field-1").has_attr("autofocus")
    # The count comes along out of band; the new rule has no value yet, so it is not counted.
    oob = page.select_one("#segment-count[hx-swap-oob]")
    assert "3 contacts match" in " ".join(oob.get_text(" ", strip=True).split())
    assert "waiting for a value" in oob.get_text()
    # A rule still waiting for its value is not shown as an error.
    assert builder.select_one("#error-1").get_text(strip=True) == ""


def test_add_group_and_remove(web, acme):
    data = form(rules=[("0", rule("status", "is", "active"))], action="add_group:")
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    group = page.select_one("fieldset.rule-group.nested")
    assert group["data-path"] == "1"
    assert group.select_one("select[name='rules.1.op'] option[selected]")["value"] == "or"
    assert [r["data-path"] for r in group.select(".rule")] == ["1.0"]
    assert page.select_one("input[name='rules.1.kind']")["value"] == "group"

    data = form(rules=[("0", rule("status", "is", "active")), ("1", {"kind": "group", "op": "or"}),
                       ("1.0", rule("email", "contains", "a.example")),
                       ("1.1", rule("custom:plan", "gt", "5"))], action="remove:1.0")
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert [r["data-path"] for r in page.select("#builder .rule")] == ["0", "1.0"]
    assert page.select_one("#field-1-0 option[selected]")["value"] == "custom:plan"
    assert page.select_one("#add-1").has_attr("autofocus")  # focus lands on the group's "Add rule"
    assert "1 contact matches" in page.select_one("#segment-count").get_text(" ", strip=True)  # bob

    data = form(rules=[("0", rule("status", "is", "active")), ("1", {"kind": "group", "op": "or"}),
                       ("1.0", rule("email", "contains", "a.example"))], action="remove:1")
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert page.select("fieldset.rule-group.nested") == []
    assert len(page.select("#builder .rule")) == 1


def test_groups_cannot_nest_past_the_limit(web, acme):
    data = form(rules=[("0", {"kind": "group"}), ("0.0", {"kind": "group"}), ("0.0.0", rule("status", "is", "active"))])
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert page.select_one("#group-0").select("button[value='add_group:0']")
    assert not page.select("button[value='add_group:0.0']")  # the deepest group offers no "Add group"
    data["action"] = "add_group:0.0"  # a forged button
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert "nested at most 2 levels" in page.select_one("#builder .flash-error").get_text()
    assert len(page.select("fieldset.rule-group")) == 3


def test_changing_the_field_swaps_operator_and_value_inputs(web, acme):
    # The person picked "Status" where "Email address" was: operators and the value input follow.
    data = form(rules=[("0", rule("status", "contains", "ann", was="email"))])
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    operators = [o["value"] for o in page.select("#operator-0 option")]
    assert operators == ["is", "is_not"]
    assert [o["value"] for o in page.select("select#value-0 option")] == [
        "active", "unsubscribed", "bounced", "complained", "suppressed"]

    data = form(rules=[("0", rule("list", "is", "active", was="status"))])
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert [o["value"] for o in page.select("#operator-0 option")] == ["in_list", "not_in_list"]
    assert [o.get_text() for o in page.select("select#value-0 option")] == ["Choose a list", "News"]

    data = form(rules=[("0", rule("custom:plan", "in_list", "3", was="list"))])
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert page.select_one("#operator-0 option[selected]")["value"] == "eq"
    assert page.select_one("input#value-0")["inputmode"] == "decimal"
    assert page.select_one("input#value-0")["value"] == ""  # the old value does not carry over

    # Changing the operator to one without a value removes the value input.
    data = form(rules=[("0", rule("last_activity_at", "is_empty", "5"))])
    page = soup(web.post("/segments/new/builder", data, htmx=True))
    assert page.select_one("#value-0") is None
    # An operator that takes another kind of value starts empty; one that takes the same keeps it.
    data = form(rules=[("0", rule("created_at", "before", "30", was_operator="within_last_days"))])
    assert soup(web.post("/segments/new/builder", data, htmx=True)).select_one("input#value-0")["value"] == ""
    data = form(rules=[("0", rule("email", "ends_with", "a.example", was_operator="contains"))])
    assert soup(web.post("/segments/new/builder", data, htmx=True)).select_one("input#value-0")["value"] == "a.example"
    # A date operator gets a date input, a "last N days" one a number of days.
    data = form(rules=[("0", rule("created_at", "before", ""))])
    assert soup(web.post("/segments/new/builder", data, htmx=True)).select_one("input#value-0")["type"] == "date"
    data = form(rules=[("0", rule("created_at", "within_last_days", ""))])
    assert soup(web.post("/segments/new/builder", data, htmx=True)).select_one("input#value-0")["type"] == "number"


def test_live_count_and_errors_next_to_the_rule(web, acme):
    data = form(rules=[("0", rule("status", "is", "active")), ("1", rule("list", "in_list", str(acme.news.id)))])
    response = web.post("/segments/new/count", data, htmx=True)
    assert response.status_code == 200
    page = soup(response)
    assert "2 contacts match" in " ".join(page.get_text(" ", strip=True).split())  # ann, bob

    data = form(op="or", rules=[("0", rule("status", "is", "bounced")), ("1", rule("custom:plan", "gt", "lots"))])
    page = soup(web.post("/segments/new/count", data, htmx=True))
    assert "Fix the rules marked below" in page.get_text()
    error = page.select_one("p#error-1[hx-swap-oob]")
    assert "Enter a number" in error.get_text()
    assert page.select_one("p#error-0[hx-swap-oob]").get_text(strip=True) == ""


def test_save_stores_clean_rules_and_shows_them_again(web, acme):
    data = form(name="Active on News", rules=[("0", rule("status", "is", "active")),
                                               ("1", rule("list", "in_list", str(acme.news.id))),
                                               ("2", rule("custom:plan", "gt", " 5 "))])
    response = web.post("/segments/new", data)
    assert response.status_code == 302
    segment = Segment.get(Segment.name == "Active on News")
    assert response.headers["Location"] == f"/segments/{segment.id}"
    assert segment.rules == {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"},
        {"field": "list", "operator": "in_list", "value": acme.news.id},
        {"field": "custom:plan", "operator": "gt", "value": 5}]}
    page = soup(web.get(f"/segments/{segment.id}"))
    assert page.select_one("#f-name")["value"] == "Active on News"
    assert page.select_one("#value-1 option[selected]").get_text() == "News"
    assert page.select_one("#value-2")["value"] == "5"
    assert "1 contact matches" in count_text(page)

    listing = soup(web.get("/segments/"))
    row = listing.select_one(f"tr#segment-{segment.id}")
    assert "Status is Active and List is subscribed to “News” and Plan > 5" in row.get_text()
    lazy = row.select_one("[hx-get]")
    assert lazy["hx-trigger"] == "load"
    counted = soup(web.get(lazy["hx-get"], headers={"HX-Request": "true"}))
    assert counted.select_one(f"#count-{segment.id}").get_text(strip=True) == "1"


def test_save_refuses_invalid_rules_and_keeps_what_was_typed(web, acme):
    data = form(name="Broken", rules=[("0", rule("status", "is", "active")), ("1", rule("custom:plan", "gt", "lots")),
                                      ("2", rule("email", "contains", ""))])
    response = web.post("/segments/new", data)
    assert response.status_code == 422
    page = soup(response)
    assert "Enter a number" in page.select_one("#error-1").get_text()
    assert page.select_one("#value-1")["aria-invalid"] == "true"
    assert "Enter a value" in page.select_one("#error-2").get_text()  # on save, an empty value is an error
    assert page.select_one("#value-1")["value"] == "lots"
    assert page.select_one("#f-name")["value"] == "Broken"
    assert "2 rules need fixing" in page.select_one("#builder .flash-error").get_text()
    assert Segment.select().count() == 0

    response = web.post("/segments/new", form(name="", rules=[("0", rule("status", "is", "active"))]))
    assert response.status_code == 422
    assert "Give the segment a name" in soup(response).select_one("#e-name").get_text()


def test_edit_and_names_are_unique_per_team(web, acme):
    first = Segment.create(team=acme, name="Bounced", rules={"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "bounced"}]})
    Segment.create(team=acme, name="Taken", rules={})
    response = web.post(f"/segments/{first.id}", form(name="taken", rules=[("0", rule("status", "is", "active"))]))
    assert response.status_code == 422
    assert "already a segment called" in soup(response).select_one("#e-name").get_text()
    assert Segment.get_by_id(first.id).rules["rules"][0]["value"] == "bounced"  # nothing half-written

    response = web.post(f"/segments/{first.id}", form(name="Active", rules=[("0", rule("status", "is", "active"))]))
    assert response.status_code == 302
    assert Segment.get_by_id(first.id).name == "Active"


def test_the_buttons_work_without_javascript(web, acme):
    """No HX-Request: the same posts come back as the whole page, the form still pointing at Save."""
    data = form(rules=[("0", rule("status", "is", "active"))], action="add_rule:")
    response = web.post("/segments/new/builder", data)
    page = soup(response)
    assert page.select_one("html") is not None and page.select_one("h1").get_text() == "New segment"
    assert page.select_one("form#segment-form")["action"] == "/segments/new"
    assert len(page.select("#builder .rule")) == 2
    assert page.select_one("#f-name")["value"] == "Engaged"
    for button in page.select("#builder button[name=action]"):
        assert button["formaction"] == "/segments/new/builder"
    assert page.select_one("noscript")


def test_roles(app, web, acme):
    segment = Segment.create(team=acme, name="Bounced", rules={"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "bounced"}]})
    _, guest = make_member(app, acme, "guest")
    listing = soup(guest.get("/segments/"))
    assert listing.select_one(f"tr#segment-{segment.id}")
    assert not listing.select("a[href='/segments/new']")
    page = soup(guest.get(f"/segments/{segment.id}"))
    assert page.select_one("#segment-description").get_text() == "Status is Bounced"
    assert "1 contact matches" in page.select_one("#segment-count").get_text(" ", strip=True)
    assert page.select_one("form#segment-form") is None
    data = form(name="Mine", rules=[("0", rule("status", "is", "active"))])
    assert guest.post(f"/segments/{segment.id}", data).status_code == 403
    assert guest.post("/segments/new", data).status_code == 403
    assert guest.post("/segments/new/builder", data, htmx=True).status_code == 403
    assert guest.post(f"/segments/{segment.id}/delete").status_code == 403
    assert guest.get("/segments/new").status_code == 403

    _, author = make_member(app, acme, "author")
    assert author.post("/segments/new", data).status_code == 302
    assert author.post(f"/segments/{segment.id}", form(name="Renamed", rules=[])).status_code == 302
    assert Segment.get_by_id(segment.id).name == "Renamed"


def test_another_teams_segment_is_not_found(app, web, acme):
    other = Team.create(name="Other")
    theirs = Segment.create(team=other, name="Theirs", rules={})
    data = form(rules=[("0", rule("status", "is", "active"))])
    assert web.get(f"/segments/{theirs.id}").status_code == 404
    assert web.get(f"/segments/{theirs.id}/count").status_code == 404
    assert web.post(f"/segments/{theirs.id}", data).status_code == 404
    assert web.post(f"/segments/{theirs.id}/builder", data, htmx=True).status_code == 404
    assert web.post(f"/segments/{theirs.id}/count", data, htmx=True).status_code == 404
    assert web.post(f"/segments/{theirs.id}/delete").status_code == 404
    assert Segment.get_by_id(theirs.id).name == "Theirs"
    # Nor can a rule point at the other team's list.
    their_list = MailingList.create(team=other, name="Their list")
    response = web.post("/segments/new", form(name="Sneaky", rules=[("0", rule("list", "in_list", str(their_list.id)))]))
    assert response.status_code == 422
    assert "does not exist in this team" in soup(response).select_one("#error-0").get_text()


def test_delete_and_campaigns_that_use_it(web, acme):
    segment = Segment.create(team=acme, name="VIP", rules={})
    campaign = Campaign.create(team=acme, name="Spring sale",
                               audience={"lists": [], "segments": [segment.id]})
    page = soup(web.get(f"/segments/{segment.id}/delete"))
    assert "Spring sale" in page.select_one("main ul").get_text()
    response = web.post(f"/segments/{segment.id}/delete")
    assert response.status_code == 422
    assert "audience of “Spring sale”" in soup(response).select_one(".flash-error").get_text()
    assert Segment.get_or_none(Segment.id == segment.id)

    campaign.state = "completed"
    campaign.save()
    response = web.post(f"/segments/{segment.id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/segments/"
    assert Segment.get_or_none(Segment.id == segment.id) is None
