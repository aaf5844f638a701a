"""Warm-up plans in the engine (issue 15): the lower of an account's and its From domain's allowance
holds exactly across runs; a campaign larger than the allowance sends its most engaged contacts first,
waits (still "sending", Campaign.waiting_until set) and is continued by a huey task scheduled for the
moment the allowance is back, until it completes; the campaign page says where the plan stands.

Real engine runs into a real aiosmtpd server on loopback; time is driven by moving the ledger's sent_at
back (the engine counts a rolling 24 hours from its clock) and by the `now` the pure functions take."""
import datetime
import zoneinfo

import pytest

from app.campaigns import schedule
from app.campaigns import states
from app.models import Campaign
from app.models import Contact
from app.models import MailingList
from app.models import Send
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import domains
from app.sending import ledger
from app.sending import shares
from tasks import huey
from tasks import sending as sending_tasks
from tests.conftest import soup
from tests.sending_support import FAST_SENDING
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses
from tests.sending_support import two_campaigns_sent_at_once

DAY = datetime.timedelta(days=1)


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(FAST_SENDING)
    return ctx


def domain_plan(team, preset="fixed", first_day=10, target=0, started=None, name="acme.test"):
    """A verified sender domain (with its DKIM key) that campaigns From news@acme.test use, with a plan."""
    row = domains.add_domain(team, name)
    SenderDomain.update(verified_at=utcnow(), warmup_started_on=started or utcnow().date(), warmup_preset=preset,
                        warmup_first_day=first_day, warmup_target=target,
                        warmup_growth_percent=100).where(SenderDomain.id == row.id).execute()
    return SenderDomain.get_by_id(row.id)


def fixed(first_day):
    return dict(warmup_started_on=utcnow().date(), warmup_preset="fixed", warmup_first_day=first_day)


# --- The lower of account and domain, exact across runs -----------------------------------------------

def test_a_domain_plan_caps_every_account_and_both_runs_together(ctx, smtp):
    ctx.config.update(SEND_PERMIT_BLOCK=5)
    server = smtp(delay=0.005)
    team = make_team()
    one = make_account(team, server.port, name="One", max_connections=2)
    two = make_account(team, server.port, name="Two", max_connections=2)
    domain_plan(team, first_day=13)  # not a multiple of the block
    # Each campaign larger than the allowance, so neither finishes holding a permit it no longer needs.
    campaigns, results = two_campaigns_sent_at_once(ctx, team, recipients=20)

    assert server.handler.total() == 13
    assert sum(statuses(c).get("sent", 0) for c in campaigns) == 13
    through = {a.id: Send.select().where((Send.smtp_account == a) & (Send.status == "sent")).count() for a in (one, two)}
    assert sum(through.values()) == 13 and all(through.values()), through  # both accounts, one allowance
    for result in results.values():
        assert result.outcome == "waiting" and result.reason.startswith(
            "acme.test reached its warm-up limit for today (13 messages)")
        assert result.resume_at is not None
    assert {c.state for c in Campaign.select()} == {"sending"}


@pytest.mark.parametrize("account_cap, domain_cap", [(4, 9), (9, 4)])
def test_the_lower_of_the_account_and_the_domain_allowance_holds(ctx, smtp, account_cap, domain_cap):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 12, server.port, **fixed(account_cap))
    domain_plan(team, first_day=domain_cap)
    result = run(campaign.id)
    assert server.handler.total() == 4 and statuses(campaign) == {"sent": 4, "queued": 8}
    assert result.resume_at is not None


