"""The send ledger: freezing the audience (lists, segments, exclusions, statuses, resends), idempotently."""
import datetime

import pytest

from app.db import db
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Segment
from app.models import Send
from app.models import Subscription
from app.models import Variant
from app.sending import ledger
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team
from tests.stack_support import postgres_only


def emails(campaign):
    return [s.email for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]


def audience(campaign, **parts):
    selected = {"lists": [], "segments": [], "exclude_lists": [], "exclude_segments": []}
    selected.update({k: [x.id for x in v] if isinstance(v, (list, tuple)) else v for k, v in parts.items()})
    Campaign.update(audience=selected).where(Campaign.id == campaign.id).execute()
    return Campaign.get_by_id(campaign.id)


def test_freeze_writes_one_queued_send_per_active_subscribed_contact(ctx):
    team = make_team()
    news, offers = MailingList.create(team=team, name="News"), MailingList.create(team=team, name="Offers")
    readers = make_contacts(team, 5, news)
    both = make_contacts(team, 2, news, prefix="both")
    for contact in both:
        Subscription.create(contact=contact, list=offers)
    gone = make_contacts(team, 4, news, prefix="gone")
    for contact, status in zip(gone, ("unsubscribed", "bounced", "complained", "suppressed")):
        Contact.update(status=status).where(Contact.id == contact.id).execute()
    left = make_contacts(team, 1, news, prefix="left")[0]
    Subscription.update(status="unsubscribed").where(Subscription.contact == left).execute()
    make_contacts(team, 3, None, prefix="elsewhere")  # not on the lists
    campaign = audience(make_campaign(team, state="draft"), lists=[news, offers])

    assert ledger.count_audience(campaign) == 7
    total = ledger.freeze_audience(campaign)

    assert total == 7
    assert emails(campaign) == [c.email for c in readers + both]  # once each, in contact-id order
    sends = list(Send.select().where(Send.campaign == campaign))
    assert {(s.status, s.attempts, s.message_id, s.error) for s in sends} == {("queued", 0, "", "")}
    assert all(s.contact_id for s in sends)
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.total == 7 and campaign.frozen_at is not None


