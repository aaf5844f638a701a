"""One set of numbers per campaign on every page (issue 9, point 17).

A paused campaign showed 109, 110 and 111 sent on three pages, "See failed messages" showed
none while the tile said 12 failed or bounced, the A/B winner's column mixed the test with the
rest of the audience, and "Time left" ignored the A/B wait. app.campaigns.stats now counts, and
the campaign list, the campaign page, the report (and its CSV) and the dashboard all read it.
"""
import csv
import datetime
import io
import re

import pytest

from app.campaigns import ab_testing
from app.campaigns import stats
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import Membership
from app.models import Send
from app.models import Variant
from app.models import utcnow
from app.reports import rollup
from tests.conftest import soup

# Sends of the campaign by status: (status, how many, accepted by a server earlier?)
LEDGER = [("sent", 7, True), ("bounced", 2, False), ("bounced", 3, True), ("failed", 4, False),
          ("skipped", 1, False), ("queued", 5, False), ("deferred", 2, False), ("sending", 1, False)]
SENT = 7 + 2 + 3  # delivered + bounced (refused at once or bounced later)
PROBLEMS = 2 + 3 + 4  # bounced + failed
TOTAL = sum(n for _status, n, _accepted in LEDGER)


def team_of(admin):
    return Membership.get(Membership.user == admin).team


def make_contacts(team, count, prefix):
    return [Contact.create(team=team, email=f"{prefix}{i}@example.org", domain="example.org") for i in range(count)]


@pytest.fixture
def paused(app, admin):
    """A paused campaign with sends in every status, and counters elsewhere that drifted:
    the engine's Campaign.sent/failed columns and report aggregates that lag behind."""
    team = team_of(admin)
    campaign = Campaign.create(team=team, name="Autumn", subject="Hi", body="<p>Hi</p>", from_email="news@acme.test",
                               state="paused", started_at=utcnow() - datetime.timedelta(hours=1), total=TOTAL,
                               frozen_at=utcnow(), sent=SENT + 1, failed=2)  # the old counters disagree on purpose
    contacts = iter(make_contacts(team, TOTAL, "p"))
    an_hour_ago = utcnow() - datetime.timedelta(hours=1)
    for status, count, accepted in LEDGER:
        for _ in range(count):
            contact = next(contacts)
            send = Send.create(campaign=campaign, contact=contact, email=contact.email, status=status,
                               sent_at=an_hour_ago if accepted else None)
            if accepted and status == "sent" and send.id % 2:  # the aggregator has seen only some
                Event.create(team=team, contact=contact, campaign_id=campaign.id, type="sent", at=an_hour_ago,
                             data={"send": send.id})
    return campaign


def _dd(page, term):
    for dt in page.select("dt"):
        if dt.get_text(strip=True) == term:
            return dt.find_next_sibling("dd").get_text(" ", strip=True).split(" ")[0]
    raise AssertionError(f"no {term}")


def _metric(page, name):
    return page.select_one(f'[data-metric="{name}"] dd').get_text(" ", strip=True).split(" ")[0]


def test_every_page_shows_the_same_numbers(app, web, paused):
    with app.app_context():
        rollup.run()
        counts = stats.counts(paused)
    assert (counts["sent"], counts["delivered"], counts["bounced"], counts["failed"], counts["problems"],
            counts["remaining"], counts["total"]) == (SENT, 7, 5, 4, PROBLEMS, 8, TOTAL)

    row = soup(web.get("/campaigns/")).select_one(f'a[href="/campaigns/{paused.id}"]').find_parent("tr")
    assert row.select_one('[data-label="Sent"]').get_text(" ", strip=True).startswith(f"{SENT} ({PROBLEMS} failed")

    progress = soup(web.get(f"/campaigns/{paused.id}/progress"))
    assert _dd(progress, "Sent") == str(SENT)
    assert _dd(progress, "Failed or bounced") == str(PROBLEMS)
    assert _dd(progress, "Remaining") == "8"
    assert progress.select_one(f'a[href="/campaigns/{paused.id}/failed"]') is not None
    failed = soup(web.get(f"/campaigns/{paused.id}/failed"))
    assert len(failed.select("tbody tr")) == PROBLEMS  # the list behind the tile has what the tile counts

    report = soup(web.get(f"/reports/campaigns/{paused.id}"))
    assert _metric(report, "sent") == str(SENT)
    assert _metric(report, "bounced") == "5"
    assert _metric(report, "delivered") == "7"

    rows = list(csv.reader(io.StringIO(web.get(f"/reports/campaigns/{paused.id}.csv").get_data(as_text=True))))
    summary = {r[2]: r[3] for r in rows if r[0] == "summary"}
    assert (summary["sent"], summary["bounced"], summary["delivered"]) == (str(SENT), "5", "7")

    dashboard = soup(web.get("/reports/"))
    recent = dashboard.select_one(f'#recent a[href="/reports/campaigns/{paused.id}"]').find_parent("tr")
    assert recent.select_one('[data-label="Sent"]').get_text(strip=True) == str(SENT)


