"""The report's numbers at any size without counting a million rows: its A/B table from the aggregates
(AbSplit, AbStat) and the ledger counts without counting the "sent" rows, the same numbers as counting
everything from the ledger and the events.

Migration 0056 goes down and up again on the test's own database (SQLite, or PostgreSQL under make test-pg)."""
import datetime

import pytest
from peewee import fn
from playhouse.migrations import Runner

from app.campaigns import ab_testing
from app.campaigns import stats
from app.cli import MIGRATIONS_DIR
from app.db import db
from app.models import AbSplit
from app.models import AbStat
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import Membership
from app.models import Send
from app.models import Variant
from app.models import utcnow
from app.reports import rollup
from app.reports import services as report_services
from tests.conftest import soup

COMPARED = ("sent", "delivered", "bounced", "failed", "opens", "clicks", "unsubscribes", "complaints", "open_rate",
            "click_rate", "click_to_open")


def team_of(admin):
    return Membership.get(Membership.user == admin).team


@pytest.fixture
def decided(app, admin):
    """A decided A/B test on 40 recipients (sample 25%: 10 sends, A and B in turn; the rest got B), with
    every kind of event: human and machine opens, human and scanner clicks, a click without an open,
    bounces, unsubscribes and complaints, in the sample and in the rest."""
    team = team_of(admin)
    campaign = Campaign.create(team=team, name="Subject test", subject="Hello A", body="<p>Hi</p>",
                               from_email="news@acme.test", state="sending",
                               ab_test={"sample_percent": 25, "wait_minutes": 60, "metric": "opens"},
                               started_at=utcnow() - datetime.timedelta(hours=2), frozen_at=utcnow(), total=40)
    Variant.create(campaign=campaign, label="A", subject="Hello A", body="<p>Hi</p>")
    b = Variant.create(campaign=campaign, label="B", subject="Hello B", body="<p>Hi</p>")
    for i in range(40):
        contact = Contact.create(team=team, email=f"ab{i}@example.org", domain="example.org")
        Send.create(campaign=campaign, contact=contact, email=contact.email, status="queued")
    with app.app_context():
        ab_testing.split_for_ab_test(Campaign.get_by_id(campaign.id))
    sample = list(Send.select().where((Send.campaign == campaign.id) & (Send.status == "queued")).order_by(Send.id))
    assert len(sample) == 10
    Send.update(variant=b, status="queued").where((Send.campaign == campaign.id) & (Send.status == "held")).execute()
    Variant.update(is_winner=True).where(Variant.id == b.id).execute()
    Campaign.update(ab_decided_at=utcnow() - datetime.timedelta(hours=1), state="completed").where(
        Campaign.id == campaign.id).execute()
    sends = list(Send.select().where(Send.campaign == campaign.id).order_by(Send.id))

    def event(send, event_type, **data):
        Event.create(team=team, contact=send.contact_id, campaign_id=campaign.id, type=event_type, at=utcnow(),
                     data=dict(data, send=send.id))
    for number, send in enumerate(sends):
        bounced = number % 9 == 4
        Send.update(status="bounced" if bounced else "failed" if number == 33 else "sent",
                    sent_at=utcnow()).where(Send.id == send.id).execute()
        if number != 33:
            event(send, "sent")
        if bounced:
            event(send, "bounced", kind="hard")
            continue
        if number % 3 == 0:
            event(send, "opened", machine=True)  # a privacy proxy: never an open
        if number % 2 == 0:
            event(send, "opened", machine=False)
            event(send, "opened", machine=False)  # opened twice: one unique open
        if number % 5 == 1:
            event(send, "clicked", bot=False, link_id=1)  # clicked with images off: an open too
        if number % 7 == 0:
            event(send, "clicked", bot=True, link_id=1)  # a scanner: never a click
        if number in (2, 21):
            event(send, "unsubscribed")
        if number in (6, 30):
            event(send, "complained")
    return Campaign.get_by_id(campaign.id)


def columns(table):
    return {(column["part"], column["variant"].label): {key: column[key] for key in COMPARED}
            for column in table["columns"]}


