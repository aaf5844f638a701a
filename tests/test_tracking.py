"""Open pixel, click redirects, web view and usage: real HTTP through the test client.

Fixtures are built directly with the models (a team, contacts, a campaign
with Link and Send rows); the engine is not needed to exercise the endpoints.
"""
import datetime

import pytest

from app import settings
from app import tokens
from app import usage
from app.models import Contact
from app.models import Event
from app.models import Link
from app.models import Send
from app.models import UsageCount
from app.models import Variant
from app.security import origin_source
from app.tracking import services
from tests.conftest import soup
from tests.tracking_support import BROWSER
from tests.tracking_support import HOUR_AGO
from tests.tracking_support import make_campaign
from tests.tracking_support import make_contact
from tests.tracking_support import make_send
from tests.tracking_support import make_team
from tests.tracking_support import tampered


@pytest.fixture
def world(ctx):
    team = make_team()
    contact = make_contact(team)
    campaign = make_campaign(team)
    send = make_send(campaign, contact)
    link = Link.create(campaign=campaign, url="https://example.org/read?utm_source=loft&x=1")
    return dict(team=team, contact=contact, campaign=campaign, send=send, link=link)


def events(type_, contact=None):
    query = Event.select().where(Event.type == type_)
    if contact is not None:
        query = query.where(Event.contact == contact)
    return list(query.order_by(Event.id))


# --- Open pixel -----------------------------------------------------------------------

