"""The automation email step (app/automations/mail.py): one email per (run, step), sent by the real campaign engine
to the real mail catcher, tracked, re-sent once on re-entry, and the exits a bounce or a complaint makes."""
import datetime
import email
import email.policy
import re

import pytest
from playhouse.migrations import Runner

from app.automations import mail
from app.automations import runs
from app.bounces import outcomes
from app.bounces.parse import parse_message
from app.campaigns import listing
from app.cli import MIGRATIONS_DIR
from app.db import db
from app.dashboard import services as dashboard
from app.consent import suppression
from app.reports import services as reports
from app.email_templates.services import TemplateError
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Notice
from app.models import Send
from app.models import Team
from app.models import Template
from app.models import utcnow
from tasks import sending as sending_tasks
from tests.bounces_support import arf
from tests.bounces_support import dsn
from tests.tracking_support import BROWSER

BODY = '<p>Hi {{ contact.name }}</p><p><a href="https://example.org/start">Start here</a></p>'


def email_config(subject="Welcome {{ contact.name }}", body=BODY, **more):
    config = {"subject": subject, "preheader": "", "kind": "html", "body": body, "template_id": None,
              "from_name": "", "from_email": ""}
    config.update(more)
    return config


def make_automation(team, reentry="never", state="live", configs=(None,)):
    """An automation whose steps are email steps in a row (a config each), From the verified acme.example."""
    automation = Automation.create(team=team, name="Welcome", trigger={"kind": "manual"}, goal={}, reentry=reentry,
                                   state=state, from_name="Acme", from_email="hello@acme.example")
    steps = [AutomationStep.create(automation=automation, kind="email", config=config or email_config())
             for config in configs]
    for step, following in zip(steps, steps[1:]):
        AutomationStep.update(next_id=following.id).where(AutomationStep.id == step.id).execute()
    automation.first_step_id = steps[0].id
    automation.save()
    return automation, [AutomationStep.get_by_id(s.id) for s in steps]


def contact(team, number):
    return Contact.get((Contact.team == team) & (Contact.email == f"reader{number}@example.com"))


def deliver(step):
    """What the sending task does for the hidden campaign: one engine run (bounce handling included)."""
    step = AutomationStep.get_by_id(step.id)
    return sending_tasks.run_campaign(step.campaign_id)


def caught(address=None):
    messages = [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
                for m in CaughtMessage.select().order_by(CaughtMessage.id)]
    return [m for m in messages if address is None or m["To"].addresses[0].addr_spec == address]


def test_one_email_per_run_and_step_through_the_campaign_engine(ctx, ready_team):
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    reader = contact(team, 0)
    now = utcnow()
    run = runs.enter(automation, reader, now=now)
    assert mail.queue_email(run, step, reader, now) == "queued"
    assert mail.queue_email(run, step, reader, now) == "queued"  # a retry: nothing more is written
    step = AutomationStep.get_by_id(step.id)
    campaign = Campaign.get_by_id(step.campaign_id)
    assert campaign.state == "sending" and campaign.subject == "Welcome {{ contact.name }}"
    assert campaign.from_email == "hello@acme.example" and campaign.from_name == "Acme"
    assert Send.select().where(Send.campaign == campaign.id).count() == 1

    result = deliver(step)
    assert result.outcome == "idle", result
    (message,) = caught()
    assert message["Subject"] == "Welcome Reader 0"
    assert message["DKIM-Signature"] and "d=acme.example" in message["DKIM-Signature"]
    assert "mailto:" in message["List-Unsubscribe"] and message["List-Unsubscribe-Post"]
    assert message["X-Loft-Token"]
    html = message.get_body(("html",)).get_content()
    assert "/c/" in html and "/o/" in html and "1 Main Street, Springfield" in html

    # Called again after the message went (the engine redoing the step after a crash): still exactly one.
    assert mail.queue_email(run, step, reader, now) == "queued"
    deliver(step)
    assert len(caught()) == 1
    # Never complete, never announced, never listed with the team's campaigns.
    assert Campaign.get_by_id(campaign.id).state == "sending"
    assert not Notice.select().where(Notice.campaign_id == campaign.id).exists()
    page = listing.campaign_page(team, listing.CampaignFilter())
    assert campaign.id not in [row["campaign"].id for row in page.rows]
    assert mail.send_of(run, step.id).status == "sent"
    # Nor counted or shown as one: the dashboard's "sending" figure, its first-steps list, the recent reports.
    assert dashboard.overview(team)["sending"] == 0
    assert campaign.id not in [row["campaign"].id for row in reports.recent_campaigns(team)]
    assert dict((key, done) for key, _label, done in dashboard.next_steps(team))["campaign"] is False
    assert page.any_campaign is False


