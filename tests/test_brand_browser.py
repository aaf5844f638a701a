"""The brand kit in a real headless Chromium, at phone width: the live preview follows what is typed, a low
contrast is pointed out, and after saving the team's public pages wear the brand.

Real HTTP (tests/browser_support.py). Skips with the reason where Chromium or Playwright is missing.
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from app.models import BrandKit  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import Team  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


def test_brand_preview_save_and_public_page(page, live_server):
    sign_up_admin(page)
    team = Team.get()
    news = MailingList.create(team=team, name="News", visibility="public")
    page.goto("/teams/brand")
    expect(page.get_by_role("heading", level=1)).to_have_text("Brand kit")
    assert_fits_the_screen(page)
    assert_accessible(page)

    page.get_by_label("Primary colour").fill("#0f766e")
    sample_page = page.frame_locator("iframe[title^='Preview: your public sign-up page']")
    expect(sample_page.get_by_role("button", name="Subscribe")).to_have_css("background-color", "rgb(15, 118, 110)")
    email = page.frame_locator("iframe[title^='Preview: a sample block email']")
    expect(email.get_by_role("link", name="Shop the collection")).to_be_visible()
    assert "csrf_token" not in page.locator("#brand-preview iframe").first.get_attribute("src")

    page.get_by_label("Text colour").fill("#bbbbbb")
    expect(page.locator("#brand-preview .flash-warning")).to_contain_text("Text on the background has a contrast")
    page.get_by_label("Text colour").fill("#1c1917")
    expect(page.locator("#brand-preview .flash-warning")).to_have_count(0)
    page.get_by_label("Font").select_option(label="Georgia (serif)")
    page.get_by_label("Footer text").fill("Baked fresh in Springfield.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_contain_text("Brand kit saved")
    kit = BrandKit.get(BrandKit.team == team)
    assert (kit.primary_color, kit.text_color, kit.font) == ("#0f766e", "#1c1917", "georgia")

    visitor = page.context.browser.new_context(viewport=page.viewport_size)
    public = visitor.new_page()
    public.goto(live_server.url(f"/f/{news.public_id}"))
    expect(public.get_by_role("button", name="Subscribe")).to_have_css("background-color", "rgb(15, 118, 110)")
    expect(public.locator("body")).to_have_css("color", "rgb(28, 25, 23)")
    assert "Georgia" in public.evaluate("getComputedStyle(document.body).fontFamily")
    expect(public.locator(".pagefooter")).to_contain_text("Baked fresh in Springfield.")
    assert_accessible(public)
    visitor.close()
