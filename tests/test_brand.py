"""The brand kit: the page (Team → Brand), its checks, the block emails and public pages it styles.

Real HTTP through the test client, the real block renderer; hostile values written straight into the
database must never reach a stylesheet, a page or an email.
"""
import pytest

from app.brand import services
from app.content.blocks.render import render_html
from app.models import BrandKit
from app.models import MailingList
from app.models import MediaItem
from tests.accounts_support import make_member
from tests.conftest import soup

GOOD = {"logo_url": "/m/abcdefgh12345678.png", "primary_color": "#0F766E", "background_color": "#fff",
        "text_color": "#111111", "font": "georgia", "footer_text": "Acme Bakery, fresh every morning."}


@pytest.fixture
def public(app):
    """A visitor: no session."""
    return app.test_client()


@pytest.fixture
def news(team):
    return MailingList.create(team=team, name="News", visibility="public")


def test_an_administrator_saves_the_brand_kit_and_block_emails_use_it(app, web, team):
    response = web.post("/teams/brand", GOOD)
    assert response.status_code == 302
    kit = BrandKit.get(BrandKit.team == team)
    assert (kit.primary_color, kit.background_color, kit.font) == ("#0f766e", "#ffffff", "georgia")
    with app.app_context():
        brand = services.brand_for(team)
    assert brand["primary_color"] == "#0f766e" and brand["font_family"].startswith("Georgia")
    assert brand["logo_url"] == "/m/abcdefgh12345678.png" and brand["footer_text"] == GOOD["footer_text"]
    html = render_html({"version": 1, "blocks": [{"id": "button01", "type": "button", "text": "Buy",
                                                  "href": "https://example.com/", "align": "left", "color": ""}]},
                       brand)
    assert "#0f766e" in html and "Georgia" in html and "/m/abcdefgh12345678.png" in html
    page = soup(web.get("/teams/brand"))
    assert page.select_one("#f-primary_color")["value"] == "#0f766e"
    assert page.select_one("#f-font option[selected]")["value"] == "georgia"


def test_bad_values_are_refused_at_their_field_and_nothing_is_stored(web, team):
    response = web.post("/teams/brand", dict(GOOD, primary_color="red", logo_url="javascript:alert(1)",
                                             font="Comic Sans"), htmx=True)
    assert response.status_code == 422
    page = soup(response)
    assert "#1d4ed8" in page.select_one("#e-primary_color").get_text()
    assert "https://" in page.select_one("#e-logo_url").get_text()
    assert page.select_one("#e-font").get_text() == "Choose one of the fonts in the list."
    assert page.select_one("#f-primary_color")["value"] == "red"  # the input kept
    assert BrandKit.select().count() == 0


def test_low_contrast_is_saved_with_a_warning_not_refused(web, team):
    response = web.post("/teams/brand", dict(GOOD, text_color="#777777", background_color="#888888"),
                        follow_redirects=True)
    assert response.status_code == 200
    warnings = [p.get_text() for p in soup(response).select(".flash-warning")]
    assert any("Text on the background has a contrast of" in w and "4.5:1" in w for w in warnings)
    assert BrandKit.get(BrandKit.team == team).text_color == "#777777"


def test_contrast_ratio_follows_wcag():
    assert round(services.contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert round(services.contrast_ratio("#777777", "#ffffff"), 2) == 4.48
    assert services.clean_color("#ABC") == "#aabbcc"
    for bad in ("#abcd", "abc", "#ggg", "#abc;", "rgb(0,0,0)", "#abc\n}", "", "#abc}x{"):
        assert services.clean_color(bad) is None, bad


def test_a_guest_sees_the_brand_kit_but_cannot_change_it(app, web, team):
    web.post("/teams/brand", GOOD)
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get("/teams/brand"))
    assert page.select_one("#brand-form fieldset").has_attr("disabled")
    assert page.select_one("#brand-read-only") is not None
    assert guest.post("/teams/brand", dict(GOOD, primary_color="#000000")).status_code == 403
    assert BrandKit.get(BrandKit.team == team).primary_color == "#0f766e"
    _, author = make_member(app, team, "author")
    assert author.post("/teams/brand", dict(GOOD, primary_color="#000000")).status_code == 403