def test_unmailable_contacts_are_skipped_with_the_reason(ctx, ready_team):
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    now = utcnow()
    reader = contact(team, 1)
    run = runs.enter(automation, reader, now=now)
    suppression.suppress(team.id, "email", reader.email, "manual")
    assert mail.queue_email(run, step, reader, now) == "skipped:suppressed"
    gone = contact(team, 4)  # unsubscribed
    ghost = AutomationRun.create(automation=automation, team=team, contact=gone, entry=1, data={}, step_id=step.id)
    assert mail.queue_email(ghost, step, gone, now) == "skipped:contact_unsubscribed"
    assert Send.select().count() == 0
    unverified = runs.enter(automation, contact(team, 2), now=now)
    Automation.update(from_email="hello@unverified.example").where(Automation.id == automation.id).execute()
    assert mail.queue_email(unverified, step, contact(team, 2), now) == "skipped:sender_not_verified"
    assert Send.select().count() == 0


def test_an_edit_reaches_the_runs_that_have_not_reached_the_step(ctx, ready_team):
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    now = utcnow()
    first, second = contact(team, 0), contact(team, 1)
    mail.queue_email(runs.enter(automation, first, now=now), step, first, now)
    deliver(step)
    AutomationStep.update(config=email_config(subject="Still there, {{ contact.name }}?")) \
        .where(AutomationStep.id == step.id).execute()
    step = AutomationStep.get_by_id(step.id)
    mail.queue_email(runs.enter(automation, second, now=now), step, second, now)
    deliver(step)
    assert caught(first.email)[0]["Subject"] == "Welcome Reader 0"
    assert caught(second.email)[0]["Subject"] == "Still there, Reader 1?"


def test_another_teams_template_is_never_used(ctx, ready_team):
    team, _news = ready_team
    other = Team.create(name="Other")
    foreign = Template.create(team=other, name="Theirs", body="<p>secret</p>")
    own = Template.create(team=team, name="Ours", body="<p>{{ content }}</p>")
    automation, (step,) = make_automation(team, configs=[email_config(template_id=foreign.id)])
    assert mail.campaign_for(step).template_id is None
    AutomationStep.update(config=email_config(template_id=own.id)).where(AutomationStep.id == step.id).execute()
    assert mail.campaign_for(AutomationStep.get_by_id(step.id)).template_id == own.id


def click_link(message):
    html = message.get_body(("html",)).get_content()
    return re.search(r'href="(https?://[^"]*/c/[^"]+)"', html).group(1)


