"""The dashboard, the campaign calendar and the campaign list in a real headless Chromium at phone width
(390 px) and on a desktop: nothing wider than the screen, the growth toggle and the calendar reached by
keyboard, the calendar becoming an agenda on a phone, the list's search swapping its results, and
duplicating a campaign in one click. Skips with the reason where Chromium is missing."""
import datetime
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import DESKTOP  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.models import Campaign  # noqa: E402
from app.models import Contact  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import TeamDay  # noqa: E402
from app.models import utcnow  # noqa: E402
from tests.reports_support import build_campaign  # noqa: E402


shot = screenshots("dashboard")


@pytest.fixture
def team_data(app, page):
    sign_up_admin(page)
    with app.app_context():
        team = Team.get()
        today = utcnow().date()
        for days_ago in range(90):
            TeamDay.create(team=team, day=(today - datetime.timedelta(days=days_ago)).isoformat(),
                           new_contacts=3 + days_ago % 5, unsubscribes=days_ago % 2)
        Contact.create(team=team, email="ann@example.org", domain="example.org", name="Ann Lee", attributes={})
        sent, _, _ = build_campaign(team, ["ann@example.org", "bob@example.net"], name="Autumn launch",
                                    sent_ago=datetime.timedelta(minutes=1))
        paused = Campaign.create(team=team, name="Winter teaser", state="paused", state_reason="Paused by you",
                                 started_at=utcnow() - datetime.timedelta(minutes=1))
        return {"sent": Campaign.get_by_id(sent.id), "paused": paused}


def test_dashboard_at_phone_width_by_keyboard(page, team_data):
    page.goto("/dashboard")
    expect(page.locator("#first-steps-progress")).to_contain_text("of 7 steps done")
    expect(page.locator("#attention")).to_contain_text("“Winter teaser” is paused: Paused by you")
    expect(page.locator("#recent")).to_contain_text("Autumn launch")
    chart = page.locator("#growth svg.chart")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] <= 390
    assert_fits_the_screen(page)
    shot(page, "phone")
    assert_accessible(page)

    # The 90-day toggle by keyboard: focus it, press Enter.
    ninety = page.locator(".period-toggle a", has_text="90 days")
    ninety.focus()
    expect(ninety).to_be_focused()
    assert ninety.evaluate("el => getComputedStyle(el).outlineStyle") != "none"  # the focus is visible
    page.keyboard.press("Enter")
    expect(page.locator("#growth-title")).to_have_text("List growth, last 90 days")
    expect(page.locator('.period-toggle a[aria-current="true"]')).to_have_text("90 days")
    page.locator("#growth details.chart-data summary").click()
    expect(page.locator("#growth details.chart-data tbody tr")).to_have_count(90)

    # An attention item leads to what needs doing.
    page.locator("#attention a", has_text="Winter teaser").click()
    page.wait_for_url(f"**/campaigns/{team_data['paused'].id}/progress")


def test_calendar_is_an_agenda_on_a_phone_and_a_table_on_a_desktop(page, team_data):
    sent = team_data["sent"]
    month = sent.started_at.strftime("%Y-%m")
    page.goto(f"/campaigns/calendar?month={month}")
    expect(page.locator("table.calendar")).to_be_hidden()
    agenda = page.locator(".calendar-agenda")
    expect(agenda).to_be_visible()
    expect(agenda.get_by_role("link", name="Autumn launch")).to_be_visible()
    assert_fits_the_screen(page)
    shot(page, "calendar-phone")
    assert_accessible(page)

    page.set_viewport_size(DESKTOP)
    expect(agenda).to_be_hidden()
    cell = page.locator(f'table.calendar td[data-day="{sent.started_at.date().isoformat()}"]')
    expect(cell.get_by_role("link", name="Autumn launch")).to_be_visible()
    expect(page.locator('table.calendar td[aria-current="date"]')).to_have_count(1)
    shot(page, "calendar-desktop")
    assert_accessible(page)

    # The next month by keyboard, then back, then into the campaign.
    next_month = page.get_by_role("link", name="Next month")
    next_month.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).not_to_contain_text(sent.started_at.strftime("%B %Y"))
    page.get_by_role("link", name="Previous month").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Calendar: {sent.started_at.strftime('%B %Y')}")
    link = cell.get_by_role("link", name="Autumn launch")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/campaigns/{sent.id}/progress")


def test_campaign_list_search_and_duplicate(page, team_data):
    page.goto("/campaigns/")
    rows = page.locator("#campaign-results tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Search by name").fill("autumn")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/campaigns/\?q=autumn"))  # the URL follows the search
    shot(page, "campaigns-phone")
    assert_fits_the_screen(page)
    assert_accessible(page)
    page.get_by_label("State").select_option("draft")
    expect(page.locator("#no-match")).to_be_visible()
    page.get_by_label("State").select_option("")
    expect(rows).to_have_count(1)
    rows.get_by_role("button", name="Duplicate “Autumn launch”").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Copy of Autumn launch")
    expect(page.locator(".flash-success")).to_contain_text("is a new draft")
