"""Building an automation (app/automations/flow.py): steps added, edited and removed in a real database, the
removed-step rule, validation at the field it is about, and another team's lists and segments refused."""
import pytest
from werkzeug.datastructures import MultiDict

from app.automations import flow
from app.automations import runs
from app.models import Automation
from app.models import AutomationStep
from app.models import Contact
from app.models import CustomField
from app.models import MailingList
from app.models import Segment
from app.models import SenderDomain
from app.models import StepKind
from app.models import Team
from app.models import utcnow


@pytest.fixture
def acme(ctx, admin):
    return Team.get(Team.name == "Acme")


@pytest.fixture
def other(ctx, admin):
    return Team.create(name="Globex")


def kinds(nodes):
    return [(n["step"].kind, kinds(n["yes"]), kinds(n["no"])) if n["step"].kind == StepKind.CONDITION
            else n["step"].kind for n in nodes]


def test_welcome_starter_makes_three_linked_steps(acme, admin):
    automation = flow.create_automation(acme, admin, "", starter="welcome")
    assert automation.name == "Welcome series"
    assert kinds(flow.steps_tree(Automation.get_by_id(automation.id))) == ["email", "wait", "email"]
    wait = flow.ordered_steps(automation)[1]
    assert wait.config == {"mode": "duration", "minutes": 2880}


def test_create_refuses_a_blank_name_and_an_unknown_starter(acme, admin):
    with pytest.raises(flow.FlowError) as refused:
        flow.create_automation(acme, admin, "  ")
    assert refused.value.field == "name"
    with pytest.raises(flow.FlowError) as refused:
        flow.create_automation(acme, admin, "X", starter="nope")
    assert refused.value.field == "starter"
    assert Automation.select().count() == 0


def test_add_after_at_top_and_in_branches(acme, admin):
    automation = flow.create_automation(acme, admin, "Flow")
    first = flow.add_step(automation, StepKind.EMAIL)
    cond = flow.add_step(automation, StepKind.CONDITION, after=first.id)
    flow.add_step(automation, StepKind.WAIT, branch=("yes", cond.id))
    flow.add_step(automation, StepKind.EXIT, branch=("no", cond.id))
    flow.add_step(automation, StepKind.SET_FIELD, branch=("yes", cond.id))  # before the wait
    flow.add_step(automation, StepKind.WEBHOOK)  # at the top
    tree = flow.steps_tree(Automation.get_by_id(automation.id))
    assert kinds(tree) == ["webhook", "email", ("condition", ["set_field", "wait"], ["exit"])]


def test_a_condition_added_mid_chain_takes_the_rest_into_its_yes_branch(acme, admin):
    automation = flow.create_automation(acme, admin, "W", starter="welcome")
    first = flow.ordered_steps(automation)[0]
    flow.add_step(automation, StepKind.CONDITION, after=first.id)
    assert kinds(flow.steps_tree(Automation.get_by_id(automation.id))) == ["email", ("condition", ["wait", "email"], [])]


def test_adding_after_a_condition_or_another_automations_step_is_refused(acme, admin):
    one = flow.create_automation(acme, admin, "One")
    two = flow.create_automation(acme, admin, "Two")
    cond = flow.add_step(one, StepKind.CONDITION)
    with pytest.raises(flow.FlowError):
        flow.add_step(one, StepKind.EMAIL, after=cond.id)
    with pytest.raises(flow.FlowError):
        flow.add_step(two, StepKind.EMAIL, after=cond.id)
    with pytest.raises(flow.FlowError):
        flow.add_step(one, "teleport")
    assert AutomationStep.select().where(AutomationStep.automation == two.id).count() == 0


def test_removed_step_keeps_its_row_and_points_at_its_replacement(acme, admin):
    automation = flow.create_automation(acme, admin, "W", starter="welcome")
    email1, wait, email2 = flow.ordered_steps(automation)
    flow.remove_step(automation, wait)
    wait = AutomationStep.get_by_id(wait.id)
    assert wait.removed_at is not None and wait.next_id == email2.id
    assert AutomationStep.get_by_id(email1.id).next_id == email2.id
    # Removing the replacement re-points the earlier removed step at what replaced it (the end).
    flow.remove_step(automation, AutomationStep.get_by_id(email2.id))
    assert AutomationStep.get_by_id(wait.id).next_id is None
    assert kinds(flow.steps_tree(Automation.get_by_id(automation.id))) == ["email"]
    with pytest.raises(flow.FlowError):
        flow.remove_step(automation, AutomationStep.get_by_id(email2.id))


def test_removing_the_first_step_moves_the_root(acme, admin):
    automation = flow.create_automation(acme, admin, "W", starter="welcome")
    email1, wait, _ = flow.ordered_steps(automation)
    flow.remove_step(automation, email1)
    assert Automation.get_by_id(automation.id).first_step_id == wait.id