@postgres_only("SQLite's planner keeps no statistics for these lookups")
def test_freezing_brings_the_planner_statistics_of_the_joined_tables_up_to_date(ctx):
    """Right after a big import PostgreSQL still plans as if contacts and subscriptions were empty (a
    nested loop over the whole audience): the freeze analyses them first, and the Sends after."""
    team = make_team()
    news = MailingList.create(team=team, name="News")
    make_contacts(team, 30, news)
    campaign = audience(make_campaign(team, state="draft"), lists=[news])
    assert ledger.freeze_audience(campaign) == 30
    counted = dict(db.execute_sql("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                                  "('contact', 'subscription', 'send')").fetchall())
    assert counted == {"contact": 30, "subscription": 30, "send": 30}


def test_freezing_again_adds_nobody_twice_and_chunks_give_the_same_ledger(ctx):
    team = make_team()
    news = MailingList.create(team=team, name="News")
    make_contacts(team, 23, news)
    small = audience(make_campaign(team, state="draft"), lists=[news])
    large = audience(make_campaign(team, state="draft"), lists=[news])

    assert ledger.freeze_audience(small, chunk=4) == 23
    assert ledger.freeze_audience(large) == 23
    assert ledger.freeze_audience(small, chunk=4) == 23  # idempotent: UNIQUE (campaign, contact)
    assert emails(small) == emails(large)
    assert Send.select().where(Send.campaign == small).count() == 23


def test_exclusions_and_segments(ctx):
    team = make_team()
    news, vips, blocked = (MailingList.create(team=team, name=n) for n in ("News", "VIPs", "Blocked"))
    plain = make_contacts(team, 3, news)
    excluded = make_contacts(team, 2, news, prefix="excluded")
    for contact in excluded:
        Subscription.create(contact=contact, list=blocked)
    vip_domain = make_contacts(team, 2, None, prefix="boss", domain="vip.example")
    vip_and_test = make_contacts(team, 1, None, prefix="tester", domain="vip.example")
    vip_segment = Segment.create(team=team, name="VIP domain", rules=
        {"op": "and", "rules": [{"field": "domain", "operator": "is", "value": "vip.example"}]})
    testers = Segment.create(team=team, name="Testers", rules=
        {"op": "and", "rules": [{"field": "email", "operator": "starts_with", "value": "tester"}]})
    campaign = audience(make_campaign(team, state="draft"), lists=[news], segments=[vip_segment],
                        exclude_lists=[blocked], exclude_segments=[testers])

    assert ledger.freeze_audience(campaign) == 5
    assert emails(campaign) == [c.email for c in plain + vip_domain]
    assert vip_and_test and ledger.count_audience(campaign) == 5


def test_other_teams_lists_and_contacts_never_enter_the_ledger(ctx):
    team, other = make_team(), make_team("Other")
    news = MailingList.create(team=team, name="News")
    theirs = MailingList.create(team=other, name="Theirs")
    mine = make_contacts(team, 2, news)
    make_contacts(other, 3, theirs, prefix="theirs")
    campaign = audience(make_campaign(team, state="draft"), lists=[news, theirs])
    assert ledger.freeze_audience(campaign) == 2
    assert emails(campaign) == [c.email for c in mine]


def test_an_empty_audience_freezes_nobody(ctx):
    team = make_team()
    make_contacts(team, 2, None)
    campaign = make_campaign(team, state="draft")
    assert ledger.count_audience(campaign) == 0
    assert ledger.freeze_audience(campaign) == 0


def test_resend_to_newcomers_and_to_non_openers(ctx):
    team = make_team()
    news = MailingList.create(team=team, name="News")
    first = make_contacts(team, 4, news)
    parent = audience(make_campaign(team, state="completed"), lists=[news])
    ledger.freeze_audience(parent)
    Send.update(status="sent").where(Send.campaign == parent).execute()
    Send.update(status="bounced").where((Send.campaign == parent) & (Send.contact == first[3])).execute()
    Event.create(team=team, contact=first[0], campaign_id=parent.id, type="opened")
    later = make_contacts(team, 2, news, prefix="later")

    newcomers = audience(make_campaign(team, state="draft"), lists=[news], resend_of=parent.id,
                         resend_to="newcomers")
    non_openers = audience(make_campaign(team, state="draft"), lists=[news], resend_of=parent.id,
                           resend_to="non_openers")

    assert ledger.freeze_audience(newcomers) == 2
    assert emails(newcomers) == [c.email for c in later]
    assert ledger.freeze_audience(non_openers) == 2  # sent, did not open; not the bounced one
    assert emails(non_openers) == [first[1].email, first[2].email]


def test_a_broken_segment_is_refused_with_its_name(ctx):
    team = make_team()
    bad = Segment.create(team=team, name="Broken one", rules=
        {"op": "and", "rules": [{"field": "nope", "operator": "is", "value": "x"}]})
    campaign = audience(make_campaign(team, state="draft"), segments=[bad])
    with pytest.raises(ledger.LedgerError, match="Broken one"):
        ledger.freeze_audience(campaign)


def test_recover_in_flight_and_status_counts(ctx):
    team = make_team()
    news = MailingList.create(team=team, name="News")
    make_contacts(team, 5, news)
    campaign = audience(make_campaign(team), lists=[news])
    ledger.freeze_audience(campaign)
    ids = [s.id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]
    Send.update(status="sending", attempts=1).where(Send.id << ids[:2]).execute()
    Send.update(status="sent").where(Send.id == ids[2]).execute()

    assert ledger.status_counts(campaign.id) == {"sending": 2, "sent": 1, "queued": 2}
    assert ledger.recover_in_flight(campaign.id) == 2
    assert ledger.status_counts(campaign.id) == {"sent": 1, "queued": 4}
    assert ledger.pending_count(campaign.id) == 4


def frozen(count):
    team = make_team()
    news = MailingList.create(team=team, name="News")
    contacts = make_contacts(team, count, news)
    campaign = make_campaign(team, [news])
    ledger.freeze_audience(campaign)
    return campaign, contacts, [s.id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]


def rows_of(campaign):
    return {s.id: s for s in Send.select().where(Send.campaign == campaign)}


def test_a_run_claims_records_and_claims_again_through_the_ledger(ctx):
    campaign, _, ids = frozen(7)
    with db.atomic():
        assert ledger.claim(campaign.id, 6) == ids[:6]
    assert Campaign.get_by_id(campaign.id).cursor == ids[5]
    assert ledger.status_counts(campaign.id) == {"sending": 6, "queued": 1}
    at = datetime.datetime(2026, 4, 5, 6, 7, 8)
    later = at + datetime.timedelta(minutes=5)
    with db.atomic():
        ledger.record(sent=[(at, "<m1@acme.test>", None, ids[0])], deferred=[(later, "451 later", None, ids[1])],
                      failed=[("421 gone", None, ids[2])], bounced=[("550 no such user", None, ids[3])],
                      skipped=[("The address is on the suppression list.", ids[4])], requeued=[ids[5]])
    rows = rows_of(campaign)
    assert (rows[ids[0]].status, rows[ids[0]].sent_at, rows[ids[0]].message_id) == ("sent", at, "<m1@acme.test>")
    assert (rows[ids[1]].status, rows[ids[1]].next_attempt_at, rows[ids[1]].error) == ("deferred", later, "451 later")
    assert (rows[ids[2]].status, rows[ids[2]].error) == ("failed", "421 gone")
    assert (rows[ids[3]].status, rows[ids[3]].error) == ("bounced", "550 no such user")
    assert (rows[ids[4]].status, rows[ids[4]].error) == ("skipped", "The address is on the suppression list.")
    assert (rows[ids[5]].status, rows[ids[5]].attempts) == ("queued", 0)  # never started: the claim not counted
    assert [rows[i].attempts for i in ids[:5]] == [1] * 5
    with db.atomic():
        assert ledger.claim(campaign.id, 10, now=later) == [ids[1], ids[5], ids[6]]  # the due retry first
        ledger.skip_claimed([("The contact was deleted after the campaign was published.", ids[6])])
    rows = rows_of(campaign)
    assert (rows[ids[1]].status, rows[ids[1]].attempts) == ("sending", 2)
    assert rows[ids[6]].status == "skipped"


def test_the_moves_after_publishing_and_after_a_run(ctx):
    campaign, contacts, ids = frozen(6)
    first, second = (Variant.create(campaign=campaign, label=label) for label in ("A", "B"))
    ledger.hold_sample(campaign.id, [first, second], cutoff=ids[1])
    rows = rows_of(campaign)
    assert {rows[i].variant_id for i in ids[:2]} == {first.id, second.id}
    assert {rows[i].status for i in ids[2:]} == {"held"}
    assert ledger.release_to_winner(campaign.id, second) == 4
    assert {(rows_of(campaign)[i].status, rows_of(campaign)[i].variant_id) for i in ids[2:]} == {("queued", second.id)}

    with db.atomic():
        ledger.claim(campaign.id, 1)  # ids[0] is in a run now
    assert ledger.skip_for_contact([ids[0], ids[1]], "The contact unsubscribed.") == 1  # the claimed one is the run's
    assert (rows_of(campaign)[ids[1]].status, rows_of(campaign)[ids[1]].error) == ("skipped", "The contact unsubscribed.")

    assert ledger.mark_bounced(ids[2], "550 5.1.1 unknown") and not ledger.mark_bounced(ids[2], "again")
    assert ledger.fail_for_account(ids[3], "Account limit: 550 daily quota") \
        and not ledger.fail_for_account(ids[3], "twice")
    assert ledger.retry_failed(campaign.id) == 1
    assert (rows_of(campaign)[ids[3]].status, rows_of(campaign)[ids[3]].error) == ("queued", "")
    assert ledger.fail_for_account(ids[3], "Account limit") and ledger.mark_bounced(ids[3], "550 later DSN")
    assert rows_of(campaign)[ids[3]].status == "bounced"  # a failed send that bounces says more as bounced

    erased = contacts[4]
    send = Send.get((Send.campaign == campaign) & (Send.contact == erased))
    ledger.skip_erased(erased.id, "r…@example.com")
    send = Send.get_by_id(send.id)
    assert (send.status, send.email, send.error) == ("skipped", "r…@example.com", "The contact was erased.")
