"""The links in a real campaign message lead to working endpoints.

The message is built by the real MessageFactory (app/content/message.py), so
these tests hold the two ends of the contract together: the URL shapes the
factory writes and the routes that answer them.
"""
import email
import email.policy
from urllib.parse import urlsplit

import pytest

from app.content.message import MessageFactory
from app.models import Contact
from app.models import Event
from app.models import Link
from app.models import MailingList
from app.models import Subscription
from tests.conftest import soup
from tests.tracking_support import BROWSER
from tests.tracking_support import make_campaign
from tests.tracking_support import make_contact
from tests.tracking_support import make_send
from tests.tracking_support import make_team

BODY = ('<p>Hi {{ contact.name }}!</p><p><a href="https://example.org/read">Read</a> · '
        '<a href="{{ webview_url }}">View in your browser</a></p>')


def build(campaign, send, contact):
    raw = MessageFactory(campaign, base_url="http://loft.test").build(send, contact)
    return email.message_from_bytes(raw, policy=email.policy.default)


def html_of(message):
    return soup_text(message.get_body(("html",)).get_content())


def soup_text(markup):
    from bs4 import BeautifulSoup
    return BeautifulSoup(markup, "html.parser")


def path_of(url):
    parts = urlsplit(url)
    assert parts.netloc == "loft.test"
    return parts.path


@pytest.fixture
def sent(ctx):
    team = make_team()
    news = MailingList.create(team=team, name="Newsletter")
    contact = make_contact(team)
    Subscription.create(contact=contact, list=news, status="subscribed")
    campaign = make_campaign(team, body=BODY, audience={"lists": [news.id]})
    send = make_send(campaign, contact)
    return dict(campaign=campaign, contact=contact, send=send, message=build(campaign, send, contact))


def test_open_pixel_click_and_web_view_links_of_a_real_message_work(sent, public):
    page = html_of(sent["message"])
    pixel = [img["src"] for img in page.select("img") if "/o/" in img["src"]]
    assert len(pixel) == 1
    response = public.get(path_of(pixel[0]), headers={"User-Agent": BROWSER})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert Event.select().where((Event.type == "opened") & (Event.contact == sent["contact"])).count() == 1

    read = page.find("a", string="Read")["href"]
    assert "/c/" in read
    response = public.get(path_of(read), headers={"User-Agent": BROWSER})
    assert response.status_code == 302 and response.headers["Location"] == "https://example.org/read"
    (click,) = Event.select().where(Event.type == "clicked")
    assert click.data["link_id"] == Link.get(Link.url == "https://example.org/read").id

    view = page.find("a", string="View in your browser")["href"]
    response = public.get(path_of(view))
    assert response.status_code == 200
    web = soup(response)
    assert "Hi Jamie!" in web.get_text()
    assert not [img for img in web.select("img") if "/o/" in (img.get("src") or "")]
    # Same click link as in the email, so a click from the web version is counted the same way.
    assert web.find("a", string="Read")["href"] == read


def test_list_unsubscribe_header_accepts_the_one_click_post(sent, public):
    header = sent["message"]["List-Unsubscribe"]
    https = header.split(",")[0].strip().strip("<>")
    assert sent["message"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    response = public.post(path_of(https), data={"List-Unsubscribe": "One-Click"},
                           content_type="multipart/form-data")
    assert response.status_code == 200 and "Location" not in response.headers
    assert Contact.get_by_id(sent["contact"].id).status == "unsubscribed"  # it was their only list

    # The footer's visible link is the same page; a GET there only shows it.
    footer = html_of(sent["message"]).find("a", string="Unsubscribe")["href"]
    assert path_of(footer) == path_of(https)
    assert public.get(path_of(footer)).status_code == 200


def test_tracking_switches_leave_out_the_pixel_and_the_click_redirects(ctx, public):
    team = make_team()
    contact = make_contact(team)
    campaign = make_campaign(team, body=BODY, track_opens=False, track_clicks=False)
    send = make_send(campaign, contact)
    page = html_of(build(campaign, send, contact))
    assert not [img for img in page.select("img") if "/o/" in img["src"]]
    assert page.find("a", string="Read")["href"] == "https://example.org/read"
    assert Link.select().count() == 0
    # The web version follows the same switches.
    view = page.find("a", string="View in your browser")["href"]
    web = soup(public.get(path_of(view)))
    assert web.find("a", string="Read")["href"] == "https://example.org/read"
