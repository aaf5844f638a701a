"""A welcome series end to end: the real scheduler (app/automations/scheduler.py) moves runs as the test clock
(app/clock.py, a clock file) moves, each email step queues through app/automations/mail.py, and the real sending
task delivers to the real mail catcher. Clicks and unsubscribes go through the real tracked links over HTTP."""
import datetime
import email
import email.policy
import re

import pytest

from app import clock
from app.automations import mail
from app.automations import runs
from app.automations import scheduler
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import CaughtMessage
from app.models import MailingList
from app.models import Contact
from app.models import Send
from app.models import Subscription
from app.models import utcnow
from tasks import sending as sending_tasks
from tests.tracking_support import BROWSER

DAY = datetime.timedelta(days=1)


@pytest.fixture
def ctx(app, tmp_path):
    app.config["CLOCK_FILE"] = str(tmp_path / "clock.txt")
    with app.app_context():
        clock.set_time(app.config["CLOCK_FILE"], utcnow().replace(microsecond=0))
        yield app


def move_clock(app, delta):
    return clock.advance(app.config["CLOCK_FILE"], seconds=delta.total_seconds())


def body(title):
    return f'<p>{title}, {{{{ contact.name }}}}</p><p><a href="https://example.org/{title.lower()}">Go</a></p>'


def build(team, reentry="never", specs=()):
    """Steps from (kind, config, next, yes, no) tuples whose links are indexes into specs."""
    automation = Automation.create(team=team, name="Welcome series", state="live", trigger={"kind": "manual"},
                                   goal={}, reentry=reentry, from_name="Acme", from_email="hello@acme.example")
    made = [AutomationStep.create(automation=automation, kind=kind, config=config) for kind, config, *_ in specs]
    for step, (_kind, _config, following, yes, no) in zip(made, specs):
        step.next_id = made[following].id if following is not None else None
        step.yes_id = made[yes].id if yes is not None else None
        step.no_id = made[no].id if no is not None else None
        step.save()
    automation.first_step_id = made[0].id
    automation.save()
    return automation, made


def email_step(subject):
    return {"subject": subject, "preheader": "", "kind": "html", "body": body(subject.split()[0]),
            "template_id": None, "from_name": "", "from_email": ""}


def wait_days(days):
    return {"mode": "duration", "minutes": days * 24 * 60}


def tick_and_deliver():
    """What the worker does: a scheduler tick, then the sending task for every hidden campaign with mail waiting."""
    moved = scheduler.tick()
    for campaign_id in mail.due_campaign_ids():
        sending_tasks.run_campaign(campaign_id)
    return moved


def inbox(address):
    messages = [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
                for m in CaughtMessage.select().order_by(CaughtMessage.id)]
    return [m for m in messages if m["To"].addresses[0].addr_spec == address]


def subjects(address):
    return [m["Subject"] for m in inbox(address)]


def local_path(message, prefix):
    html = message.get_body(("html",)).get_content()
    url = re.search(r'href="(https?://[^"]*' + re.escape(prefix) + r'[^"]+)"', html).group(1)
    return "/" + url.split("://", 1)[1].partition("/")[2]


def reader(team, number):
    return Contact.get((Contact.team == team) & (Contact.email == f"reader{number}@example.com"))