def test_pixel_is_a_43_byte_gif_and_records_a_human_open(world, public):
    token = tokens.sign("open", world["send"].id)
    response = public.get(f"/o/{token}.gif", headers={"User-Agent": BROWSER},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    body = response.get_data()
    assert len(body) == 43 and body.startswith(b"GIF89a") and body.endswith(b";")
    assert response.headers["Cache-Control"] == "no-store, private"
    assert "Set-Cookie" not in response.headers

    (event,) = events("opened")
    assert event.contact_id == world["contact"].id
    assert event.campaign_id == world["campaign"].id
    assert event.team_id == world["team"].id
    data = event.data
    assert data["machine"] is False
    assert data["ua"] == BROWSER and data["ip"] == "203.0.113.9" and data["send"] == world["send"].id
    assert Contact.get_by_id(world["contact"].id).last_activity_at is not None


@pytest.mark.parametrize("make_bad", [
    pytest.param(lambda send_id: tampered(tokens.sign("open", send_id)), id="tampered"),
    pytest.param(lambda send_id: tokens.sign("open", send_id)[:-3], id="truncated"),
    pytest.param(lambda send_id: tokens.sign("click", send_id), id="click-token"),
    pytest.param(lambda send_id: tokens.sign("unsubscribe", send_id), id="unsubscribe-token"),
    pytest.param(lambda send_id: tokens.sign("open", send_id, 7), id="two-ids"),
    pytest.param(lambda send_id: tokens.sign("open", send_id + 1000), id="unknown-send"),
    pytest.param(lambda send_id: "not-a-token", id="garbage"),
])
def test_pixel_answers_the_same_for_an_invalid_token(world, public, make_bad):
    good = public.get(f"/o/{tokens.sign('open', world['send'].id)}.gif", headers={"User-Agent": BROWSER})
    Event.delete().execute()
    bad = public.get(f"/o/{make_bad(world['send'].id)}.gif", headers={"User-Agent": BROWSER})
    assert bad.status_code == good.status_code == 200
    assert bad.get_data() == good.get_data()
    same = lambda response: {k: v for k, v in response.headers.items() if k != "X-Request-ID"}  # noqa: E731
    assert same(bad) == same(good)
    assert events("opened") == []


@pytest.mark.parametrize("agent, ip, sent_ago, machine, why", [
    ("Mozilla/5.0", "203.0.113.9", HOUR_AGO, True, "apple-mpp-agent"),
    (BROWSER, "17.58.101.4", HOUR_AGO, True, "apple-network"),
    (BROWSER, "203.0.113.9", datetime.timedelta(seconds=1), True, "too-soon"),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "66.249.84.1", HOUR_AGO, False, None),
    (BROWSER, "203.0.113.9", HOUR_AGO, False, None),
])
def test_machine_opens_are_flagged_and_do_not_count_as_activity(ctx, public, agent, ip, sent_ago, machine, why):
    team = make_team()
    contact = make_contact(team)
    send = make_send(make_campaign(team), contact, sent_ago=sent_ago)
    response = public.get(f"/o/{tokens.sign('open', send.id)}.gif", headers={"User-Agent": agent},
                          environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 200
    (event,) = events("opened")
    data = event.data
    assert data["machine"] is machine
    if why:
        assert why in data["why"]
    else:
        assert "why" not in data
    if "GoogleImageProxy" in agent:
        assert data["proxy"] == "google"
    active = Contact.get_by_id(contact.id).last_activity_at
    assert (active is None) is machine


def test_the_ab_report_reads_machine_opens_as_written(world, public):
    """campaigns.stats excludes machine opens by the JSON path data.machine = true."""
    public.get(f"/o/{tokens.sign('open', world['send'].id)}.gif", headers={"User-Agent": "Mozilla/5.0"})
    assert events("opened")[0].data["machine"] is True
    from app.campaigns import stats
    from app.models import Event
    humans = Event.select().where(stats._human("opened", "machine") & (Event.campaign_id == world["campaign"].id))
    assert humans.count() == 0


def test_pixel_of_a_deleted_contact_records_nothing(world, public):
    world["contact"].delete_instance()
    response = public.get(f"/o/{tokens.sign('open', world['send'].id)}.gif")
    assert response.status_code == 200 and len(response.get_data()) == 43
    assert Event.select().where(Event.type == "opened").count() == 0


# --- Clicks ---------------------------------------------------------------------------

def test_click_redirects_to_the_stored_url_and_records_the_click(world, public):
    token = tokens.sign("click", world["send"].id)
    response = public.get(f"/c/{token}/{world['link'].id}", headers={"User-Agent": BROWSER},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.org/read?utm_source=loft&x=1"
    assert "Set-Cookie" not in response.headers
    (event,) = events("clicked")
    data = event.data
    assert data["link_id"] == world["link"].id and data["url"] == world["link"].url
    assert data["bot"] is False
    assert event.campaign_id == world["campaign"].id and event.contact_id == world["contact"].id
    assert Contact.get_by_id(world["contact"].id).last_activity_at is not None
    assert events("opened") == []  # a click is only a click; reports infer the open


@pytest.mark.parametrize("make_bad", [
    pytest.param(lambda send_id: tampered(tokens.sign("click", send_id)), id="tampered"),
    pytest.param(lambda send_id: tokens.sign("click", send_id)[:-1], id="truncated"),
    pytest.param(lambda send_id: tokens.sign("click", send_id) + "A", id="extended"),
    pytest.param(lambda send_id: tokens.sign("open", send_id), id="open-token"),
    pytest.param(lambda send_id: tokens.sign("view", send_id), id="view-token"),
    pytest.param(lambda send_id: tokens.sign("click", send_id + 1), id="unknown-send"),
])
def test_a_bad_click_token_gets_404_and_never_a_redirect(world, public, make_bad):
    response = public.get(f"/c/{make_bad(world['send'].id)}/{world['link'].id}")
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert soup(response).select_one("h1").get_text(strip=True) == "This link does not work"
    assert events("clicked") == []


def test_a_link_of_another_campaign_gets_404(world, public):
    other = make_campaign(world["team"], name="Other")
    foreign = Link.create(campaign=other, url="https://evil.example/steal")
    token = tokens.sign("click", world["send"].id)
    response = public.get(f"/c/{token}/{foreign.id}")
    assert response.status_code == 404 and "Location" not in response.headers
    missing = public.get(f"/c/{token}/{foreign.id + 100}")
    assert missing.status_code == 404 and "Location" not in missing.headers
    assert events("clicked") == []


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", " JavaScript:alert(1)",
                                 "data:text/html;base64,PHNjcmlwdD4=", "//evil.example/x", "/admin",
                                 "https://ok.example/\r\nSet-Cookie: x=1"])
