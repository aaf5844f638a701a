"""The per-recipient message factory: every built message is parsed back with the
standard library and compared with what the recipient should get."""
import re

import pytest
from bs4 import BeautifulSoup

from app import tokens
from app.content import sandbox
from app.content.message import MessageFactory
from app.models import CustomField
from app.models import Link
from app.models import Send
from app.models import Variant
from tests.message_support import make_campaign
from tests.message_support import make_contact
from tests.message_support import make_send
from tests.message_support import parse


@pytest.fixture
def team(message_team):
    """The Acme team with a sender, a postal address and Plan/Seats fields (tests/message_support.py)."""
    return message_team


pytestmark = pytest.mark.usefixtures("ctx")  # every test runs inside the app


def parts(message):
    """(html, text) decoded; text/* line breaks are CRLF on the wire, \n once read."""
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    return html.get_content().replace("\r\n", "\n"), text.get_content().replace("\r\n", "\n")


def test_message_round_trips_with_every_required_header(app, team):
    contact = make_contact(team, "zoe@example.org", "Zoë Ångström", plan="Pro ✓", seats=4)
    campaign = make_campaign(team)
    send = make_send(campaign, contact)
    factory = MessageFactory(campaign)
    raw = factory.build(send, contact)

    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line endings only
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    message = parse(raw)
    assert message.defects == []
    assert message["Subject"] == "Hi Zoë — news from Acme"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["To"].addresses[0].addr_spec == "zoe@example.org"
    assert message["From"].addresses[0].display_name == "Acme News"
    assert message["From"].addresses[0].addr_spec == "news@acme.example"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime is not None
    assert message["Precedence"] == "bulk"
    assert message.get_content_type() == "multipart/alternative"

    message_id = message["Message-ID"]
    assert message_id == factory.message_id(send)
    assert re.fullmatch(r"<[^@<>\s]+@acme\.example>", message_id)

    # RFC 8058: exactly one List-Unsubscribe with one https URL (then a mailto), and the Post header.
    assert len(message.get_all("List-Unsubscribe")) == 1
    urls = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert urls[0].startswith("http://loft.test/u/")
    assert tokens.verify("unsubscribe", urls[0].rpartition("/")[2]) == (send.id,)
    assert urls[1].startswith("mailto:news@acme.example?subject=unsubscribe%20")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == f"{campaign.id}:{team.id}:news:" + message["Feedback-ID"].split(":")[3]
    assert 5 <= len(message["Feedback-ID"].split(":")[3]) <= 15
    assert tokens.verify("header", message["X-Loft-Token"]) == (send.id,)
    assert tokens.verify("unsubscribe", message["X-Loft-Token"]) is None  # purposes never mix

    html, text = parts(message)
    assert html == factory.render_html(send, contact)
    page = BeautifulSoup(html, "html.parser")
    assert "Hello Zoë, welcome to Acme!" in page.text
    assert "Your plan: Pro ✓; seats: 5." in page.text
    assert "1 Main Street, Springfield 12345" in page.text  # the postal address in the footer
    unsubscribe = [a for a in page.select("a") if a.text == "Unsubscribe"]
    assert unsubscribe and unsubscribe[0]["href"] == urls[0]
    assert "The short line shown after the subject" in page.select_one("body > div").text  # preheader
    # The plain-text part says the same things, with links as "text (url)".
    assert "Hello Zoë, welcome to Acme!" in text
    assert "Your plan: Pro ✓; seats: 5." in text
    assert f"Unsubscribe ({urls[0]})" in text
    assert "1 Main Street, Springfield 12345" in text
    assert "lorem ipsum dolor sit amet = équilibre " * 12 in text


def test_tracking_rewrites_links_once_and_signs_the_pixel(app, team):
    contact = make_contact(team, "ann@example.org", "Ann Lee", plan="Free", seats=1)
    campaign = make_campaign(team)
    send = make_send(campaign, contact)
    factory = MessageFactory(campaign)
    html, text = parts(parse(factory.build(send, contact)))
    page = BeautifulSoup(html, "html.parser")

    links = {row.url: row.id for row in Link.select().where(Link.campaign == campaign)}
    assert set(links) == {"https://example.com/pricing?a=1&b=2", "https://example.com/docs"}
    hrefs = [a["href"] for a in page.select("a")]
    click_token = tokens.sign("click", send.id)
    assert hrefs.count(f"http://loft.test/c/{click_token}/{links['https://example.com/pricing?a=1&b=2']}") == 2
    assert f"http://loft.test/c/{click_token}/{links['https://example.com/docs']}" in hrefs
    # Not rewritten: mailto, tel, anchors, personalised links, our own unsubscribe link.
    assert {"mailto:help@example.com", "tel:+15551234", "#top",
            "https://example.com/u?e=ann%40example.org"} <= set(hrefs)
    assert f"read the docs (http://loft.test/c/{click_token}/{links['https://example.com/docs']})" in text
    pixel = page.select_one('img[width="1"][height="1"]')
    assert pixel["src"] == f"http://loft.test/o/{tokens.sign('open', send.id)}.gif"

    # A second factory (a later batch run) reuses the same Link rows.
    MessageFactory(campaign).build(send, contact)
    assert Link.select().where(Link.campaign == campaign).count() == 2


