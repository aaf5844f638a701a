"""Segment rules compiled to SQL: every operator against real contacts in a real SQLite file,
AND/OR nesting, refusals of anything outside the whitelist, and team isolation."""
import datetime

import pytest

from app.db import is_sqlite
from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from app.models import utcnow
from app.segments import services
from app.segments.compiler import MAX_RULES
from app.segments.compiler import SegmentError
from app.segments.compiler import compile_rules
from app.segments.compiler import validate_rules

NOW = utcnow()


def days_ago(days):
    return NOW - datetime.timedelta(days=days)


@pytest.fixture
def world(app):
    """Team Acme with five contacts that differ in every way a rule can look at, and team Other."""
    with app.app_context():
        acme = Team.create(name="Acme")
        other = Team.create(name="Other")
        for key, label, kind in (("plan", "Plan", "number"), ("company", "Company", "text"),
                                 ("renewal", "Renewal", "date"), ("vip", "VIP", "boolean")):
            CustomField.create(team=acme, key=key, label=label, type=kind)
        CustomField.create(team=other, key="secret", label="Secret", type="text")
        news = MailingList.create(team=acme, name="News")
        beta = MailingList.create(team=acme, name="Beta")
        other_list = MailingList.create(team=other, name="Theirs")
        launch = Campaign.create(team=acme, name="Launch")
        other_campaign = Campaign.create(team=other, name="Their launch")
        today = NOW.date()

        def contact(team, email, name="", status="active", created=0, active=None, **attributes):
            return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], name=name, status=status,
                                  attributes=attributes, created_at=days_ago(created),
                                  updated_at=days_ago(created),
                                  last_activity_at=days_ago(active) if active is not None else None)

        ann = contact(acme, "ann@alpha.example", "Ann Archer", created=2, active=1, plan=1, company="Alpha Ltd",
                      renewal=(today + datetime.timedelta(days=30)).isoformat(), vip=True)
        bob = contact(acme, "bob@beta.example", "Bob", created=40, active=20, plan=5, company="Beta 100% Inc",
                      renewal=(today - datetime.timedelta(days=3)).isoformat(), vip=False)
        cat = contact(acme, "cat@alpha.example", "Cat O'Neil", status="unsubscribed", created=400, plan=10.5,
                      company="")
        dan = contact(acme, "dan@gamma.example", "", status="bounced", created=10, active=100, plan="7")
        eve = contact(acme, "eve_x@gamma.example", "Eve", created=1, company="ALPHA labs")
        # Another team's contact matches nearly everything: it must never appear.
        zed = contact(other, "ann@alpha.example", "Ann Archer", created=2, active=1, plan=1, company="Alpha Ltd",
                      vip=True)

        Subscription.create(contact=ann, list=news, status="subscribed")
        Subscription.create(contact=bob, list=news, status="unsubscribed")  # left the list: not "in" it
        Subscription.create(contact=cat, list=news, status="subscribed")
        Subscription.create(contact=bob, list=beta, status="subscribed")
        Subscription.create(contact=dan, list=beta, status="unconfirmed")
        Subscription.create(contact=zed, list=other_list, status="subscribed")

        for who, kind in ((ann, "sent"), (ann, "opened"), (ann, "clicked"), (bob, "sent"), (bob, "opened"),
                          (cat, "sent")):
            Event.create(team=acme, contact=who, campaign_id=launch.id, type=kind)
        Event.create(team=acme, contact=None, campaign_id=launch.id, type="opened")  # an erased contact's event
        Event.create(team=other, contact=zed, campaign_id=other_campaign.id, type="opened")
        yield dict(acme=acme, other=other, news=news, beta=beta, other_list=other_list, launch=launch,
                   other_campaign=other_campaign, today=today)


ALL = {"ann", "bob", "cat", "dan", "eve"}


def matched(team, rules):
    """Names of the matching contacts; the count must agree with the query."""
    names = {c.email.split("@")[0].split("_")[0] for c in services.matching_contacts(team.id, rules)}
    assert services.count_matching(team.id, rules) == len(names)
    # compile_rules is the public interface too: it must give the same set on a plain Contact query.
    plain = Contact.select().where((Contact.team == team.id) & compile_rules(team.id, rules))
    assert {c.email.split("@")[0].split("_")[0] for c in plain} == names
    return names