def test_welcome_series_in_order_with_its_delays_and_the_click_branch(ctx, ready_team, public):
    team, _news = ready_team
    #  0 email 1 → 1 wait 2 days → 2 clicked email 1? yes → 3 email 2a → 4 wait 3 days → 5 email 3
    #                                                no  → 6 email 2b → 7 wait 3 days → 8 email 3
    automation, steps = build(team, specs=[
        ("email", email_step("Welcome {{ contact.name }}"), 1, None, None),
        ("wait", wait_days(2), 2, None, None),
        ("condition", {"test": "clicked", "step_id": None}, None, 3, 6),
        ("email", email_step("Thanks for clicking"), 4, None, None),
        ("wait", wait_days(3), 5, None, None),
        ("email", email_step("Last one"), None, None, None),
        ("email", email_step("Did you miss it"), 7, None, None),
        ("wait", wait_days(3), 8, None, None),
        ("email", email_step("Last one"), None, None, None),
    ])
    AutomationStep.update(config={"test": "clicked", "step_id": steps[0].id}).where(
        AutomationStep.id == steps[2].id).execute()
    clicker, idle = reader(team, 0), reader(team, 1)
    start = clock.now()
    for person in (clicker, idle):
        assert runs.enter(automation, person, {}, start) is not None

    assert tick_and_deliver() == 2
    assert subjects(clicker.email) == ["Welcome Reader 0"] and subjects(idle.email) == ["Welcome Reader 1"]
    first = inbox(clicker.email)[0]
    assert "d=acme.example" in first["DKIM-Signature"] and first["List-Unsubscribe-Post"]
    # Read an hour after it arrived (a click seconds after the send is a link scanner's, and never counts).
    Send.update(sent_at=utcnow() - datetime.timedelta(hours=1)).execute()
    assert public.get(local_path(first, "/c/"), headers={"User-Agent": BROWSER},
                      environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 302

    move_clock(ctx, DAY * 2 - datetime.timedelta(minutes=1))
    tick_and_deliver()
    assert len(inbox(clicker.email)) == 1 and len(inbox(idle.email)) == 1  # not yet: a minute short of two days
    move_clock(ctx, datetime.timedelta(minutes=1))
    tick_and_deliver()
    assert subjects(clicker.email) == ["Welcome Reader 0", "Thanks for clicking"]
    assert subjects(idle.email) == ["Welcome Reader 1", "Did you miss it"]

    move_clock(ctx, DAY * 3 - datetime.timedelta(minutes=1))
    tick_and_deliver()
    assert len(inbox(clicker.email)) == 2 and len(inbox(idle.email)) == 2
    move_clock(ctx, datetime.timedelta(minutes=1))
    tick_and_deliver()
    assert subjects(clicker.email) == ["Welcome Reader 0", "Thanks for clicking", "Last one"]
    assert subjects(idle.email) == ["Welcome Reader 1", "Did you miss it", "Last one"]
    for message in inbox(clicker.email) + inbox(idle.email):
        assert "d=acme.example" in message["DKIM-Signature"] and "mailto:" in message["List-Unsubscribe"]
        assert message["X-Loft-Token"]
    assert {run.state for run in AutomationRun.select()} == {"done"}
    move_clock(ctx, DAY * 30)
    tick_and_deliver()
    assert len(inbox(clicker.email)) == 3 and len(inbox(idle.email)) == 3


def two_emails_a_day_apart(team, reentry="never"):
    return build(team, reentry=reentry, specs=[
        ("email", email_step("Welcome {{ contact.name }}"), 1, None, None),
        ("wait", wait_days(1), 2, None, None),
        ("email", email_step("Day two"), None, None, None),
    ])


def test_unsubscribing_through_the_link_stops_the_series(ctx, ready_team, public):
    team, _news = ready_team
    automation, _steps = two_emails_a_day_apart(team)
    leaver, stayer = reader(team, 0), reader(team, 1)
    for person in (leaver, stayer):
        runs.enter(automation, person, {}, clock.now())
    tick_and_deliver()
    message = inbox(leaver.email)[0]
    unsubscribe = message["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    path = "/" + unsubscribe.split("://", 1)[1].partition("/")[2]
    assert public.post(path, data={"List-Unsubscribe": "One-Click"}).status_code in (200, 202, 204)
    move_clock(ctx, DAY * 2)
    tick_and_deliver()
    assert subjects(leaver.email) == ["Welcome Reader 0"]
    assert subjects(stayer.email) == ["Welcome Reader 1", "Day two"]
    run = AutomationRun.get(AutomationRun.contact == leaver.id)
    assert run.state == "exited" and run.exit_reason


def test_reentry_after_end_sends_the_series_again_once(ctx, ready_team):
    team, _news = ready_team
    automation, _steps = two_emails_a_day_apart(team, reentry="after_end")
    person = reader(team, 2)
    assert runs.enter(automation, person, {}, clock.now()) is not None
    tick_and_deliver()
    assert runs.enter(automation, person, {}, clock.now()) is None  # still running: after_end waits for its end
    move_clock(ctx, DAY)
    tick_and_deliver()
    assert AutomationRun.get(AutomationRun.contact == person.id).state == "done"
    again = runs.enter(automation, person, {}, clock.now())
    assert again is not None and again.entry == 2
    tick_and_deliver()
    tick_and_deliver()
    move_clock(ctx, DAY)
    tick_and_deliver()
    tick_and_deliver()
    assert subjects(person.email) == ["Welcome Reader 2", "Day two", "Welcome Reader 2", "Day two"]
    assert [run.state for run in AutomationRun.select().order_by(AutomationRun.entry)] == ["done", "done"]


def test_one_click_on_a_list_join_automation_leaves_that_list_only(ctx, ready_team, public):
    team, news = ready_team
    onboarding = MailingList.create(team=team, name="Onboarding", double_opt_in=False)
    automation, _steps = two_emails_a_day_apart(team)
    Automation.update(trigger={"kind": "list_join", "list_id": onboarding.id}).where(
        Automation.id == automation.id).execute()
    automation = Automation.get_by_id(automation.id)
    person = reader(team, 3)
    Subscription.create(contact=person, list=onboarding, status="subscribed")
    runs.enter(automation, person, {}, clock.now())
    tick_and_deliver()
    unsubscribe = inbox(person.email)[0]["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    assert public.post("/" + unsubscribe.split("://", 1)[1].partition("/")[2],
                       data={"List-Unsubscribe": "One-Click"}).status_code in (200, 202, 204)
    status = {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == person.id)}
    assert status == {news.id: "subscribed", onboarding.id: "unsubscribed"}
    assert Contact.get_by_id(person.id).status == "active"
    move_clock(ctx, DAY * 2)
    tick_and_deliver()
    assert subjects(person.email) == ["Welcome Reader 3"]
    assert AutomationRun.get(AutomationRun.contact == person.id).state == "exited"
