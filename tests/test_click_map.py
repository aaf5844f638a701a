"""The click map on the campaign report: a real campaign sent into the catcher, its links clicked through
the public redirect, the aggregator run; then the report's table (shares, places of a repeated address)
and the sandboxed frame with each link marked, the content variant shown on request, and another
team's campaign not found."""
import datetime
import email
import email.policy
import re
from urllib.parse import urlsplit

from app.models import CaughtMessage
from app.models import Link
from app.models import Send
from app.models import utcnow
from app.reports import rollup
from tests.campaigns_support import create_draft
from tests.conftest import soup

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
BODY = ('<p><a href="https://acme.example/shop?a=1&amp;b=2">Shop now</a></p>'
        '<p><a href="https://acme.example/blog">Read the blog</a> or <a href="mailto:hi@acme.example">write</a></p>'
        '<p><a href="https://acme.example/shop?a=1&amp;b=2">Shop again</a> <a href="https://acme.example/faq">FAQ</a></p>')


def _clicks_of(message):
    parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
    html = parsed.get_body(("html",)).get_content()
    return {int(link_id): path for path, link_id in
            ((urlsplit(url).path, url.rsplit("/", 1)[1]) for url in re.findall(r'href="(https?://[^"]+/c/[^"]+)"', html))}


def _sent_and_clicked(app, web, public, ready_team, **overrides):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, **overrides)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    # An hour passes: a click seconds after delivery is a link scanner's, which never counts.
    Send.update(sent_at=utcnow() - datetime.timedelta(hours=1)).where(Send.campaign == campaign.id).execute()
    links = {link.url: link for link in Link.select().where(Link.campaign == campaign.id)}
    shop = next(link for url, link in links.items() if "/shop" in url)
    blog = next(link for url, link in links.items() if "/blog" in url)
    messages = list(CaughtMessage.select().order_by(CaughtMessage.id))
    assert len(messages) == 4
    # Three people click the shop (one of them twice), one the blog; nobody the FAQ.
    for message, link in ((messages[0], shop), (messages[0], shop), (messages[1], shop), (messages[2], shop),
                          (messages[3], blog)):
        answer = public.get(_clicks_of(message)[link.id], headers={"User-Agent": BROWSER},
                            environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert answer.status_code in (302, 303)
    with app.app_context():
        rollup.run()
    return campaign, links


def test_the_report_table_gives_each_address_its_share_and_places(app, web, public, ready_team):
    campaign, links = _sent_and_clicked(app, web, public, ready_team, utm_enabled="1", utm_campaign="march")
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    rows = {row.select_one("td.url").text: [td.get_text(strip=True) for td in row.select("td")[1:]]
            for row in page.select("#links tbody tr")}
    shop = "https://acme.example/shop?a=1&b=2&utm_source=loft&utm_medium=email&utm_campaign=march"
    # unique clicks, all clicks, share of the unique ones, share of all, places in the email
    assert rows[shop] == ["3", "4", "75.0%", "80.0%", "2 (counted together)"]
    assert rows["https://acme.example/blog?utm_source=loft&utm_medium=email&utm_campaign=march"] == \
        ["1", "1", "25.0%", "20.0%", "1"]
    assert rows["https://acme.example/faq?utm_source=loft&utm_medium=email&utm_campaign=march"] == \
        ["0", "0", "0.0%", "0.0%", "1"]
    assert list(rows)[0] == shop  # most clicked first
    frame = page.select_one("#click-map iframe")
    assert frame.has_attr("sandbox") and not frame["sandbox"] and frame["title"]
    assert frame["src"] == f"/reports/campaigns/{campaign.id}/clickmap.html"


def test_the_frame_marks_each_link_with_its_share(app, web, public, ready_team):
    campaign, links = _sent_and_clicked(app, web, public, ready_team)
    answer = web.get(f"/reports/campaigns/{campaign.id}/clickmap.html")
    assert answer.status_code == 200
    assert "sandbox" in answer.headers["Content-Security-Policy"]
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # default-src 'none': no script runs
    frame = soup(answer)
    shop = links["https://acme.example/shop?a=1&b=2"]
    marked = frame.select(f'a[data-loft-link="{shop.id}"]')
    assert [a.select_one(".loft-share").text for a in marked] == ["75% ×2", "75% ×2"]
    assert marked[0].select_one(".loft-share")["title"] == ("75% of unique clicks (3 people); 80% of all clicks (4 of 5); "
                                                           "this address is in 2 places, counted together")
    assert [a.get_text(" ", strip=True) for a in marked] == ["75% ×2 Shop now", "75% ×2 Shop again"]
    blog = frame.select_one(f'a[data-loft-link="{links["https://acme.example/blog"].id}"] .loft-share')
    assert blog.text == "25%"
    faq = frame.select_one(f'a[data-loft-link="{links["https://acme.example/faq"].id}"] .loft-share')
    assert faq.text == "0%"
    mail = frame.select_one('a[href="mailto:hi@acme.example"]')
    assert not mail.has_attr("data-loft-link") and mail.select_one(".loft-share") is None
    assert frame.select_one("head style").text.startswith("a[data-loft-link]")
    assert frame.select("script") == []


def test_a_content_variant_is_shown_on_request(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, ab_enabled="1", ab_sample_percent="50", ab_tests="content",
                            b_body='<p><a href="https://acme.example/other">Only in B</a></p>')
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})  # the sample: one message of A, one of B
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert [o["value"] for o in page.select("#f-map-variant option")] == ["", "B"]
    plain = soup(web.get(f"/reports/campaigns/{campaign.id}/clickmap.html"))
    assert "Only in B" not in plain.text and "Shop now" in plain.text
    variant = soup(web.get(f"/reports/campaigns/{campaign.id}/clickmap.html?variant=B"))
    assert "Only in B" in variant.text and "Shop now" not in variant.text
    chosen = soup(web.get(f"/reports/campaigns/{campaign.id}?variant=B"))
    assert chosen.select_one("#click-map iframe")["src"].endswith("clickmap.html?variant=B")
    places = {row.select_one("td.url").text: row.select("td")[5].get_text(strip=True)
              for row in chosen.select("#links tbody tr")}
    assert places["https://acme.example/shop?a=1&b=2"] == "not in this content"


def test_no_tracking_no_map_says_why(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY, track_clicks="")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert page.select_one("#click-map iframe") is None
    assert "Click tracking was off" in page.select_one("#click-map .empty").text


def test_another_teams_click_map_is_not_found(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body=BODY)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert web.get(f"/reports/campaigns/{campaign.id}/clickmap.html").status_code == 200
    web.post("/teams/new", {"name": "Other team"})  # switches to the new team
    assert web.get(f"/reports/campaigns/{campaign.id}/clickmap.html").status_code == 404
    assert web.get(f"/reports/campaigns/{campaign.id}").status_code == 404