def test_the_ab_table_from_the_aggregates_is_the_one_counted_from_the_events(app, web, decided):
    with app.app_context():
        from_events = columns(stats.ab_table(decided))
        rollup.run()
        split = AbSplit.get(AbSplit.campaign == decided.id)
        assert split.from_start and split.last_test_send_id == stats.sample_cutoff(decided)
        assert sorted(split.sample_sends.values()) == [5, 5]  # the 10 sends of the sample, A and B in turn
        report = report_services.campaign_report(decided)

    assert columns(report["ab_table"]) == from_events
    assert set(from_events) == {("test", "A"), ("test", "B"), ("rest", "B")}
    assert from_events[("rest", "B")]["sent"] == 30 - 1 and from_events[("rest", "B")]["failed"] == 1
    assert all(column["opens"] and column["clicks"] for column in from_events.values())
    page = soup(web.get(f"/reports/campaigns/{decided.id}"))
    shown = {td["data-variant"]: td.get_text(strip=True)
             for td in page.select('#variants tr[data-metric="opens_unique"] td')}
    assert shown == {"A": str(from_events[("test", "A")]["opens"]), "B": str(from_events[("test", "B")]["opens"]),
                     "rest": str(from_events[("rest", "B")]["opens"])}


def test_the_page_reads_the_aggregates_only_for_a_campaign_counted_from_its_start(app, web, decided):
    with app.app_context():
        rollup.run()
        from_events = columns(stats.ab_table(decided))
    AbStat.update(opens_unique=AbStat.opens_unique + 100).execute()  # not what the events say

    def opens_shown():
        page = soup(web.get(f"/reports/campaigns/{decided.id}"))
        return {td["data-variant"]: int(td.get_text(strip=True))
                for td in page.select('#variants tr[data-metric="opens_unique"] td')}
    assert opens_shown() == {"A": from_events[("test", "A")]["opens"] + 100,
                             "B": from_events[("test", "B")]["opens"] + 100,
                             "rest": from_events[("rest", "B")]["opens"] + 100}
    # Counted before AbStat existed (what migration 0056 marks): the events are counted instead.
    AbSplit.update(from_start=False).execute()
    assert opens_shown() == {"A": from_events[("test", "A")]["opens"], "B": from_events[("test", "B")]["opens"],
                             "rest": from_events[("rest", "B")]["opens"]}


def test_the_ledger_counts_leave_out_the_sent_rows_and_match_a_full_count(app, decided, sql_statements):
    draft = Campaign.create(team=decided.team, name="Not frozen", subject="Hi", state="sending", total=2)
    for contact in Contact.select().limit(2):
        Send.create(campaign=draft, contact=contact, email=contact.email, status="sent")
    campaigns = [decided, Campaign.get_by_id(draft.id)]
    with app.app_context():
        del sql_statements[:]
        counted = stats.statuses_for(campaigns)
        counts = [sql for sql in sql_statements if 'FROM "send"' in sql]
    for campaign in campaigns:
        full = dict(Send.select(Send.status, fn.COUNT(Send.id)).where(Send.campaign == campaign.id)
                    .group_by(Send.status).tuples())
        assert counted[campaign.id] == full
        assert stats.counts(campaign) == stats.numbers_of(full, campaign.total)
    assert len(counts) == 2 and '"status" IN' in counts[0] and '"status" IN' not in counts[1]


def test_the_migration_goes_down_and_up_again_marking_the_campaigns_already_counted(app, decided):
    draft = Campaign.create(team=decided.team, name="Draft test", subject="Hi", state="draft")
    Variant.create(campaign=draft, label="A", subject="Hi")
    with app.app_context():
        rollup.run()
    runner = Runner(db.obj, MIGRATIONS_DIR)

    undone = runner.down(target="0056_ab_stats")
    assert undone[-1] == "0056_ab_stats"  # after the migrations that came later
    assert not {"ab_split", "ab_stat"} & set(db.get_tables())
    assert runner.up() == undone[::-1]

    assert [(row.campaign_id, row.from_start) for row in AbSplit.select()] == [(decided.id, False)]
    assert not AbStat.select().exists()
    assert not report_services.counted_ab_test(decided, {})