@pytest.fixture
def ab_campaign(app, admin):
    """An A/B test on 20 recipients (sample 20%: 4 sends, A and B alternately), the rest held."""
    team = team_of(admin)
    campaign = Campaign.create(team=team, name="Subject test", subject="Hello A", body="<p>Hi</p>",
                               from_email="news@acme.test", state="sending",
                               ab_test={"sample_percent": 20, "wait_minutes": 60, "metric": "opens"},
                               started_at=utcnow() - datetime.timedelta(minutes=10), frozen_at=utcnow(), total=20)
    Variant.create(campaign=campaign, label="A", subject="Hello A", body="<p>Hi</p>")
    Variant.create(campaign=campaign, label="B", subject="Hello B", body="<p>Hi</p>")
    for contact in make_contacts(team, 20, "ab"):
        Send.create(campaign=campaign, contact=contact, email=contact.email, status="queued")
    with app.app_context():
        ab_testing.split_for_ab_test(Campaign.get_by_id(campaign.id))
    return Campaign.get_by_id(campaign.id)


def _deliver(campaign, sends, at):
    for send in sends:
        Send.update(status="sent", sent_at=at).where(Send.id == send.id).execute()
        Event.create(team=campaign.team, contact=send.contact_id, campaign_id=campaign.id, type="sent", at=at,
                     data={"send": send.id})


def _open(campaign, send):
    Event.create(team=campaign.team, contact=send.contact_id, campaign_id=campaign.id, type="opened", at=utcnow(),
                 data={"send": send.id})


def test_ab_test_and_rest_are_shown_apart(app, web, ab_campaign):
    campaign = ab_campaign
    sample = list(Send.select().where(Send.campaign == campaign.id, Send.status == "queued").order_by(Send.id))
    assert len(sample) == 4 and Send.select().where(Send.status == "held").count() == 16
    _deliver(campaign, sample, utcnow() - datetime.timedelta(minutes=9))
    b_sends = [s for s in sample if Send.get_by_id(s.id).variant.label == "B"]
    for send in b_sends:  # B: 2 of 2 opened; A: none
        _open(campaign, send)

    # During the wait: the rest is held, and "Time left" says when the winner is picked.
    waiting = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    assert re.fullmatch(r"the winner is picked in 0:[45]\d:\d\d, then 16 messages go out", _dd_text(waiting, "Time left"))
    with app.app_context():
        live = stats.progress(Campaign.get_by_id(campaign.id))
    assert live["winner_in"] <= datetime.timedelta(minutes=50) and live["eta"] is None

    with app.app_context():
        winner = ab_testing.decide_ab_winner(Campaign.get_by_id(campaign.id))
    assert winner.label == "B"
    rest = list(Send.select().where(Send.campaign == campaign.id, Send.status == "queued"))
    assert len(rest) == 16
    _deliver(campaign, rest, utcnow())
    _open(campaign, rest[0])  # the rest had little time: 1 open in 16

    progress = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    rows = {(tr["data-part"], tr["data-variant"]): [td.get_text(" ", strip=True) for td in tr.select("td")]
            for tr in progress.select("#ab-progress tbody tr")}
    assert rows[("test", "B")][2:4] == ["2", "2 (100.0%)"]  # B's test result, not diluted by the rest
    assert rows[("test", "A")][2:4] == ["2", "0 (0.0%)"]
    assert rows[("rest", "B")][2:4] == ["16", "1 (6.2%)"]

    with app.app_context():
        rollup.run()
    report = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    opens = {td["data-variant"]: td.get_text(strip=True) for td in report.select('#variants tr[data-metric="open_rate"] td')}
    assert opens == {"A": "0.0%", "B": "100.0%", "rest": "6.3%"} or opens == {"A": "0.0%", "B": "100.0%", "rest": "6.2%"}
    sent = {td["data-variant"]: td.get_text(strip=True) for td in report.select('#variants tr[data-metric="sent"] td')}
    assert sent == {"A": "2", "B": "2", "rest": "16"}
    assert _metric(report, "sent") == "20" == _dd(progress, "Sent")


def _dd_text(page, term):
    for dt in page.select("dt"):
        if dt.get_text(strip=True) == term:
            return dt.find_next_sibling("dd").get_text(" ", strip=True)
    raise AssertionError(f"no {term}")


def test_time_left_adds_the_ab_wait_to_the_sending_time(app, ab_campaign):
    campaign = ab_campaign
    sample = list(Send.select().where(Send.campaign == campaign.id, Send.status == "queued").order_by(Send.id))
    now = utcnow()
    Campaign.update(started_at=now - datetime.timedelta(minutes=10)).where(Campaign.id == campaign.id).execute()
    _deliver(campaign, sample[:2], now - datetime.timedelta(seconds=5))  # 2 in the last minute: 2/60 per second
    with app.app_context():
        live = stats.progress(Campaign.get_by_id(campaign.id), now=now)
    # 2 sample sends left (60 s at this pace) but the winner is picked in 50 minutes; then 16 more (480 s).
    assert live["winner_in"] == datetime.timedelta(minutes=50)
    assert live["eta"] == datetime.timedelta(minutes=50, seconds=480)


def test_a_plural_says_one_person(app, web, admin):
    from app.wording import plural
    assert (plural(1, "person"), plural(2, "person"), plural(1204, "message"), plural(0, "recipient")) == (
        "1 person", "2 people", "1,204 messages", "0 recipients")
