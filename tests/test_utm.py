"""UTM tagging: which links get the campaign's utm_* parameters (tricky URLs kept byte for byte), on by
default for a new campaign, editable with a preview on the campaign page, applied with click tracking
(the Link row holds the tagged address the redirect goes to) and without it, into the real catcher."""
import email
import email.policy
import re
from urllib.parse import urlsplit

import pytest

from app import tokens
from app.content import prepare
from app.content import utm
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Link
from app.models import Send
from app.models import Team
from tests.campaigns_support import create_draft
from tests.campaigns_support import draft_form
from tests.conftest import soup

ON = {"enabled": True, "source": "loft", "medium": "email", "campaign": "spring-sale", "content": ""}
TAGS = "utm_source=loft&utm_medium=email&utm_campaign=spring-sale"


@pytest.mark.parametrize("url, tagged", [
    ("https://shop.example.com/sale", f"https://shop.example.com/sale?{TAGS}"),
    ("https://shop.example.com/", f"https://shop.example.com/?{TAGS}"),
    ("HTTP://shop.example.com", f"HTTP://shop.example.com?{TAGS}"),
    # The fragment stays last; an existing query is kept as written and extended.
    ("https://shop.example.com/p?id=7#reviews", f"https://shop.example.com/p?id=7&{TAGS}#reviews"),
    ("https://shop.example.com/p?", f"https://shop.example.com/p?{TAGS}"),
    ("https://shop.example.com/p?a=1&", f"https://shop.example.com/p?a=1&{TAGS}"),
    ("https://shop.example.com/#/app?route=x", f"https://shop.example.com/?{TAGS}#/app?route=x"),
    # Percent-escapes, an IDN host and non-ASCII text are not re-encoded.
    ("https://bücher.example/straße?q=caf%C3%A9%20au%20lait&x=%2F",
     f"https://bücher.example/straße?q=caf%C3%A9%20au%20lait&x=%2F&{TAGS}"),
    ("https://xn--bcher-kva.example/a%20b", f"https://xn--bcher-kva.example/a%20b?{TAGS}"),
    # A link someone tagged already is theirs: not one parameter is added or changed.
    ("https://shop.example.com/?utm_source=partner", "https://shop.example.com/?utm_source=partner"),
    ("https://shop.example.com/?x=1&UTM_Campaign=mine#t", "https://shop.example.com/?x=1&UTM_Campaign=mine#t"),
    # Not web links.
    ("mailto:hi@example.com?subject=Hi", "mailto:hi@example.com?subject=Hi"),
    ("tel:+15551234", "tel:+15551234"),
    ("#top", "#top"),
    ("ftp://files.example.com/a", "ftp://files.example.com/a"),
    ("https://", "https://"),
    ("https://[::1/broken", "https://[::1/broken"),
])
def test_tag(url, tagged):
    assert utm.tag(url, ON) == tagged


def test_values_are_encoded_and_empty_content_is_left_out():
    settings = dict(ON, campaign="Spring & Summer/2026", content="hero button")
    assert utm.tag("https://x.example/", settings) == (
        "https://x.example/?utm_source=loft&utm_medium=email&utm_campaign=Spring%20%26%20Summer%2F2026"
        "&utm_content=hero%20button")
    assert utm.tag("https://x.example/", dict(ON, enabled=False)) == "https://x.example/"
    assert utm.tag("https://x.example/", {}) == "https://x.example/"


def test_links_to_loft_itself_are_left_alone():
    assert utm.tag("https://loft.example.org/u/abc", ON, "https://loft.example.org") == "https://loft.example.org/u/abc"
    assert utm.tag("https://loft.example.org.evil.test/", ON, "https://loft.example.org").endswith(TAGS)


def test_slug_and_form_settings():
    assert utm.slug("Spring Sale – 20% off! Ünïcode") == "spring-sale-20-off-unicode"
    settings = utm.settings_from_form({"utm_enabled": "1", "utm_source": " ", "utm_medium": "newsletter"}, "My Mail")
    assert settings == {"enabled": True, "source": "loft", "medium": "newsletter", "campaign": "my-mail", "content": ""}
    with pytest.raises(utm.UtmError) as refused:
        utm.settings_from_form({"utm_source": "a\nb"}, "x")
    assert refused.value.errors == {"utm_source": "utm_source must be one line of text."}
    with pytest.raises(utm.UtmError):
        utm.settings_from_form({"utm_content": "x" * 101}, "x")


def test_prepare_tags_literal_links_only():
    body = ('<p><a href="https://shop.example.com/a?x=1&amp;y=2#top">A</a> '
            '<a href="mailto:me@example.com">mail</a> <a href="tel:+1555">call</a> <a href="#here">here</a> '
            '<a href="https://shop.example.com/{{ contact.email }}">personal</a> '
            '<a href="{{ webview_url }}">web version</a> <a href="{{ preferences_url }}">preferences</a></p>')
    prepared = prepare.prepare(body, "html", "S", base_url="https://loft.test", utm_settings=ON)
    hrefs = re.findall(r'href="([^"]*)"', prepared.html_source)
    assert hrefs[0] == f"https://shop.example.com/a?x=1&amp;y=2&amp;{TAGS.replace('&', '&amp;')}#top"
    assert hrefs[1:5] == ["mailto:me@example.com", "tel:+1555", "#here", "https://shop.example.com/{{ contact.email }}"]
    assert [h for h in hrefs if "utm_" in h] == [hrefs[0]]  # web version, preferences and unsubscribe untouched
    assert "{{ unsubscribe_url }}" in prepared.html_source