def test_only_http_links_are_ever_redirected_to(world, public, url):
    link = Link.create(campaign=world["campaign"], url=url)
    response = public.get(f"/c/{tokens.sign('click', world['send'].id)}/{link.id}")
    assert response.status_code == 404
    assert "Location" not in response.headers


@pytest.mark.parametrize("method, agent, sent_ago, why", [
    ("HEAD", BROWSER, HOUR_AGO, "head-request"),
    ("GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", HOUR_AGO, "scanner-agent"),
    ("GET", "python-requests/2.31", HOUR_AGO, "scanner-agent"),
    ("GET", "", HOUR_AGO, "no-agent"),
    ("GET", BROWSER, datetime.timedelta(seconds=3), "too-soon"),
])
def test_scanner_clicks_are_flagged_as_bots(ctx, public, method, agent, sent_ago, why):
    team = make_team()
    contact = make_contact(team)
    campaign = make_campaign(team)
    send = make_send(campaign, contact, sent_ago=sent_ago)
    link = Link.create(campaign=campaign, url="https://example.org/")
    response = public.open(f"/c/{tokens.sign('click', send.id)}/{link.id}", method=method,
                           headers={"User-Agent": agent})
    assert response.status_code == 302 and response.headers["Location"] == "https://example.org/"
    (event,) = events("clicked")
    data = event.data
    assert data["bot"] is True and why in data["why"]
    assert Contact.get_by_id(contact.id).last_activity_at is None


def test_a_link_with_non_ascii_characters_is_redirected_in_uri_form(world, public):
    link = Link.create(campaign=world["campaign"], url="https://exämple.org/grüße?q=ä")
    response = public.get(f"/c/{tokens.sign('click', world['send'].id)}/{link.id}")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://xn--exmple-cua.org/gr%C3%BC%C3%9Fe?q=%C3%A4"


def test_a_click_for_a_deleted_contact_still_goes_to_the_link(world, public):
    world["contact"].delete_instance()
    response = public.get(f"/c/{tokens.sign('click', world['send'].id)}/{world['link'].id}")
    assert response.status_code == 302 and response.headers["Location"] == world["link"].url
    assert events("clicked") == []


# --- Web view -------------------------------------------------------------------------