def test_public_pages_carry_the_logo_colours_and_footer(web, team, news, public):
    web.post("/teams/brand", GOOD)
    page = soup(public.get(f"/f/{news.public_id}"))
    sheet = page.select('link[rel=stylesheet]')[-1]["href"]
    assert sheet.startswith("/b/")
    assert page.select_one("img.public-logo")["src"] == "/m/abcdefgh12345678.png"
    assert GOOD["footer_text"] in page.select_one(".pagefooter").get_text()
    css = public.get(sheet)
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "--accent: #0f766e;" in css.get_data(as_text=True)
    assert "Georgia" in css.get_data(as_text=True)
    assert "public" in css.headers["Cache-Control"] and "Set-Cookie" not in css.headers


def test_an_https_logo_is_for_emails_only_since_public_pages_load_images_from_loft(web, team, news, public):
    web.post("/teams/brand", dict(GOOD, logo_url="https://cdn.example.com/logo.png"))
    page = soup(public.get(f"/f/{news.public_id}"))
    assert page.select_one("img.public-logo") is None
    assert BrandKit.get(BrandKit.team == team).logo_url == "https://cdn.example.com/logo.png"


HOSTILE = {"primary_color": "red;}body{background:url(https://evil.example/x)}",
           "background_color": "#fff;}</style><script>alert(1)</script>",
           "text_color": "expression(alert(1))", "font": "x;}*{display:none}",
           "logo_url": "https://evil.example/a.png\" onerror=\"alert(1)",
           "footer_text": "<script>alert('footer')</script>"}


def test_hostile_values_in_the_database_never_reach_css_pages_or_emails(app, team, news, public):
    BrandKit.create(team=team, **HOSTILE)
    sheet_url = soup(public.get(f"/f/{news.public_id}")).select('link[rel=stylesheet]')[-1]["href"]
    css = public.get(sheet_url).get_data(as_text=True)
    for value in ("evil", "script", "expression", "display:none", "}body"):
        assert value not in css
    assert "--accent: #4338ca;" in css and "--bg: #f6f6f7;" in css  # the defaults instead
    page = public.get(f"/f/{news.public_id}").get_data(as_text=True)
    assert "evil.example" not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;footer&#39;)&lt;/script&gt;" in page  # shown as text
    with app.app_context():
        brand = services.brand_for(team)
    html = render_html({"version": 1, "blocks": [{"id": "heading1", "type": "heading", "text": "Hi",
                                                  "level": 1, "align": "left"}]}, brand)
    assert "evil" not in html and "expression(" not in html and "<script" not in html


def test_the_stylesheet_of_an_unknown_key_is_the_defaults(public):
    response = public.get("/b/no-such-key.css")
    assert response.status_code == 200
    assert "--accent: #4338ca;" in response.get_data(as_text=True)


def test_live_preview_shows_typed_values_without_storing_them(web, team):
    fragment = soup(web.get("/teams/brand/preview", query_string=dict(GOOD, text_color="#eeeeee"),
                            headers={"HX-Request": "true"}))
    assert "contrast" in fragment.select_one(".flash-warning").get_text()
    email_src, page_src = [frame["src"] for frame in fragment.select("iframe")]
    email = web.get(email_src)
    assert "#0f766e" in email.get_data(as_text=True)
    assert "sandbox" in email.headers["Content-Security-Policy"]
    page = web.get(page_src)
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    sheet = soup(page).select('link[rel=stylesheet]')[-1]["href"]
    assert "--accent: #0f766e;" in web.get(sheet).get_data(as_text=True)
    bad = web.get("/teams/brand/preview/style.css", query_string={"primary_color": "red;}x{"})
    assert "red" not in bad.get_data(as_text=True)
    assert BrandKit.select().count() == 0


def test_the_team_pages_link_to_the_brand_kit(web, team):
    page = soup(web.get("/teams/settings"))
    assert page.select_one('a[href="/teams/brand"]') is not None


def test_the_logo_is_picked_from_the_media_library(web, team):
    page = soup(web.get("/teams/brand"))
    assert page.select_one("#no-images a")["href"] == "/media/"
    MediaItem.create(team=team, key="Zx9_logoKey-000000000000", extension="png", name="logo.png",
                     content_type="image/png", width=200, height=80, bytes=1000, sha256="0" * 64)
    page = soup(web.get("/teams/brand"))
    assert page.select_one("#f-logo_url")["list"] == "media-images"
    option = page.select_one("#media-images option")
    assert option["value"] == "/m/Zx9_logoKey-000000000000.png" and option.get_text() == "logo.png"
    assert web.post("/teams/brand", dict(GOOD, logo_url=option["value"])).status_code == 302
    assert BrandKit.get(BrandKit.team == team).logo_url == "/m/Zx9_logoKey-000000000000.png"
