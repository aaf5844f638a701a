"""The send ledger: freezing the audience (lists, segments, exclusions, statuses, resends), idempotently."""
import json

import pytest

from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Segment
from app.models import Send
from app.models import Subscription
from app.sending import ledger
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team


def emails(campaign):
    return [s.email for s in Send.select().where(Send.campaign == campaign).order_by(Send.id)]


def audience(campaign, **parts):
    selected = {"lists": [], "segments": [], "exclude_lists": [], "exclude_segments": []}
    selected.update({k: [x.id for x in v] if isinstance(v, (list, tuple)) else v for k, v in parts.items()})
    Campaign.update(audience=json.dumps(selected)).where(Campaign.id == campaign.id).execute()
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
    vip_segment = Segment.create(team=team, name="VIP domain", rules=json.dumps(
        {"op": "and", "rules": [{"field": "domain", "operator": "is", "value": "vip.example"}]}))
    testers = Segment.create(team=team, name="Testers", rules=json.dumps(
        {"op": "and", "rules": [{"field": "email", "operator": "starts_with", "value": "tester"}]}))
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
    bad = Segment.create(team=team, name="Broken one", rules=json.dumps(
        {"op": "and", "rules": [{"field": "nope", "operator": "is", "value": "x"}]}))
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