def test_a_new_campaign_tags_by_default_and_the_page_previews_a_link(web, ready_team):
    team, news = ready_team
    response = web.post("/campaigns/new", {"name": "Spring Sale – 20% off"})
    campaign = Campaign.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))
    assert campaign.utm == {"enabled": True, "source": "loft", "medium": "email", "campaign": "spring-sale-20-off",
                            "content": ""}
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one("#utm input[name=utm_enabled]").has_attr("checked")
    assert page.select_one("label[for=f-utm_campaign]") is not None
    assert page.select_one("#utm-example code.url").text == (
        "https://www.example.com/spring-sale?utm_source=loft&utm_medium=email&utm_campaign=spring-sale-20-off")


def test_a_bad_value_is_refused_on_its_field_and_nothing_is_saved(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, utm_enabled="1", utm_source="news")
    refused = web.post(f"/campaigns/{campaign.id}", {**draft_form(news), "utm_enabled": "1", "utm_source": "x" * 101,
                                                     "subject": "Changed"})
    assert refused.status_code == 422
    assert soup(refused).select_one("#e-utm_source").text == "utm_source can be at most 100 characters."
    stored = Campaign.get_by_id(campaign.id)
    assert stored.utm["source"] == "news" and stored.subject != "Changed"


def _caught_html():
    message = email.message_from_bytes(bytes(CaughtMessage.select().first().raw), policy=email.policy.default)
    return message.get_body(("html",)).get_content()


BODY = ('<p><a href="https://acme.example/post?ref=nav#end">the post</a> '
        '<a href="https://acme.example/tagged?utm_source=partner">theirs</a> '
        '<a href="mailto:news@acme.example">write</a></p>')


def test_sent_with_click_tracking_the_redirect_goes_to_the_tagged_address(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, utm_enabled="1", utm_campaign="dec", utm_content="top")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    urls = {link.url for link in Link.select().where(Link.campaign == campaign.id)}
    assert urls == {"https://acme.example/post?ref=nav&utm_source=loft&utm_medium=email&utm_campaign=dec"
                    "&utm_content=top#end", "https://acme.example/tagged?utm_source=partner"}
    html = _caught_html()
    assert "utm_" not in html.replace("utm_source=partner", "")  # the tags sit behind the click redirect
    assert 'href="mailto:news@acme.example"' in html
    tagged = Link.get((Link.campaign == campaign.id) & Link.url.contains("utm_content"))
    redirect = re.search(r'href="(https?://[^"]+/c/[^"]+/%d)"' % tagged.id, html).group(1)
    public = app.test_client()
    answer = public.get(urlsplit(redirect).path)
    assert answer.status_code in (302, 303) and answer.headers["Location"] == tagged.url


def test_sent_without_click_tracking_the_links_carry_the_tags(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, track_clicks="", utm_enabled="1", utm_campaign="dec")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    html = _caught_html()
    assert 'href="https://acme.example/post?ref=nav&amp;utm_source=loft&amp;utm_medium=email&amp;utm_campaign=dec#end"' in html
    assert 'href="https://acme.example/tagged?utm_source=partner"' in html
    assert Link.select().where(Link.campaign == campaign.id).count() == 0


def test_tagging_off_sends_links_as_written(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, track_clicks="")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert 'href="https://acme.example/post?ref=nav#end"' in _caught_html()


def test_the_web_version_points_at_the_same_tagged_link(app, web, public, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, utm_enabled="1", utm_campaign="dec")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    tagged = Link.get((Link.campaign == campaign.id) & Link.url.contains("/post"))
    send = Send.select().where(Send.campaign == campaign.id).first()
    with app.app_context():
        token = tokens.sign("view", send.id)
    page = public.get(f"/v/{token}").get_data(as_text=True)
    assert re.search(r'href="https?://[^"]+/c/[^"]+/%d"' % tagged.id, page)  # the same Link row, not a raw link
    assert "utm_campaign=dec" not in page


def test_a_block_email_s_links_are_tagged(app):
    body = ('<table role="presentation"><tr><td><a href="https://acme.example/buy" '
            'style="background-color:#4338ca;color:#ffffff;">Buy now</a></td></tr></table>')
    prepared = prepare.prepare(body, "blocks", "S", base_url="https://loft.test", utm_settings=ON)
    assert f'href="https://acme.example/buy?{TAGS.replace("&", "&amp;")}"' in prepared.html_source


def test_the_example_link_follows_what_is_typed(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    live = soup(web.post(f"/campaigns/{campaign.id}/utm-example",
                         {"utm_enabled": "1", "utm_source": "newsletter", "utm_medium": "", "utm_campaign": "",
                          "utm_content": "top banner"}, htmx=True))
    assert live.select_one("#utm-example code.url").text == (
        "https://www.example.com/spring-sale?utm_source=newsletter&utm_medium=email&utm_campaign=december-news"
        "&utm_content=top%20banner")
    off = soup(web.post(f"/campaigns/{campaign.id}/utm-example", {"utm_source": "newsletter"}, htmx=True))
    assert off.select_one("#utm-example").text.strip() == "Links go out as written."
    bad = soup(web.post(f"/campaigns/{campaign.id}/utm-example", {"utm_enabled": "1", "utm_medium": "a\tb"}, htmx=True))
    assert bad.select_one("#utm-example").text.strip() == "utm_medium must be one line of text."
    assert Campaign.get_by_id(campaign.id).utm.get("source") != "newsletter"  # nothing saved
    other = Campaign.create(team=Team.create(name="Other"), name="Theirs")
    assert web.post(f"/campaigns/{other.id}/utm-example", {"utm_enabled": "1"}, htmx=True).status_code == 404