def test_a_domain_plan_counts_mail_from_its_subdomains_and_not_from_other_domains(ctx, smtp):
    server = smtp()
    team = make_team()
    account = make_account(team, server.port)
    domain_plan(team, first_day=5)
    earlier = [make_campaign(team, state="completed", name=n, from_email=f)
               for n, f in (("Sub", "news@mail.acme.test"), ("Other", "news@other.test"))]
    contacts = make_contacts(team, 6, prefix="earlier")
    for campaign, count in zip(earlier, (3, 6)):
        for contact in contacts[:count]:
            Send.create(campaign=campaign, contact=contact, email=contact.email, status="sent",
                        smtp_account=account, sent_at=utcnow() - datetime.timedelta(hours=2))
    mailing_list = MailingList.create(team=team, name="Newsletter")
    make_contacts(team, 10, mailing_list)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)
    run(campaign.id)
    assert statuses(campaign) == {"sent": 2, "queued": 8}  # 5 − the 3 From mail.acme.test


# --- When the allowance is back, in words and in time ----------------------------------------------------

def test_a_fixed_cap_comes_back_when_the_first_message_of_the_window_is_24_hours_old():
    now = datetime.datetime(2026, 3, 2, 15, 0)
    times = [datetime.datetime(2026, 3, 2, 9, 0) + datetime.timedelta(minutes=m) for m in range(10)]
    cap = lambda day: 10  # noqa: E731
    assert shares.free_at(times, cap, DAY, now) == datetime.datetime(2026, 3, 3, 9, 0, 1)
    assert shares.free_at(times[:9], cap, DAY, now) == now  # room now
    assert shares.free_at(times + times[:2], cap, DAY, now) == datetime.datetime(2026, 3, 3, 9, 2, 1)


def test_a_growing_plan_comes_back_at_the_next_utc_day_when_its_larger_cap_begins():
    now = datetime.datetime(2026, 3, 2, 15, 0)
    times = [datetime.datetime(2026, 3, 2, 9, 0)] * 50
    doubling = {datetime.date(2026, 3, 2): 50, datetime.date(2026, 3, 3): 100}
    assert shares.free_at(times, doubling.get, DAY, now) == datetime.datetime(2026, 3, 3, 0, 0)
    # The next day's cap already used up by the last 24 hours: the oldest ages out first.
    times = [datetime.datetime(2026, 3, 2, 9, 0)] * 60 + [datetime.datetime(2026, 3, 2, 14, 0)] * 40
    assert shares.free_at(times, doubling.get, DAY, now) == datetime.datetime(2026, 3, 3, 9, 0, 1)


def test_moments_are_said_in_the_teams_time_zone():
    team = Team(time_zone="Europe/Paris")
    now = datetime.datetime(2026, 3, 2, 20, 0)  # 21:00 in Paris
    assert schedule.moment_in_words(team, datetime.datetime(2026, 3, 3, 8, 0), now) == "tomorrow 09:00"
    assert schedule.moment_in_words(team, datetime.datetime(2026, 3, 2, 22, 30), now) == "today 23:30"
    assert schedule.moment_in_words(team, datetime.datetime(2026, 3, 2, 23, 30), now) == "tomorrow 00:30"
    assert schedule.moment_in_words(team, datetime.datetime(2026, 3, 5, 8, 0), now) == "on 2026-03-05 09:00"


# --- The campaign waits, and continues by itself -------------------------------------------------------

def scheduled_sends():
    return [task for task in huey.scheduled() if task.name == "sending.send_campaign"]


def a_day_passes():
    """A day and five minutes go by: everything sent so far was sent more than 24 hours ago, and the
    time a campaign waits for has passed (the stored times move back, the clock stays)."""
    Send.update(sent_at=utcnow() - DAY - datetime.timedelta(minutes=5)).where(Send.status == "sent").execute()
    for campaign in Campaign.select().where(Campaign.waiting_until.is_null(False)):
        Campaign.update(waiting_until=campaign.waiting_until - DAY - datetime.timedelta(minutes=5)).where(
            Campaign.id == campaign.id).execute()