def test_removed_condition_keeps_yes_branch_and_removes_no_branch(acme, admin):
    automation = flow.create_automation(acme, admin, "C")
    start = flow.add_step(automation, StepKind.EMAIL)
    cond = flow.add_step(automation, StepKind.CONDITION, after=start.id)
    yes = flow.add_step(automation, StepKind.WAIT, branch=("yes", cond.id))
    no1 = flow.add_step(automation, StepKind.EMAIL, branch=("no", cond.id))
    no2 = flow.add_step(automation, StepKind.EXIT, after=no1.id)
    removed = flow.remove_step(automation, AutomationStep.get_by_id(cond.id))
    assert set(removed) == {cond.id, no1.id, no2.id}
    assert AutomationStep.get_by_id(cond.id).next_id == yes.id
    assert AutomationStep.get_by_id(start.id).next_id == yes.id
    assert AutomationStep.get_by_id(no1.id).removed_at is not None and AutomationStep.get_by_id(no1.id).next_id is None
    assert kinds(flow.steps_tree(Automation.get_by_id(automation.id))) == ["email", "wait"]


def test_edit_email_sanitises_and_validates(acme, admin):
    automation = flow.create_automation(acme, admin, "E")
    step = flow.add_step(automation, StepKind.EMAIL)
    flow.edit_step(automation, step, MultiDict({"subject": "Hi {{ contact.name }}", "body_kind": "html",
                                                "body": '<p onclick="x()">Hello</p><script>alert(1)</script>'}))
    stored = AutomationStep.get_by_id(step.id).config
    assert stored["subject"] == "Hi {{ contact.name }}"
    assert "onclick" not in stored["body"] and "<script" not in stored["body"] and "Hello" in stored["body"]
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, step, MultiDict({"subject": "{{ broken", "body": "x"}))
    assert refused.value.field == "subject"
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, step, MultiDict({"subject": "ok", "body": "x", "from_email": "a@b.com, c@d.com"}))
    assert refused.value.field == "from_email"
    assert AutomationStep.get_by_id(step.id).config == stored  # nothing half-written


def test_wait_config_by_mode(acme, admin):
    automation = flow.create_automation(acme, admin, "W")
    step = flow.add_step(automation, StepKind.WAIT)
    assert flow.edit_step(automation, step, MultiDict({"mode": "duration", "amount": "3", "unit": "hours"})
                          ).config == {"mode": "duration", "minutes": 180}
    until = MultiDict([("mode", "until"), ("weekdays", "0"), ("weekdays", "4"), ("time", "09:30"), ("zone", "contact")])
    assert flow.edit_step(automation, step, until).config == {"mode": "until", "weekdays": [0, 4], "time": "09:30",
                                                             "zone": "contact"}
    assert flow.edit_step(automation, step, MultiDict({"mode": "event", "event": "order_placed",
                                                       "timeout_days": "2"})).config["timeout_minutes"] == 2880
    for form, field in (({"mode": "duration", "amount": "0", "unit": "days"}, "amount"),
                        ({"mode": "duration", "amount": "5", "unit": "weeks"}, "unit"),
                        ({"mode": "until", "time": "09:00"}, "weekdays"),
                        ({"mode": "until", "weekdays": "1", "time": "25:00"}, "time"),
                        ({"mode": "event", "event": "has space", "timeout_days": "1"}, "event"),
                        ({"mode": "sometime"}, "mode")):
        with pytest.raises(flow.FlowError) as refused:
            flow.edit_step(automation, step, MultiDict(form))
        assert refused.value.field == field, form


def test_condition_email_must_come_earlier(acme, admin):
    automation = flow.create_automation(acme, admin, "C")
    email = flow.add_step(automation, StepKind.EMAIL)
    cond = flow.add_step(automation, StepKind.CONDITION, after=email.id)
    later = flow.add_step(automation, StepKind.EMAIL, branch=("yes", cond.id))
    assert flow.edit_step(automation, cond, MultiDict({"test": "opened", "email_step_id": str(email.id)})
                          ).config == {"test": "opened", "step_id": email.id}
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, cond, MultiDict({"test": "clicked", "email_step_id": str(later.id)}))
    assert "before this condition" in refused.value.message
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, cond, MultiDict({"test": "field", "field": "name", "op": "equals", "value": ""}))
    assert refused.value.field == "value"


def test_another_teams_list_segment_and_field_are_refused(acme, other, admin):
    theirs = MailingList.create(team=other, name="Theirs")
    segment = Segment.create(team=other, name="Their segment", rules={})
    CustomField.create(team=other, key="plan", label="Plan")
    automation = flow.create_automation(acme, admin, "X")
    step = flow.add_step(automation, StepKind.ADD_TO_LIST)
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, step, MultiDict({"list_id": str(theirs.id)}))
    assert refused.value.message == f"No list of this team has the id {theirs.id}."
    settings = {"name": "X", "trigger_kind": "segment_entry", "trigger_segment_id": str(segment.id),
                "reentry": "never"}
    with pytest.raises(flow.FlowError) as refused:
        flow.update_settings(automation, MultiDict(settings))
    assert refused.value.field == "trigger_segment_id"
    field_step = flow.add_step(automation, StepKind.SET_FIELD)
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, field_step, MultiDict({"field": "plan", "value": "pro"}))
    assert refused.value.field == "field"
    assert Automation.get_by_id(automation.id).trigger == {"kind": "manual"}


