"""One-click unsubscribe (RFC 8058) and the confirmation page: real HTTP, no cookies.

RFC 8058: the POST carries only "List-Unsubscribe=One-Click" (multipart or
urlencoded), no cookies or other context; the answer is never a redirect; a
GET must never unsubscribe (link scanners prefetch GETs).
"""

import pytest

from app import tokens
from app.consent import suppression
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import Subscription
from tests.conftest import soup
from tests.tracking_support import make_campaign
from tests.tracking_support import make_contact
from tests.tracking_support import make_send
from tests.tracking_support import make_team
from tests.tracking_support import tampered

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def world(ctx):
    team = make_team()
    news = MailingList.create(team=team, visibility="public", name="Newsletter")
    offers = MailingList.create(team=team, name="Offers")
    contact = make_contact(team)
    for mailing_list in (news, offers):
        Subscription.create(contact=contact, list=mailing_list, status="subscribed")
    campaign = make_campaign(team, audience={"lists": [news.id], "segments": []})
    send = make_send(campaign, contact)
    return dict(team=team, news=news, offers=offers, contact=contact, campaign=campaign, send=send,
                url=f"/u/{tokens.sign('unsubscribe', send.id)}")


def subscription_status(contact, mailing_list):
    return Subscription.get((Subscription.contact == contact) & (Subscription.list == mailing_list)).status


def status_of(contact):
    return Contact.get_by_id(contact.id).status


def unsubscribed_events(contact):
    return list(Event.select().where((Event.contact == contact) & (Event.type == "unsubscribed")))


# --- RFC 8058 one-click POST --------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_one_click_post_unsubscribes_from_the_campaigns_list(world, public, encoding):
    response = public.post(world["url"], data=ONE_CLICK, content_type=encoding)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert subscription_status(world["contact"], world["news"]) == "unsubscribed"
    assert Subscription.get((Subscription.contact == world["contact"])
                            & (Subscription.list == world["news"])).unsubscribed_at is not None
    # Only the list tied to the message: the contact still gets "Offers".
    assert subscription_status(world["contact"], world["offers"]) == "subscribed"
    assert status_of(world["contact"]) == "active"
    (event,) = unsubscribed_events(world["contact"])
    assert event.campaign_id == world["campaign"].id
    data = event.data
    assert data["lists"] == ["Newsletter"] and data["source"] == "one-click" and data["all"] is False


def test_one_click_post_is_safe_to_repeat(world, public):
    first = public.post(world["url"], data=ONE_CLICK)
    second = public.post(world["url"], data=ONE_CLICK, content_type="multipart/form-data")
    assert first.status_code == second.status_code == 200
    assert "Location" not in second.headers
    assert len(unsubscribed_events(world["contact"])) == 1


def test_one_click_needs_no_csrf_token_or_session(world, app):
    """A signed-in browser session is irrelevant: the URL alone is the credential."""
    client = app.test_client()
    response = client.post(world["url"], data=ONE_CLICK, headers={"Cookie": "session=forged"})
    assert response.status_code == 200
    assert subscription_status(world["contact"], world["news"]) == "unsubscribed"


def test_leaving_the_last_list_unsubscribes_the_contact(world, public):
    Subscription.update(status="unsubscribed").where(Subscription.list == world["offers"]).execute()
    response = public.post(world["url"], data=ONE_CLICK)
    assert response.status_code == 200
    assert status_of(world["contact"]) == "unsubscribed"
    changes = Event.select().where((Event.contact == world["contact"]) & (Event.type == "status_changed"))
    assert [e.data["to"] for e in changes] == ["unsubscribed"]
    # A status, not a suppression: suppression is for bounces, complaints and the team's own entries.
    assert not suppression.is_suppressed(world["team"].id, world["contact"].email)


def test_one_click_from_a_segment_campaign_unsubscribes_from_everything(world, public):
    campaign = make_campaign(world["team"], name="Segment mail", audience={"lists": [], "segments": [1]})
    send = make_send(campaign, make_contact(world["team"], "sam@example.net"))
    Subscription.create(contact=send.contact, list=world["offers"], status="subscribed")
    response = public.post(f"/u/{tokens.sign('unsubscribe', send.id)}", data=ONE_CLICK)
    assert response.status_code == 200
    assert status_of(send.contact) == "unsubscribed"
    assert subscription_status(send.contact, world["offers"]) == "unsubscribed"


def test_an_unsubscribe_takes_the_contact_out_of_waiting_sends(world, public):
    """Takes effect immediately: another campaign to the same list, still queued, skips them."""
    later = make_campaign(world["team"], name="Next week", state="sending",
                          audience={"lists": [world["news"].id]})
    waiting = make_send(later, world["contact"], sent_ago=None, status="queued")
    to_offers = make_campaign(world["team"], name="Offers mail", state="scheduled",
                              audience={"lists": [world["offers"].id]})
    still = make_send(to_offers, world["contact"], sent_ago=None, status="queued")
    public.post(world["url"], data=ONE_CLICK)
    assert Send.get_by_id(waiting.id).status == "skipped"
    assert "left the campaign's lists" in Send.get_by_id(waiting.id).error
    assert Send.get_by_id(still.id).status == "queued"