def test_the_scheduled_run_continues_the_campaign_each_day_until_it_completes(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 25, server.port, **fixed(10))
    sending_tasks.send_campaign(campaign.id)  # immediate mode: runs inline
    stored = Campaign.get_by_id(campaign.id)
    assert stored.state == "sending" and statuses(campaign) == {"sent": 10, "queued": 15}
    first = Send.select(Send.sent_at).where(Send.status == "sent").order_by(Send.sent_at).first().sent_at
    assert stored.waiting_until == (first + DAY + datetime.timedelta(seconds=1)).replace(microsecond=0)
    (task,) = scheduled_sends()
    assert task.eta == stored.waiting_until and task.args == (campaign.id,)

    sending_tasks.tick()  # the minute tick leaves a campaign a plan holds alone
    assert statuses(campaign) == {"sent": 10, "queued": 15} and len(scheduled_sends()) == 1

    for day, expected in ((2, {"sent": 20, "queued": 5}), (3, {"sent": 25})):
        (task,) = scheduled_sends()
        a_day_passes()
        (due,) = [t for t in huey.read_schedule(task.eta) if t.name == "sending.send_campaign"]
        huey.execute(due, timestamp=task.eta)
        assert statuses(campaign) == expected, f"day {day}"
    assert Campaign.get_by_id(campaign.id).state == "completed"
    assert server.handler.total() == 25 and not scheduled_sends()


def test_a_campaign_paused_while_it_waits_is_not_sent_by_its_scheduled_run(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 6, server.port, **fixed(2))
    sending_tasks.send_campaign(campaign.id)
    Campaign.update(state="paused").where(Campaign.id == campaign.id).execute()  # noqa: state set as a person would
    a_day_passes()
    (task,) = scheduled_sends()
    huey.execute(task, timestamp=task.eta)
    assert statuses(campaign) == {"sent": 2, "queued": 4} and Campaign.get_by_id(campaign.id).state == "paused"


def test_a_plan_turned_off_lets_the_waiting_campaign_go_on_at_the_next_tick(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, account = launched(team, 6, server.port, **fixed(3))
    sending_tasks.send_campaign(campaign.id)
    sending_tasks.tick()
    assert statuses(campaign) == {"sent": 3, "queued": 3}  # the tick leaves it waiting
    SmtpAccount.update(warmup_started_on=None).where(SmtpAccount.id == account.id).execute()
    assert states.stop_waiting(team.id) == 1  # what saving the account's or a domain's plan does
    sending_tasks.tick()
    assert statuses(campaign) == {"sent": 6} and Campaign.get_by_id(campaign.id).state == "completed"


# --- Most engaged first ----------------------------------------------------------------------------------

def engaged_audience(team, count=8):
    """Contacts whose last human open or click is known for some: reader3 most recent, then reader6,
    reader1; the others never engaged."""
    mailing_list = MailingList.create(team=team, name="Newsletter")
    contacts = make_contacts(team, count, mailing_list)
    for index, hours in ((1, 300), (3, 1), (6, 20)):
        Contact.update(last_activity_at=utcnow() - datetime.timedelta(hours=hours)).where(
            Contact.id == contacts[index].id).execute()
    return mailing_list, contacts


def test_under_a_plan_the_most_engaged_contacts_are_sent_first(ctx, smtp):
    server = smtp()
    team = make_team()
    mailing_list, contacts = engaged_audience(team)
    make_account(team, server.port, **fixed(4))
    campaign = make_campaign(team, [mailing_list])
    assert ledger.engaged_first(campaign)
    ledger.freeze_audience(campaign)
    order = [s.contact_id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]
    ids = [c.id for c in contacts]
    assert order == [ids[3], ids[6], ids[1], ids[0], ids[2], ids[4], ids[5], ids[7]]
    run(campaign.id)
    sent = {s.contact_id for s in Send.select().where((Send.campaign == campaign) & (Send.status == "sent"))}
    assert sent == {ids[3], ids[6], ids[1], ids[0]}


def test_without_a_plan_the_audience_keeps_contact_order(ctx, smtp):
    server = smtp()
    team = make_team()
    mailing_list, contacts = engaged_audience(team)
    make_account(team, server.port, per_day=4)
    campaign = make_campaign(team, [mailing_list])
    assert not ledger.engaged_first(campaign)
    ledger.freeze_audience(campaign)
    order = [s.contact_id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]
    assert order == [c.id for c in contacts]


def test_a_domain_plan_alone_orders_the_audience_too(ctx, smtp):
    team = make_team()
    mailing_list, contacts = engaged_audience(team)
    make_account(team, 9)
    domain_plan(team, first_day=3)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign, chunk=2)  # slices of the order, each written in order
    order = [s.contact_id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]
    ids = [c.id for c in contacts]
    assert order == [ids[3], ids[6], ids[1], ids[0], ids[2], ids[4], ids[5], ids[7]]