def one(field, operator, value=None):
    return {"op": "and", "rules": [{"field": field, "operator": operator, "value": value}]}


def test_no_rules_match_every_contact_of_the_team_only(world):
    assert matched(world["acme"], {"op": "and", "rules": []}) == ALL
    assert matched(world["acme"], {"op": "or", "rules": []}) == ALL
    assert matched(world["acme"], "") == ALL  # stored "no rules"
    assert matched(world["other"], {"op": "and", "rules": []}) == {"ann"}


CASES = [
    # email (stored lower-case; the value is compared case-insensitively)
    (("email", "is", "ANN@alpha.example"), {"ann"}),
    (("email", "is_not", "ann@alpha.example"), ALL - {"ann"}),
    (("email", "contains", "alpha"), {"ann", "cat"}),
    (("email", "not_contains", "alpha"), {"bob", "dan", "eve"}),
    (("email", "starts_with", "b"), {"bob"}),
    (("email", "ends_with", "@gamma.example"), {"dan", "eve"}),
    (("email", "contains", "_"), {"eve"}),  # LIKE wildcards are escaped: "_" is an underscore
    (("domain", "is", "Alpha.example"), {"ann", "cat"}),
    (("domain", "is_not", "alpha.example"), {"bob", "dan", "eve"}),
    # name
    (("name", "is", "bob"), {"bob"}),
    (("name", "contains", "o'n"), {"cat"}),
    (("name", "starts_with", "ann"), {"ann"}),
    (("name", "ends_with", "archer"), {"ann"}),
    (("name", "is_empty", None), {"dan"}),
    (("name", "is_not_empty", None), ALL - {"dan"}),
    # status
    (("status", "is", "active"), {"ann", "bob", "eve"}),
    (("status", "is_not", "active"), {"cat", "dan"}),
    # dates on the contact
    (("created_at", "within_last_days", 5), {"ann", "eve"}),
    (("created_at", "not_within_last_days", 5), {"bob", "cat", "dan"}),
    (("created_at", "before", (NOW - datetime.timedelta(days=100)).date().isoformat()), {"cat"}),
    (("created_at", "after", (NOW - datetime.timedelta(days=5)).date().isoformat()), {"ann", "eve"}),
    (("created_at", "on", (NOW - datetime.timedelta(days=40)).date().isoformat()), {"bob"}),
    (("last_activity_at", "within_last_days", 30), {"ann", "bob"}),
    (("last_activity_at", "not_within_last_days", 30), {"cat", "dan", "eve"}),  # never active counts as not active
    (("last_activity_at", "is_empty", None), {"cat", "eve"}),
    (("last_activity_at", "is_not_empty", None), {"ann", "bob", "dan"}),
    (("last_activity_at", "before", (NOW - datetime.timedelta(days=50)).date().isoformat()), {"dan"}),
    # lists: only a "subscribed" subscription counts
    (("list", "in_list", "news"), {"ann", "cat"}),
    (("list", "not_in_list", "news"), {"bob", "dan", "eve"}),
    (("list", "in_list", "beta"), {"bob"}),
    # campaign activity
    (("campaign", "opened", "launch"), {"ann", "bob"}),
    (("campaign", "not_opened", "launch"), {"cat", "dan", "eve"}),  # the erased contact's NULL does not spoil NOT IN
    (("campaign", "clicked", "launch"), {"ann"}),
    (("campaign", "not_clicked", "launch"), {"bob", "cat", "dan", "eve"}),
    (("campaign", "was_sent", "launch"), {"ann", "bob", "cat"}),
    (("campaign", "was_not_sent", "launch"), {"dan", "eve"}),
    # custom number (a number stored as text, "7", still compares as a number)
    (("custom:plan", "eq", 5), {"bob"}),
    (("custom:plan", "ne", "5"), {"ann", "cat", "dan", "eve"}),  # eve has no plan: "not 5" includes her
    (("custom:plan", "gt", "5"), {"cat", "dan"}),
    (("custom:plan", "gte", 5), {"bob", "cat", "dan"}),
    (("custom:plan", "lt", 5), {"ann"}),
    (("custom:plan", "lte", "10,5"), {"ann", "bob", "cat", "dan"}),
    (("custom:plan", "is_empty", None), {"eve"}),
    (("custom:plan", "is_not_empty", None), {"ann", "bob", "cat", "dan"}),
    # custom text
    (("custom:company", "is", "alpha ltd"), {"ann"}),
    (("custom:company", "is_not", "alpha ltd"), {"bob", "cat", "dan", "eve"}),
    (("custom:company", "contains", "alpha"), {"ann", "eve"}),
    (("custom:company", "contains", "100%"), {"bob"}),  # "%" is a percent sign, not a wildcard
    (("custom:company", "not_contains", "alpha"), {"bob", "cat", "dan"}),
    (("custom:company", "starts_with", "beta"), {"bob"}),
    (("custom:company", "is_empty", None), {"cat", "dan"}),  # "" and missing are both empty
    (("custom:company", "is_not_empty", None), {"ann", "bob", "eve"}),
    # custom date (YYYY-MM-DD text)
    (("custom:renewal", "within_last_days", 7), {"bob"}),
    (("custom:renewal", "after", "today"), {"ann"}),
    (("custom:renewal", "before", "today"), {"bob"}),
    (("custom:renewal", "on", "today+30"), {"ann"}),
    (("custom:renewal", "is_empty", None), {"cat", "dan", "eve"}),
    # custom boolean
    (("custom:vip", "is_true", None), {"ann"}),
    (("custom:vip", "is_false", None), {"bob"}),
    (("custom:vip", "is_empty", None), {"cat", "dan", "eve"}),
]