def test_tracking_switches_off(app, team):
    contact = make_contact(team, "bob@example.org", "Bob")
    campaign = make_campaign(team, track_opens=False, track_clicks=False)
    send = make_send(campaign, contact)
    html, _text = parts(parse(MessageFactory(campaign).build(send, contact)))
    page = BeautifulSoup(html, "html.parser")
    assert page.select_one('img[width="1"]') is None
    assert "https://example.com/docs" in [a["href"] for a in page.select("a")]
    assert not Link.select().where(Link.campaign == campaign).exists()


def test_each_send_gets_its_own_message_id_and_tokens(app, team):
    campaign = make_campaign(team)
    contacts = [make_contact(team, f"p{i}@example.org", f"Person {i}") for i in range(3)]
    sends = [make_send(campaign, contact) for contact in contacts]
    factory = MessageFactory(campaign)
    messages = [parse(factory.build(send, contact)) for send, contact in zip(sends, contacts)]
    assert len({m["Message-ID"] for m in messages}) == 3
    assert [tokens.verify("header", m["X-Loft-Token"]) for m in messages] == [(s.id,) for s in sends]
    assert [m["To"].addresses[0].addr_spec for m in messages] == [c.email for c in contacts]
    assert factory.message_id(sends[0]) == factory.message_id(sends[0]) == messages[0]["Message-ID"]
    assert parts(messages[1])[0].count("Hello Person, welcome") == 1


@pytest.mark.parametrize("name,subject", [
    ("Eve\r\nBcc: victim@example.net", "Hi\r\nBcc: victim@example.net"),
    ("Eve\nX-Injected: yes", "Hello\rX-Injected: yes"),
    ("Zoë\r\nBcc: victim@example.net", "Grüße\nBcc: victim@example.net"),
])
def test_line_breaks_in_names_and_subjects_cannot_add_headers(app, team, name, subject):
    contact = make_contact(team, "eve@example.org", name)
    campaign = make_campaign(team, subject=subject + " {{ contact.name }}", from_name=name)
    send = make_send(campaign, contact)
    message = parse(MessageFactory(campaign).build(send, contact))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert len(message.get_all("To")) == 1 and len(message.get_all("Subject")) == 1
    assert message["To"].addresses[0].addr_spec == "eve@example.org"
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    assert "Bcc" in str(message["Subject"]) or "X-Injected" in str(message["Subject"])


def test_long_and_unicode_headers_are_encoded_and_folded(app, team):
    name = "Ünïcödé Pérson with a very long name " * 3
    contact = make_contact(team, "long@bücher.example", name.strip())
    subject = "Ça va? Ünïcode and emoji 🎉 in a subject that is much longer than seventy-eight characters " * 2
    campaign = make_campaign(team, subject=subject.strip(), from_name="Ëxample Ñews")
    send = make_send(campaign, contact)
    raw = MessageFactory(campaign).build(send, contact)
    head = raw.split(b"\r\n\r\n", 1)[0]
    long_lines = [line for line in head.split(b"\r\n") if len(line) > 78]
    assert long_lines == [], long_lines
    assert head.isascii()
    message = parse(raw)
    assert message["Subject"] == subject.strip()
    assert message["To"].addresses[0].display_name == name.strip()
    assert message["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert message["From"].addresses[0].display_name == "Ëxample Ñews"


def test_quoted_printable_pieces_decode_exactly(app, team):
    # Personalised values of every awkward shape: very long, trailing spaces, "=", non-ASCII, tabs.
    body = ("<p>A{{ contact.a }}B</p>\n<p>{{ contact.b }}</p><p>x{{ contact.c }}</p>" + "y" * 300
            + "\n<pre>{{ contact.d }}</pre>\n")
    for key in "abcd":
        CustomField.create(team=team, key=key, label=key, type="text")
    values = {"a": "=" * 90, "b": "é" * 80 + " ", "c": "tab\there  ", "d": "line one\nline two   \n"}
    contact = make_contact(team, "qp@example.org", "Q P", **values)
    campaign = make_campaign(team, body=body, track_clicks=False, track_opens=False)
    send = make_send(campaign, contact)
    factory = MessageFactory(campaign)
    raw = factory.build(send, contact)
    body_bytes = raw.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in body_bytes.split(b"\r\n")), "a quoted-printable line is too long"
    html, text = parts(parse(raw))
    assert html == factory.render_html(send, contact)
    assert "A" + "=" * 90 + "B" in html
    assert "é" * 80 + " " in html and "xtab\there  " in html
    assert "y" * 300 in html and "line one\nline two   \n" in html
    assert "é" * 80 in text