# --- The campaign page ---------------------------------------------------------------------------------

def test_the_campaign_page_says_the_day_of_the_plan_what_went_today_and_when_it_resumes(app, web, admin, smtp):
    app.config.update(SEND_FLUSH_INTERVAL=0.05, SEND_STATE_INTERVAL=0.1)
    server = smtp()
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        Team.update(postal_address="1 Main Street, Springfield", time_zone="Europe/Paris").where(
            Team.id == team.id).execute()
        team = Team.get_by_id(team.id)
        # Double daily from 50 to 500,000: 14 days; started two days ago, day 3 allows 200.
        domain_plan(team, preset="double", first_day=50, target=500_000,
                    started=utcnow().date() - datetime.timedelta(days=2))
        account = make_account(team, server.port)
        mailing_list = MailingList.create(team=team, name="Earlier")
        earlier = make_campaign(team, state="completed", name="Earlier")
        for contact in make_contacts(team, 200, mailing_list, prefix="earlier"):
            Send.create(campaign=earlier, contact=contact, email=contact.email, status="sent",
                        smtp_account=account, sent_at=utcnow() - datetime.timedelta(minutes=30))
        audience = MailingList.create(team=team, name="Newsletter")
        make_contacts(team, 5, audience)
        campaign = make_campaign(team, [audience])
        ledger.freeze_audience(campaign)
        sending_tasks.send_campaign(campaign.id)
        stored = Campaign.get_by_id(campaign.id)
        assert statuses(campaign) == {"queued": 5} and stored.waiting_until is not None
    zone = zoneinfo.ZoneInfo("Europe/Paris")
    local = stored.waiting_until.replace(tzinfo=datetime.timezone.utc).astimezone(zone)
    today = datetime.datetime.now(zone).date()
    label = {today: "today", today + DAY: "tomorrow"}[local.date()]
    notice = soup(web.get(f"/campaigns/{campaign.id}/progress")).select_one(".warmup-status")
    assert notice.get_text(" ", strip=True).startswith(
        f"Warming up: day 3 of 14 · 200 sent today · resumes {label} {local:%H:%M}. Most engaged contacts go first")


def test_allowance_another_live_run_holds_is_waited_for_not_retried_at_once(ctx, smtp):
    """The room left is held as permits by another live run: the estimate says "now", the wait is still
    SOONEST_RESUME, so no run is scheduled to start at once and find nothing again."""
    from app.sending import conclusion
    from app.sending import lease
    server = smtp()
    team = make_team()
    campaign, _, account = launched(team, 6, server.port, **fixed(3))
    other = lease.join_run(campaign.id, "other", 2, FAST_SENDING["SEND_LEASE_SECONDS"])
    assert shares.take_permits(other, account.id, 20, FAST_SENDING["SEND_LEASE_SECONDS"]) == 3
    before = utcnow()
    result = run(campaign.id)
    assert statuses(campaign) == {"queued": 6} and result.resume_at is not None
    assert conclusion.SOONEST_RESUME >= 30
    assert result.resume_at >= (before + datetime.timedelta(seconds=30)).replace(microsecond=0)
    assert Campaign.get_by_id(campaign.id).waiting_until == result.resume_at