def _resolve(world, field, value):
    if field == "list" and value in ("news", "beta"):
        return world[value].id
    if field == "campaign" and value == "launch":
        return world["launch"].id
    if value == "today":
        return world["today"].isoformat()
    if value == "today+30":
        return (world["today"] + datetime.timedelta(days=30)).isoformat()
    return value


@pytest.mark.parametrize("rule,expected", CASES, ids=[f"{r[0]}-{r[1]}" for r, _ in CASES])
def test_each_operator(world, rule, expected):
    field, operator, value = rule
    assert matched(world["acme"], one(field, operator, _resolve(world, field, value))) == expected


def test_every_negative_operator_is_the_exact_complement(world):
    """A rule and its opposite split the team's contacts in two, whoever lacks a value included."""
    pairs = [("email", "is", "is_not", "bob@beta.example"), ("email", "contains", "not_contains", "alpha"),
             ("custom:company", "is", "is_not", "alpha ltd"),
             ("custom:company", "contains", "not_contains", "a"), ("status", "is", "is_not", "bounced"),
             ("custom:plan", "eq", "ne", 1), ("list", "in_list", "not_in_list", "news"),
             ("last_activity_at", "within_last_days", "not_within_last_days", 50),
             ("campaign", "opened", "not_opened", "launch"), ("campaign", "was_sent", "was_not_sent", "launch")]
    for field, positive, negative, value in pairs:
        value = _resolve(world, field, value)
        yes = matched(world["acme"], one(field, positive, value))
        no = matched(world["acme"], one(field, negative, value))
        assert yes | no == ALL and not yes & no, (field, positive, yes, no)


def test_and_or_nesting(world):
    acme = world["acme"]
    rules = {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"},
        {"op": "or", "rules": [
            {"field": "list", "operator": "in_list", "value": world["beta"].id},
            {"op": "and", "rules": [
                {"field": "custom:vip", "operator": "is_true"},
                {"field": "email", "operator": "ends_with", "value": "alpha.example"}]}]}]}
    assert matched(acme, rules) == {"ann", "bob"}
    rules["op"] = "or"
    assert matched(acme, rules) == {"ann", "bob", "eve"}
    # An empty group says nothing: it neither matches everyone in an OR nor no one in an AND.
    with_empty = {"op": "or", "rules": [{"field": "name", "operator": "is", "value": "bob"}, {"op": "and", "rules": []}]}
    assert matched(acme, with_empty) == {"bob"}