def test_web_view_shows_the_recipients_message_without_a_pixel(world, public):
    token = tokens.sign("view", world["send"].id)
    response = public.get(f"/v/{token}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "img-src https:" in csp
    assert "Set-Cookie" not in response.headers
    page = soup(response)
    assert "Hi Jamie!" in page.get_text()
    assert not [img for img in page.select("img") if "/o/" in (img.get("src") or "")]
    # The footer's unsubscribe link is this recipient's own.
    unsubscribe = page.find("a", string="Unsubscribe")
    assert unsubscribe["href"].endswith(f"/u/{tokens.sign('unsubscribe', world['send'].id)}")
    assert "1 Main St, Springfield" in page.get_text()
    assert events("opened") == []


def test_web_view_may_show_the_instances_own_images_over_plain_http(app, world, public):
    """Images from the team's media library come from Loft itself: on an instance reached over
    http they must load in the web version too, while other sites' stay https only."""
    with app.app_context():
        settings.save_settings({"base_url": "http://127.0.0.1:5000/"})
    csp = public.get(f"/v/{tokens.sign('view', world['send'].id)}").headers["Content-Security-Policy"]
    assert "img-src https: data: http://127.0.0.1:5000;" in csp
    assert "img-src https: data: http:" not in csp.replace("http://127.0.0.1:5000", "")


@pytest.mark.parametrize("url, source", [
    ("https://mail.example.com/loft/", "https://mail.example.com"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("http://example.com; script-src *", ""),  # never a second directive
    ("http://example.com:80 'unsafe-inline'", ""),
    ("javascript:alert(1)", ""),
    ("", ""),
])
def test_own_origin_is_a_plain_origin_or_nothing(url, source):
    assert origin_source(url) == source


def test_web_view_uses_the_recipients_ab_variant(world, public):
    variant = Variant.create(campaign=world["campaign"], label="B", subject="B subject",
                             body="<p>Variant B for {{ contact.name }}</p>")
    Send.update(variant=variant).where(Send.id == world["send"].id).execute()
    response = public.get(f"/v/{tokens.sign('view', world['send'].id)}")
    assert response.status_code == 200
    assert "Variant B for Jamie" in soup(response).get_text()


def test_web_view_rewrites_links_only_to_registered_links(world, public):
    response = public.get(f"/v/{tokens.sign('view', world['send'].id)}")
    read = soup(response).find("a", string="Read")
    # The body's URL has no Link row (the fixture's Link has a different URL): it stays direct.
    assert read["href"] == "https://example.org/read"
    Link.create(campaign=world["campaign"], url="https://example.org/read")
    response = public.get(f"/v/{tokens.sign('view', world['send'].id)}")
    read = soup(response).find("a", string="Read")
    link = Link.get((Link.campaign == world["campaign"]) & (Link.url == "https://example.org/read"))
    assert read["href"] == f"http://loft.test/c/{tokens.sign('click', world['send'].id)}/{link.id}"


@pytest.mark.parametrize("make_bad", [
    pytest.param(lambda send_id: tampered(tokens.sign("view", send_id)), id="tampered"),
    pytest.param(lambda send_id: tokens.sign("open", send_id), id="open-token"),
    pytest.param(lambda send_id: tokens.sign("view", send_id + 50), id="unknown-send"),
])
def test_web_view_with_a_bad_token_is_404(world, public, make_bad):
    response = public.get(f"/v/{make_bad(world['send'].id)}")
    assert response.status_code == 404
    assert "Hi Jamie" not in response.get_data(as_text=True)


# --- Public endpoints and usage ---------------------------------------------------------

def test_every_tracking_endpoint_is_declared_public(app):
    endpoints = [name for name in app.view_functions if name.startswith("tracking.")]
    assert sorted(endpoints) == ["tracking.click", "tracking.open_pixel", "tracking.unsubscribe",
                                 "tracking.unsubscribe_page", "tracking.web_view"]
    for name in endpoints:
        assert getattr(app.view_functions[name], "public", False) is True, name


def test_usage_reader_fills_months_without_sending(ctx):
    team, other = make_team(), make_team("Other")
    now = datetime.datetime(2026, 2, 10, 12, 0)
    usage.count_sent(team.id, 40, now)
    usage.count_sent(team.id, 2, now)
    usage.count_sent(team.id, 7, datetime.datetime(2025, 12, 31, 23, 59))
    usage.count_sent(other.id, 1000, now)
    usage.count_sent(team.id, 5, datetime.datetime(2024, 1, 1))  # older than the window
    assert usage.usage_for(team, 4, now=now) == [("2025-11", 0), ("2025-12", 7), ("2026-01", 0), ("2026-02", 42)]
    assert usage.sent_this_month(team.id, now=now) == 42
    assert usage.last_months(13, now=now)[0] == "2025-02"
    assert UsageCount.select().count() == 4  # one row per (team, month, stream, domain)


def test_is_web_url():
    assert services.is_web_url("https://example.org/a?b=c")
    assert services.is_web_url("HTTP://example.org")
    for bad in ("javascript:alert(1)", "data:x", "ftp://x", "", None, "https://a\nb", "mailto:a@b"):
        assert not services.is_web_url(bad)