def test_settings_trigger_goal_and_sender(acme, admin):
    news = MailingList.create(team=acme, name="News")
    CustomField.create(team=acme, key="renewal", label="Renewal", type="date")
    automation = flow.create_automation(acme, admin, "S")
    saved = flow.update_settings(automation, MultiDict({
        "name": "Renewal reminder", "trigger_kind": "date_field", "trigger_field": "renewal",
        "trigger_offset_days": "-7", "trigger_time": "08:00", "trigger_yearly": "1", "goal_kind": "event",
        "goal_event": "renewed", "reentry": "after_end", "from_email": "News@Acme.example", "from_name": "Acme"}))
    assert saved.trigger == {"kind": "date_field", "field": "renewal", "offset_days": -7, "time": "08:00",
                             "yearly": True}
    assert saved.goal == {"kind": "event", "name": "renewed"} and saved.from_email == "news@acme.example"
    saved = flow.update_settings(automation, MultiDict({"name": "J", "trigger_kind": "list_join",
                                                       "trigger_list_id": str(news.id), "reentry": "never"}))
    assert saved.trigger == {"kind": "list_join", "list_id": news.id} and saved.goal == {}
    with pytest.raises(flow.FlowError) as refused:
        flow.update_settings(automation, MultiDict({"name": "J", "trigger_kind": "date_field",
                                                    "trigger_field": "name", "reentry": "never"}))
    assert refused.value.field == "trigger_field"


def test_problems_for_live_then_live_pause_resume_and_no_way_back(acme, admin):
    automation = flow.create_automation(acme, admin, "P", starter="welcome")
    problems = flow.problems_for_live(automation)
    assert "Enter the From address in the settings." in problems
    assert any("postal address" in p for p in problems)
    with pytest.raises(flow.FlowError):
        flow.change_state(automation, "live")
    acme.postal_address = "1 Main Street"
    acme.save()
    automation = flow.update_settings(automation, MultiDict({"name": "P", "trigger_kind": "manual",
                                                             "reentry": "never", "from_email": "hi@acme.example"}))
    assert any("acme.example is not verified" in p for p in flow.problems_for_live(automation))
    SenderDomain.create(team=acme, domain="acme.example", verified_at=utcnow(), dkim_selector="loft",
                        dkim_private_key="x")
    assert flow.problems_for_live(automation) == []
    automation = flow.change_state(automation, "live")
    automation = flow.change_state(automation, "pause")
    assert Automation.get_by_id(automation.id).state == "paused"
    automation = flow.change_state(automation, "resume")
    contact = Contact.create(team=acme, email="a@example.com", domain="example.com")
    assert runs.enter(Automation.get_by_id(automation.id), contact) is not None
    with pytest.raises(flow.FlowError) as refused:
        flow.change_state(automation, "draft")
    assert "cannot go back to draft" in refused.value.message
    assert Automation.get_by_id(automation.id).state == "live"


def test_an_email_body_over_the_campaign_limit_is_refused(acme, admin):
    from app.content import sandbox
    automation = flow.create_automation(acme, admin, "Big")
    step = flow.add_step(automation, StepKind.EMAIL)
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, step, MultiDict({"subject": "x", "body": "a" * (sandbox.MAX_SOURCE + 1)}))
    assert refused.value.field == "body" and "too long" in refused.value.message
    with pytest.raises(flow.FlowError) as refused:
        flow.edit_step(automation, AutomationStep.get_by_id(step.id), MultiDict({"subject": "x",
                                                                                "body": "{% raw %}x{% endraw %}"}))
    assert refused.value.field == "body"
    assert AutomationStep.get_by_id(step.id).config["body"] == ""


def test_webhook_url_must_be_https(acme, admin):
    automation = flow.create_automation(acme, admin, "Hook")
    step = flow.add_step(automation, StepKind.WEBHOOK)
    for url in ("http://hooks.example.com/x", "ftp://example.com", "https://user:pw@example.com/", ""):
        with pytest.raises(flow.FlowError) as refused:
            flow.edit_step(automation, step, MultiDict({"url": url}))
        assert refused.value.field == "url"
    config = flow.edit_step(automation, step, MultiDict({"url": "https://hooks.example.com/in"})).config
    assert config["url"] == "https://hooks.example.com/in" and set(config) == {"url", "secret"}
    assert flow.webhook_secret(step)  # its signing secret (tests/test_automation_webhook_step.py)
