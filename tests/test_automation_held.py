"""An automation email step whose mail Loft held (app/automations/held.py): the real engine pauses the step's hidden
campaign (no SMTP account; the domain gate over real DNS on 127.0.0.1), the builder, the automations list, the
dashboard and the notice say so (naming the automation and the step, never linking the hidden campaign), a resume
is refused in words while the cause is there and nothing changes, and once fixed the waiting email reaches the real
mail catcher: resumed on the step, by resuming the whole automation, or by the gate's own check."""
import email
import email.policy

import pytest

from app.automations import held
from app.automations import runs
from app.automations import scheduler
from app.models import Automation
from app.models import AutomationStep
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import DomainPause
from app.models import Notice
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.senders import domains
from app.sending import ledger
from tasks import automations as automation_tasks
from tasks import deliverability as deliverability_tasks
from tests.accounts_support import make_member
from tests.conftest import soup

BODY = '<p>Hi {{ contact.name }}</p><p><a href="https://example.org/start">Start here</a></p>'
DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@acme.example"


def welcome(team):
    """A live, hand-started automation with one email step, From the verified acme.example."""
    automation = Automation.create(team=team, name="Onboarding", trigger={"kind": "manual"}, goal={},
                                   state="live", from_name="Acme", from_email="hello@acme.example")
    step = AutomationStep.create(automation=automation, kind="email",
                                 config={"subject": "Welcome aboard", "preheader": "", "kind": "html", "body": BODY,
                                         "template_id": None, "from_name": "", "from_email": ""})
    automation.first_step_id = step.id
    automation.save()
    return automation, step


def enter_and_tick(app, automation, number=0):
    """A contact enters, then the automations task does what its minute does: the step queues the email and the
    sending task runs the engine for the step's campaign (huey runs inline in tests)."""
    with app.app_context():
        reader = Contact.get((Contact.team == automation.team_id) & (Contact.email == f"reader{number}@example.com"))
        runs.enter(Automation.get_by_id(automation.id), reader)
        automation_tasks.run_tick()


def hidden(step):
    return Campaign.get_by_id(AutomationStep.get_by_id(step.id).campaign_id)


def delivered(address):
    found = []
    for row in CaughtMessage.select().order_by(CaughtMessage.id):
        message = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
        if message["To"].addresses[0].addr_spec == address:
            found.append(message)
    return found


def resume_url(automation, step):
    return f"/automations/{automation.id}/steps/{step.id}/resume"


def pause_accounts(team):
    SmtpAccount.update(status="paused", paused_reason="Paused by Ada").where(SmtpAccount.team == team).execute()