def test_variant_subject_and_body(app, team):
    contact = make_contact(team, "v@example.org", "Val")
    campaign = make_campaign(team)
    variant = Variant.create(campaign=campaign, label="B", subject="Variant B for {{ contact.name }}",
                             body="<p>Body B {{ contact.email }}</p>")
    send = Send.create(campaign=campaign, contact=contact, email=contact.email, variant=variant)
    message = parse(MessageFactory(campaign, variant).build(send, contact))
    assert message["Subject"] == "Variant B for Val"
    html, _ = parts(message)
    assert "Body B v@example.org" in BeautifulSoup(html, "html.parser").text
    # An empty variant field falls back to the campaign's.
    variant_a = Variant.create(campaign=campaign, label="A", subject="", body="")
    message = parse(MessageFactory(campaign, variant_a).build(send, contact))
    assert message["Subject"] == "Hi Val — news from Acme"


def test_markdown_campaign_is_wrapped_in_the_layout(app, team):
    contact = make_contact(team, "md@example.org", "Mark Down")
    campaign = make_campaign(team, kind="markdown",
                             body="# Hello {{ contact.first_name }}\n\nSome *emphasis* and a [link](https://example.com/md).\n\n"
                                  "- one\n- two\n\n<script>alert(1)</script>\n")
    send = make_send(campaign, contact)
    html, text = parts(parse(MessageFactory(campaign).build(send, contact)))
    page = BeautifulSoup(html, "html.parser")
    assert page.select_one("h1").text == "Hello Mark"
    assert page.select_one("em").text == "emphasis"
    assert [li.text for li in page.select("li")] == ["one", "two"]
    assert page.select_one("script") is None and "alert(1)" not in html
    assert page.select_one("h1")["style"]  # Markdown output gets inline styles
    assert "# Hello Mark\n\nSome emphasis and a link (" in text
    assert "- one\n- two" in text


def test_test_messages_are_not_tracked(app, team):
    contact = make_contact(team, "t@example.org", "Tess")
    campaign = make_campaign(team)
    factory = MessageFactory(campaign, test=True)
    send = Send(campaign=campaign, contact=contact, email="someone@example.net")
    message = parse(factory.build(send, contact))
    assert message["Subject"].startswith("[Test] Hi Tess")
    assert message["To"].addresses[0].addr_spec == "someone@example.net"
    html, _ = parts(message)
    assert "/c/" not in html and "/o/" not in html
    assert not Link.select().where(Link.campaign == campaign).exists()
    assert tokens.verify("header", message["X-Loft-Token"]) == (0,)


def test_template_errors_are_render_errors(app, team):
    campaign = make_campaign(team, body="<p>{{ 'x' * 10**9 }}</p>")
    contact = make_contact(team, "e@example.org", "E")
    send = make_send(campaign, contact)
    factory = MessageFactory(campaign)
    with pytest.raises(sandbox.RenderError, match="longer than"):
        factory.build(send, contact)
    with pytest.raises(sandbox.RenderError, match="Line 1"):
        MessageFactory(make_campaign(team, body="<p>{{ contact.name </p>"))


def test_link_variables_reach_the_tracking_and_preference_pages(app, team):
    from app.consent.preferences import preference_url
    contact = make_contact(team, "links@example.org", "Lin")
    campaign = make_campaign(team, body='<p><a href="{{ webview_url }}">web</a> <a href="{{ preferences_url }}">prefs</a> '
                                        '<a href="{{ unsubscribe_url }}">unsub</a></p>')
    send = make_send(campaign, contact)
    html, _ = parts(parse(MessageFactory(campaign).build(send, contact)))
    hrefs = {a.text: a["href"] for a in BeautifulSoup(html, "html.parser").select("a")}
    assert hrefs["web"] == f"http://loft.test/v/{tokens.sign('view', send.id)}"
    assert hrefs["unsub"] == f"http://loft.test/u/{tokens.sign('unsubscribe', send.id)}"
    assert hrefs["prefs"] == preference_url(contact)
    # Only one footer: the body already has the unsubscribe link (but not the postal address).
    assert list(hrefs) == ["web", "prefs", "unsub"]
    assert "1 Main Street, Springfield 12345" in html


def test_a_layout_template_wraps_the_campaign_content(app, team):
    from app.models import Template
    layout = Template.create(team=team, name="Frame", kind="html",
                             body='<div style="background-color: #eeeeee;" id="frame">{{ content }}'
                                  '<p>{{ postal_address }} <a href="{{ unsubscribe_url }}">Leave</a></p></div>')
    contact = make_contact(team, "lay@example.org", "Lay Out")
    campaign = make_campaign(team, template=layout, kind="markdown", body="Hello **{{ contact.first_name }}**")
    send = make_send(campaign, contact)
    html, text = parts(parse(MessageFactory(campaign).build(send, contact)))
    page = BeautifulSoup(html, "html.parser")
    assert page.select_one("#frame strong").text == "Lay"
    assert [a.text for a in page.select("a")] == ["Leave"]  # the layout's footer, so no second one
    assert "Hello Lay" in text and "Leave (http://loft.test/u/" in text
