"""Reports in a real headless Chromium at phone size: an open and a click made over real HTTP on the
tracking endpoints appear on the campaign report (counted by the page itself), with the chart drawn
under the strict CSP, and the dashboard shows its health verdict. Skips with the reason where
Chromium is missing."""
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app import tokens  # noqa: E402
from app.models import Team  # noqa: E402
from tests.reports_support import APPLE_MAIL  # noqa: E402
from tests.reports_support import build_campaign  # noqa: E402


shot = screenshots("reports")


def test_opens_and_clicks_over_http_show_on_the_report_and_the_dashboard(app, page):
    sign_up_admin(page)
    with app.app_context():
        team = Team.get()
        campaign, sends, links = build_campaign(team, ["ann@example.org", "bob@example.net"])
        pixel = f"/o/{tokens.sign('open', sends[0].id)}.gif"
        click = f"/c/{tokens.sign('click', sends[0].id)}/{links[0].id}"
    as_mail_app = {"User-Agent": APPLE_MAIL}
    assert page.request.get(pixel, headers=as_mail_app).status == 200
    answer = page.request.get(click, headers=as_mail_app, max_redirects=0)
    assert (answer.status, answer.headers["location"]) == (302, "https://example.org/read")

    page.goto("/reports/")
    expect(page.get_by_role("heading", name=re.compile("Sending health"))).to_be_visible()
    expect(page.locator("#totals")).to_be_visible()
    assert_fits_the_screen(page)
    shot(page, "dashboard")

    page.goto(f"/reports/campaigns/{campaign.id}")
    expect(page.locator("[data-metric=sent] dd")).to_have_text("2")
    expect(page.locator("[data-metric=opens_unique] dd")).to_contain_text("1")
    expect(page.locator("[data-metric=clicks_unique] dd")).to_contain_text("1")
    chart = page.locator("figure.chart-figure svg").first
    expect(chart).to_be_visible()  # drawn with classes only: a style attribute would be a CSP error
    assert chart.bounding_box()["width"] > 200
    assert_fits_the_screen(page)
    shot(page, "campaign")
    download = page.get_by_role("link", name="Download CSV")
    download.focus()
    expect(download).to_be_focused()