def test_no_smtp_account_holds_the_step_the_builder_says_so_and_resume_sends_it(app, web, ready_team):
    team, _news = ready_team
    automation, step = welcome(team)
    pause_accounts(team)
    enter_and_tick(app, automation)

    campaign = hidden(step)
    assert campaign.state == "paused" and "no active SMTP account" in campaign.state_reason
    assert ledger.status_counts(campaign.id) == {"queued": 1} and CaughtMessage.select().count() == 0
    assert held.held_steps(automation)[step.id].waiting == 1

    # The builder: a summary at the top and the step's card, with why, since when and how many.
    page = soup(web.get(f"/automations/{automation.id}"))
    summary = page.select_one("#held-summary").get_text(" ", strip=True)
    assert "1 email step on hold" in summary and "no active SMTP account" in summary and "(1 waiting)" in summary
    card = page.select_one(f"#held-{step.id}")
    text = card.get_text(" ", strip=True)
    assert "Emails on hold since" in text and "1 waiting" in text and "“Local” is paused" in text
    assert "Resume sending once an account can send again" in text and "the campaign" not in text.lower()
    assert card.select_one(f'form[action="{resume_url(automation, step)}"] input[name=csrf_token]')
    # No page links to the hidden campaign.
    assert f"/campaigns/{campaign.id}" not in page.decode()

    # The list marks the automation; the dashboard points at the automation, not at the campaign.
    listing = soup(web.get("/automations/"))
    assert "1 email step on hold" in listing.select_one(f"#automation-{automation.id}").get_text(" ", strip=True)
    dashboard = web.get("/dashboard").get_data(as_text=True)
    assert f"/automations/{automation.id}" in dashboard and f"/campaigns/{campaign.id}" not in dashboard

    # The notice names the automation and the step, links the automation, and the email does too.
    (notice,) = Notice.select().where(Notice.kind == "engine_pause")
    assert notice.campaign_id is None and notice.data["automation"] == automation.id
    assert notice.data["step"] == step.id
    assert "“Welcome aboard” of the automation “Onboarding”" in notice.subject
    assert "Resume sending" in notice.text and campaign.name not in notice.subject + notice.text
    assert "resume the campaign" not in notice.text.lower()
    notices = web.get("/notices/").get_data(as_text=True)
    assert f'href="/automations/{automation.id}"' in notices and f"/campaigns/{campaign.id}" not in notices

    # Resume while the account is still paused: refused in place, with the cause; nothing changes.
    refused = web.post(resume_url(automation, step), headers={"HX-Request": "true"})
    assert refused.status_code == 422
    error = soup(refused).select_one(f"#held-{step.id}-error").get_text(" ", strip=True)
    assert "no active SMTP account" in error and "“Local” is paused" in error
    assert hidden(step).state == "paused" and ledger.status_counts(campaign.id) == {"queued": 1}

    # Fixed: the account sends again. Resume: the email reaches the catcher, and the card says so.
    SmtpAccount.update(status="active", paused_reason="").where(SmtpAccount.team == team).execute()
    done = web.post(resume_url(automation, step), headers={"HX-Request": "true"})
    assert done.status_code == 200 and "Sending again" in done.get_data(as_text=True)
    assert soup(done).select_one(f"#held-{step.id}") is None
    (message,) = delivered("reader0@example.com")
    assert message["Subject"] == "Welcome aboard"
    assert hidden(step).state == "sending" and ledger.status_counts(campaign.id) == {"sent": 1}
    assert held.held_steps(automation) == {}
    # Resuming what is not on hold says so.
    again = web.post(resume_url(automation, step), headers={"HX-Request": "true"})
    assert again.status_code == 422 and "not on hold" in again.get_data(as_text=True)


@pytest.fixture
def gated(app, dns_zone, ready_team):
    """The domain gate on (through the app's config), acme.example's DNS served on 127.0.0.1 without DMARC."""
    app.config["DOMAIN_HEALTH_GATE"] = True
    team, _news = ready_team
    with app.app_context():
        row = SenderDomain.get((SenderDomain.team == team) & (SenderDomain.domain == "acme.example"))
        dns_zone.publish(domains.dkim_name(row), domains.dkim_record(row))
    dns_zone.publish("acme.example", "v=spf1 ip4:192.0.2.25 ~all")
    dns_zone.add("acme.example", "MX", "10 mx.acme.example.")
    yield team, dns_zone
    app.config["DOMAIN_HEALTH_GATE"] = False


def held_by_the_gate(app, team, dns_zone):
    """The step queues its email (the campaign sending), then the gate's five-minute check finds no DMARC and
    pauses the step's campaign; the engine's run that follows sends nothing."""
    automation, step = welcome(team)
    with app.app_context():
        reader = Contact.get((Contact.team == team) & (Contact.email == "reader0@example.com"))
        runs.enter(Automation.get_by_id(automation.id), reader)
        scheduler.tick()
        assert hidden(step).state == "sending" and ledger.status_counts(hidden(step).id) == {"queued": 1}
        deliverability_tasks.check_sending_domains()
        automation_tasks.run_tick()
    campaign = hidden(step)
    assert campaign.state == "paused" and "acme.example has no DMARC record" in campaign.state_reason
    assert DomainPause.select().where(DomainPause.campaign == campaign.id).exists()
    assert ledger.status_counts(campaign.id) == {"queued": 1}
    return automation, step, campaign