def test_engaged_is_this_runs_email_clicked_over_http(ctx, ready_team, public):
    team, _news = ready_team
    automation, (step,) = make_automation(team, reentry="after_end")
    now = utcnow()
    clicker, idle = contact(team, 0), contact(team, 1)
    run_a, run_b = runs.enter(automation, clicker, now=now), runs.enter(automation, idle, now=now)
    for run, person in ((run_a, clicker), (run_b, idle)):
        assert mail.queue_email(run, step, person, now) == "queued"
    deliver(step)
    assert not mail.engaged(run_a, step.id, "clicked") and not mail.engaged(run_a, step.id, "opened")
    # Read an hour later (a click seconds after the send is a link scanner's, which never counts).
    Send.update(sent_at=utcnow() - datetime.timedelta(hours=1)).execute()
    url = click_link(caught(clicker.email)[0])
    path = url.split("://", 1)[1].partition("/")[2]
    response = public.get("/" + path, headers={"User-Agent": BROWSER}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 302 and response.headers["Location"].startswith("https://example.org/start")
    assert mail.engaged(run_a, step.id, "clicked") and mail.engaged(run_a, step.id, "opened")
    assert not mail.engaged(run_b, step.id, "clicked")
    assert not mail.engaged(run_a, step.id + 999, "clicked") and not mail.engaged(run_a, step.id, "bounced")

    # Entering again after the end: the same contact gets the email once more, and the old click is not this run's.
    runs.end(run_a.id, "done", now=now)
    again = runs.enter(automation, clicker, now=now)
    assert again is not None and again.entry == 2
    assert mail.queue_email(again, step, clicker, now) == "queued"
    assert mail.queue_email(again, step, clicker, now) == "queued"
    deliver(step)
    assert len(caught(clicker.email)) == 2 and len(caught(idle.email)) == 1
    assert not mail.engaged(again, step.id, "clicked")
    assert mail.engaged(run_a, step.id, "clicked")


def test_a_scanner_click_is_not_engagement(ctx, ready_team, public):
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    now = utcnow()
    reader = contact(team, 2)
    run = runs.enter(automation, reader, now=now)
    mail.queue_email(run, step, reader, now)
    deliver(step)
    url = click_link(caught(reader.email)[0])
    path = url.split("://", 1)[1].partition("/")[2]
    assert public.get("/" + path, headers={"User-Agent": "Proofpoint URL Defense scanner"}).status_code == 302
    assert not mail.engaged(run, step.id, "clicked")


def test_send_test_sends_every_step_now_without_a_run(ctx, ready_team):
    team, _news = ready_team
    automation, steps = make_automation(team, state="draft", configs=[
        email_config(subject="One for {{ contact.name }}"), email_config(subject="Two")])
    wait = AutomationStep.create(automation=automation, kind="wait", config={"mode": "duration", "minutes": 2880})
    # email 1 → wait 2 days → email 2: the test skips the wait.
    AutomationStep.update(next_id=wait.id).where(AutomationStep.id == steps[0].id).execute()
    AutomationStep.update(next_id=steps[1].id).where(AutomationStep.id == wait.id).execute()
    assert mail.send_test(automation, "qa@example.com", contact=contact(team, 3)) == 2
    subjects = [m["Subject"] for m in caught("qa@example.com")]
    assert subjects == ["[Test] One for Reader 3", "[Test] Two"]
    assert Send.select().count() == 0 and AutomationRun.select().count() == 0
    with pytest.raises(TemplateError):
        mail.send_test(automation, "not an address")
    assert len(caught()) == 2


def test_send_test_needs_a_verified_sender(ctx, ready_team):
    team, _news = ready_team
    automation, _steps = make_automation(team, state="draft")
    Automation.update(from_email="hello@unverified.example").where(Automation.id == automation.id).execute()
    with pytest.raises(TemplateError) as refused:
        mail.send_test(Automation.get_by_id(automation.id), "qa@example.com")
    assert "not verified" in str(refused.value.errors)
    assert len(caught()) == 0


def test_a_hard_bounce_and_a_complaint_end_the_contacts_runs(ctx, ready_team):
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    now = utcnow()
    bouncer, complainer, fine = contact(team, 0), contact(team, 1), contact(team, 2)
    entered = {c.id: runs.enter(automation, c, now=now) for c in (bouncer, complainer, fine)}
    for person in (bouncer, complainer, fine):
        mail.queue_email(entered[person.id], step, person, now)
    deliver(step)
    returned = bytes(CaughtMessage.select().where(CaughtMessage.recipients.contains(bouncer.email)).get().raw)
    report = parse_message(dsn(bouncer.email, "5.1.1", "550 5.1.1 user unknown", returned))
    assert outcomes.apply(team.id, report, "imap")
    complained = bytes(CaughtMessage.select().where(CaughtMessage.recipients.contains(complainer.email)).get().raw)
    assert outcomes.apply(team.id, parse_message(arf(complainer.email, complained)), "imap")
    states = {run.contact_id: (run.state, run.exit_reason) for run in AutomationRun.select()}
    assert states[bouncer.id] == ("exited", "bounced")
    assert states[complainer.id] == ("exited", "complained")
    assert states[fine.id] == ("waiting", "")


def test_a_call_that_finds_the_visit_set_meanwhile_rolls_its_send_back(ctx, ready_team, monkeypatch):
    """Another call set the visit's message between this call's look at the visit and its transaction: this call's
    guarded update changes no row, and its transaction, its own Send row with it, is rolled back. One message."""
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    reader, other = contact(team, 0), contact(team, 1)
    now = utcnow()
    run = runs.enter(automation, reader, now=now)
    campaign_id = mail.campaign_for(step).id
    # The other call's work, committed: the visit holds its message (a Send row, here another contact's, to tell
    # it apart).
    theirs = mail.ledger.queue_one(campaign_id, other.id, other.email)
    AutomationVisit.create(run=run.id, step=step.id, entered_at=now, send_id=theirs)
    looked = AutomationVisit.get(AutomationVisit.run == run.id)
    looked.send_id = None  # what this call saw a moment earlier
    monkeypatch.setattr(mail, "_visit_of", lambda run_id, step_id: looked)

    assert mail.queue_email(run, AutomationStep.get_by_id(step.id), reader, now) == "queued"

    assert AutomationVisit.get(AutomationVisit.run == run.id).send_id == theirs
    assert [s.contact_id for s in Send.select().where(Send.campaign == campaign_id)] == [other.id]


def test_migration_0078_folds_the_mail_rows_into_the_visits_and_goes_down_and_up(ctx, ready_team):
    """Down: the visits' messages become automation_mail rows again. Up: each mail row's message goes onto its visit,
    and a mail row without a visit (a crash between the old batch's two transactions) becomes an open visit holding
    it, so the run, claimed again, finds its email queued."""
    team, _news = ready_team
    automation, (step,) = make_automation(team)
    now = utcnow()
    queued_run = runs.enter(automation, contact(team, 0), now=now)
    assert mail.queue_email(queued_run, step, contact(team, 0), now) == "queued"
    visit = AutomationVisit.get(AutomationVisit.run == queued_run.id)
    AutomationVisit.update(after_event_id=7).where(AutomationVisit.id == visit.id).execute()
    runner = Runner(db.obj, MIGRATIONS_DIR)
    rolled = runner.down(target="0078_visit_holds_the_email")
    assert rolled[-1] == "0078_visit_holds_the_email"
    assert db.execute_sql("SELECT run_id, step_id, send_id, after_event_id FROM automation_mail").fetchall() == [
        (queued_run.id, step.id, visit.send_id, 7)]
    # What the old batch could leave: a mail row whose visit was not yet written.
    orphan = runs.enter(automation, contact(team, 1), now=now)
    db.execute_sql("INSERT INTO automation_mail (run_id, step_id, send_id, after_event_id, created_at) "
                   "VALUES (?, ?, ?, ?, ?)".replace("?", db.param), (orphan.id, step.id, 12345, 3, now))
    assert runner.up() == rolled[::-1]
    rows = {v.run_id: (v.send_id, v.after_event_id, v.outcome) for v in AutomationVisit.select()}
    assert rows == {queued_run.id: (visit.send_id, 7, ""), orphan.id: (12345, 3, "")}
    assert "automation_mail" not in db.get_tables()
    assert mail.queue_email(orphan, step, contact(team, 1), now) == "queued"  # held: nothing queued again
    assert Send.select().where(Send.contact == contact(team, 1).id).count() == 0