@pytest.mark.parametrize("make_bad", [
    pytest.param(lambda send_id: tampered(tokens.sign("unsubscribe", send_id)), id="tampered"),
    pytest.param(lambda send_id: tokens.sign("unsubscribe", send_id)[:-4], id="truncated"),
    pytest.param(lambda send_id: tokens.sign("open", send_id), id="open-token"),
    pytest.param(lambda send_id: tokens.sign("click", send_id), id="click-token"),
    pytest.param(lambda send_id: tokens.sign("unsubscribe", send_id + 99), id="unknown-send"),
])
def test_an_invalid_token_changes_nothing_and_reveals_nothing(world, public, make_bad):
    url = f"/u/{make_bad(world['send'].id)}"
    post = public.post(url, data=ONE_CLICK)
    assert post.status_code == 200 and "Location" not in post.headers
    page_post = public.post(url, data={"scope": "all"})
    assert page_post.status_code == 200
    get = public.get(url)
    assert get.status_code == 200
    for response in (page_post, get):
        text = soup(response).select_one("#unsubscribe").get_text(" ", strip=True)
        assert "If this link was valid" in text
        assert "Acme" not in text and "@example.com" not in text
    assert subscription_status(world["contact"], world["news"]) == "subscribed"
    assert status_of(world["contact"]) == "active"
    assert unsubscribed_events(world["contact"]) == []


def test_a_deleted_contact_gets_the_generic_page(world, public):
    world["contact"].delete_instance()
    response = public.get(world["url"])
    assert "If this link was valid" in soup(response).select_one("#unsubscribe").get_text()
    assert public.post(world["url"], data=ONE_CLICK).status_code == 200


# --- The confirmation page ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_shows_a_confirmation_and_never_unsubscribes(world, public, method):
    response = public.open(world["url"], method=method)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert subscription_status(world["contact"], world["news"]) == "subscribed"
    assert status_of(world["contact"]) == "active"
    assert unsubscribed_events(world["contact"]) == []
    if method == "GET":
        page = soup(response)
        question = page.select_one("#unsubscribe p").get_text(" ", strip=True)
        assert question == "Unsubscribe j…@example.com from Acme emails?"
        assert "jamie.doe" not in page.get_text()  # the address is masked
        form = page.select_one("#unsubscribe form")
        assert form["method"] == "post" and form["action"] == world["url"]
        assert [b["value"] for b in form.select("button[type=submit]")] == ["campaign", "all"]
        assert form.select_one("input[name=csrf_token]") is None


def test_the_page_button_unsubscribes_from_the_campaigns_list(world, public):
    response = public.post(world["url"], data={"scope": "campaign"})
    assert response.status_code == 200 and "Location" not in response.headers
    page = soup(response)
    assert page.select_one("h1").get_text(strip=True) == "You are unsubscribed"
    assert "Newsletter" in page.select_one("#unsubscribe .flash").get_text()
    assert subscription_status(world["contact"], world["news"]) == "unsubscribed"
    assert subscription_status(world["contact"], world["offers"]) == "subscribed"
    # It offers the rest.
    assert page.select_one("#unsubscribe form input[name=scope]")["value"] == "all"
    assert unsubscribed_events(world["contact"])[0].data["source"] == "unsubscribe page"


def test_unsubscribe_from_everything(world, public):
    response = public.post(world["url"], data={"scope": "all"})
    assert response.status_code == 200
    page = soup(response)
    assert "will get no more email from Acme" in page.select_one("#unsubscribe .flash").get_text(" ", strip=True)
    assert status_of(world["contact"]) == "unsubscribed"
    assert subscription_status(world["contact"], world["news"]) == "unsubscribed"
    assert subscription_status(world["contact"], world["offers"]) == "unsubscribed"
    assert unsubscribed_events(world["contact"])[0].data["all"] is True
    # Like the preference center's button, "everything" survives deleting and re-importing the contact.
    assert suppression.is_suppressed(world["team"].id, world["contact"].email)
    # Repeating is harmless.
    assert public.post(world["url"], data={"scope": "all"}).status_code == 200
    assert len(unsubscribed_events(world["contact"])) == 1
    page = soup(public.get(world["url"]))
    assert "already unsubscribed" in page.select_one("#unsubscribe").get_text()
    assert page.select_one("#unsubscribe form") is None


def test_everything_after_one_click_still_suppresses(world, public):
    Subscription.update(status="unsubscribed").where(Subscription.list == world["offers"]).execute()
    public.post(world["url"], data=ONE_CLICK)
    assert status_of(world["contact"]) == "unsubscribed"
    assert not suppression.is_suppressed(world["team"].id, world["contact"].email)
    public.post(world["url"], data={"scope": "all"})
    assert suppression.is_suppressed(world["team"].id, world["contact"].email)
    assert len(unsubscribed_events(world["contact"])) == 2


def test_the_page_links_to_the_preference_center_when_there_is_one(world, public):
    from app.tracking import webview
    expected = webview.preference_url(world["contact"])
    link = soup(public.get(world["url"])).select_one("#unsubscribe a[href]")
    if expected is None:
        assert link is None
    else:
        assert link["href"] == expected