def test_the_domain_gate_holds_the_step_resume_is_refused_until_dmarc_is_back(app, web, gated):
    team, dns_zone = gated
    automation, step, campaign = held_by_the_gate(app, team, dns_zone)
    assert CaughtMessage.select().count() == 0

    # The gate's alert names the automation's email, not the hidden campaign.
    (alert,) = Notice.select().where(Notice.kind == "domain_health")
    assert "the email “Welcome aboard” of the automation “Onboarding”" in alert.text
    assert campaign.name not in alert.text and alert.data["automations"] == [automation.id]

    card = soup(web.get(f"/automations/{automation.id}")).select_one(f"#held-{step.id}").get_text(" ", strip=True)
    assert "acme.example has no DMARC record" in card

    refused = web.post(resume_url(automation, step))  # without HTMX: the whole builder, the error at the step
    assert refused.status_code == 422
    error = soup(refused).select_one(f"#held-{step.id}-error").get_text(" ", strip=True)
    assert "It cannot send yet" in error and "acme.example has no DMARC record" in error
    assert hidden(step).state == "paused" and CaughtMessage.select().count() == 0

    # Resuming the whole automation (pause, resume) resumes the step too once DMARC is published again; the
    # resume looks at DNS afresh rather than at the check from before.
    web.post(f"/automations/{automation.id}/state", {"action": "pause"})
    still = web.post(f"/automations/{automation.id}/state", {"action": "resume"}, follow_redirects=True)
    assert "1 email step still on hold" in still.get_data(as_text=True)
    assert Automation.get_by_id(automation.id).state == "live" and hidden(step).state == "paused"
    web.post(f"/automations/{automation.id}/state", {"action": "pause"})
    dns_zone.publish("_dmarc.acme.example", DMARC)
    web.post(f"/automations/{automation.id}/state", {"action": "resume"})
    assert hidden(step).state == "sending"
    assert len(delivered("reader0@example.com")) == 1


def test_the_gates_own_check_resumes_a_held_step_once_the_domain_passes(app, gated):
    """Automations run unattended: as for a campaign it paused, the gate resumes the step's campaign itself."""
    team, dns_zone = gated
    automation, step, campaign = held_by_the_gate(app, team, dns_zone)
    dns_zone.publish("_dmarc.acme.example", DMARC)
    with app.app_context():
        deliverability_tasks.check_sending_domains()
    assert hidden(step).state == "sending"
    assert len(delivered("reader0@example.com")) == 1


def test_a_guest_or_author_cannot_resume_and_another_teams_step_is_not_found(app, web, ready_team):
    team, _news = ready_team
    automation, step = welcome(team)
    pause_accounts(team)
    enter_and_tick(app, automation)
    SmtpAccount.update(status="active", paused_reason="").where(SmtpAccount.team == team).execute()

    for role in ("guest", "author"):  # they see the hold, but resuming is "send"'s
        _user, member = make_member(app, team, role)
        assert member.post(resume_url(automation, step)).status_code == 403
        page = soup(member.get(f"/automations/{automation.id}"))
        assert "An Administrator or Manager can resume it" in page.select_one(f"#held-{step.id}").get_text(" ")
        assert page.select_one(f'form[action="{resume_url(automation, step)}"]') is None
    assert hidden(step).state == "paused"

    # Another team's administrator: this team's automation and step are simply not found, nothing resumed.
    other = Team.create(name="Globex")
    _outsider, outsider = make_member(app, other, "admin", email="admin@globex.example")
    assert outsider.post(resume_url(automation, step)).status_code == 404
    their_automation, their_step = welcome(other)
    # Their own automation with our step's id: not found either.
    assert outsider.post(resume_url(their_automation, step)).status_code == 404
    assert web.post(resume_url(their_automation, their_step)).status_code == 404
    assert hidden(step).state == "paused" and CaughtMessage.select().count() == 0


def test_a_removed_steps_held_mail_is_resumed_from_the_builders_summary(app, web, ready_team):
    """A step removed while its mail was held has no card: the summary at the top offers its Resume."""
    from app import clock
    from app.automations import flow
    team, _news = ready_team
    automation, step = welcome(team)
    pause_accounts(team)
    enter_and_tick(app, automation)
    with app.app_context():
        flow.remove_step(Automation.get_by_id(automation.id), AutomationStep.get_by_id(step.id), clock.now())
    page = soup(web.get(f"/automations/{automation.id}"))
    assert page.select_one(f"#held-{step.id}") is None  # no card
    line = page.select_one(f"#held-summary-{step.id}")
    assert "A removed step" in line.get_text(" ") and line.select_one(f'form[action="{resume_url(automation, step)}"]')

    refused = web.post(resume_url(automation, step))
    assert refused.status_code == 422
    assert "no active SMTP account" in soup(refused).select_one(f"#held-{step.id}-error").get_text(" ")
    SmtpAccount.update(status="active", paused_reason="").where(SmtpAccount.team == team).execute()
    assert web.post(resume_url(automation, step)).status_code == 302
    assert len(delivered("reader0@example.com")) == 1 and held.held_steps(automation) == {}