def test_list_rule_in_an_and_group_uses_the_join_and_still_counts_right(world):
    acme, news = world["acme"], world["news"]
    rules = {"op": "and", "rules": [{"field": "list", "operator": "in_list", "value": news.id},
                                    {"field": "list", "operator": "in_list", "value": news.id},
                                    {"field": "status", "operator": "is", "value": "active"}]}
    assert matched(acme, rules) == {"ann"}
    sql, _ = services.matching_contacts(acme.id, rules).sql()
    assert "JOIN" in sql
    # A caller may join Subscription itself without a clash (the segment's join is aliased).
    query = (services.matching_contacts(acme.id, rules)
             .join(Subscription, on=(Subscription.contact == Contact.id)).where(Subscription.list == news.id))
    assert [c.email for c in query] == ["ann@alpha.example"]


def test_values_are_parameters_never_sql(world):
    acme = world["acme"]
    hostile = "' OR 1=1 --"
    for field, operator in (("email", "is"), ("name", "contains"), ("custom:company", "is"),
                            ("domain", "is"), ("custom:company", "starts_with")):
        assert matched(acme, one(field, operator, hostile)) == set()
        sql, params = Contact.select().where(compile_rules(acme.id, one(field, operator, hostile))).sql()
        assert "1=1" not in sql and any(hostile.lower() in str(p).lower() for p in params)
    assert matched(acme, one("name", "is", "Cat O'Neil")) == {"cat"}
    # Not-equal with a hostile value is everything (nobody has that value), still only this team's contacts.
    assert matched(acme, one("email", "is_not", hostile)) == ALL
    # A custom field's JSON path is a parameter on SQLite; peewee writes PostgreSQL's as a quoted text[]
    # literal, which holds a key only after KEY_PATTERN (lower-case letters, digits, _) has passed it.
    sql, params = Contact.select().where(compile_rules(acme.id, one("custom:plan", "gt", 1))).sql()
    if is_sqlite():
        assert '$."plan"' in params and "plan" not in sql
    else:
        assert """#>> '{"plan"}'::text[]""" in sql and params == [1]


@pytest.mark.parametrize("rules,message", [
    (one("email; DROP TABLE contact", "is", "x"), "is not a field a segment can use"),
    (one("password_hash", "is", "x"), "is not a field a segment can use"),
    (one("custom:plan') OR 1=1 --", "eq", 1), "There is no custom field"),
    (one('custom:pl"an', "eq", 1), "There is no custom field"),
    (one("custom:secret", "is", "x"), "There is no custom field “secret”"),  # the other team's field
    (one("email", "LIKE '%' OR 1=1", "x"), "is not an operator for Email address"),
    (one("status", "contains", "act"), "is not an operator for Status"),
    (one("custom:plan", "contains", "1"), "is not an operator for Plan"),
    (one("status", "is", "deleted"), "Choose a status"),
    (one("custom:plan", "gt", "1 OR 1=1"), "Enter a number"),
    (one("custom:plan", "gt", "nan"), "Enter a number"),
    (one("custom:plan", "gt", True), "Enter a number"),
    (one("created_at", "before", "yesterday"), "Enter a date as YYYY-MM-DD"),
    (one("created_at", "within_last_days", 0), "Enter a number of days from 1"),
    (one("created_at", "within_last_days", "7; DROP"), "Enter a number of days"),
    (one("email", "is", ""), "Enter a value"),
    (one("email", "is", ["a", "b"]), "Enter a single value"),
    (one("email", "is", "x" * 501), "under 500 characters"),
    (one("list", "in_list", "1 OR 1=1"), "Choose a list"),
    ({"op": "xor", "rules": []}, "“and” or “or”"),
    ({"op": "and", "rules": "all"}, "must be a list"),
    ([1, 2], "must be a group"),
    ("{not json", "not valid JSON"),
    ({"op": "and", "rules": [42]}, "must have a field"),
])
def test_refused_with_a_clear_message(world, rules, message):
    with pytest.raises(SegmentError) as caught:
        compile_rules(world["acme"].id, rules)
    assert message in str(caught.value)
    with pytest.raises(SegmentError):
        services.count_matching(world["acme"].id, rules)


def test_error_names_the_rule(world):
    rules = {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "active"},
                                    {"op": "or", "rules": [{"field": "name", "operator": "is", "value": "x"},
                                                           {"field": "custom:plan", "operator": "gt", "value": "lots"}]}]}
    with pytest.raises(SegmentError) as caught:
        validate_rules(world["acme"].id, rules)
    assert str(caught.value).startswith("Rule 2.2: Enter a number")
    assert set(caught.value.errors) == {"1.1"}


def test_lists_and_campaigns_of_another_team_are_refused(world):
    acme, other = world["acme"], world["other"]
    with pytest.raises(SegmentError, match="That list does not exist in this team"):
        compile_rules(acme.id, one("list", "in_list", world["other_list"].id))
    with pytest.raises(SegmentError, match="That campaign does not exist in this team"):
        compile_rules(acme.id, one("campaign", "opened", world["other_campaign"].id))
    with pytest.raises(SegmentError, match="That list does not exist"):
        compile_rules(other.id, one("list", "not_in_list", world["news"].id))
    assert matched(other, one("campaign", "opened", world["other_campaign"].id)) == {"ann"}


def test_depth_and_size_limits(world):
    acme = world["acme"]
    rule = {"field": "status", "operator": "is", "value": "active"}
    three_levels = {"op": "and", "rules": [{"op": "or", "rules": [{"op": "and", "rules": [rule]}]}]}
    assert matched(acme, three_levels) == {"ann", "bob", "eve"}
    four_levels = {"op": "and", "rules": [{"op": "or", "rules": [{"op": "and", "rules": [
        {"op": "or", "rules": [rule]}]}]}]}
    with pytest.raises(SegmentError, match="nested at most 2 levels"):
        compile_rules(acme.id, four_levels)
    assert matched(acme, {"op": "or", "rules": [rule] * MAX_RULES}) == {"ann", "bob", "eve"}
    with pytest.raises(SegmentError, match=f"at most {MAX_RULES} rules"):
        compile_rules(acme.id, {"op": "or", "rules": [rule] * (MAX_RULES + 1)})


def test_validation_cleans_values_for_storage(world):
    cleaned = validate_rules(world["acme"].id, {"op": "or", "rules": [
        {"field": "custom:plan", "operator": "gt", "value": " 3,5 ", "extra": "dropped"},
        {"field": "created_at", "operator": "within_last_days", "value": "30"},
        {"field": "list", "operator": "in_list", "value": str(world["news"].id)},
        {"field": "custom:vip", "operator": "is_true", "value": "ignored"},
        {"field": "email", "operator": "contains", "value": "  alpha "}]})
    assert cleaned == {"op": "or", "rules": [
        {"field": "custom:plan", "operator": "gt", "value": 3.5},
        {"field": "created_at", "operator": "within_last_days", "value": 30},
        {"field": "list", "operator": "in_list", "value": world["news"].id},
        {"field": "custom:vip", "operator": "is_true", "value": None},
        {"field": "email", "operator": "contains", "value": "alpha"}]}


def test_a_deleted_custom_field_makes_its_segment_fail_clearly(world):
    acme = world["acme"]
    rules = one("custom:vip", "is_true")
    assert matched(acme, rules) == {"ann"}
    CustomField.delete().where((CustomField.team == acme) & (CustomField.key == "vip")).execute()
    with pytest.raises(SegmentError, match="There is no custom field “vip”"):
        services.count_matching(acme.id, rules)


def test_a_custom_key_outside_the_key_pattern_never_reaches_a_json_path(world):
    acme = world["acme"]
    CustomField.create(team=acme, key="a.b\"", label="Odd", type="text")  # not made through the contacts area
    with pytest.raises(SegmentError, match="has a key segments cannot use"):
        compile_rules(acme.id, one('custom:a.b"', "is", "x"))
