"""Admin > AI and the team's AI usage page in a real headless Chromium, at phone and desktop width:
accessible (axe-core), nothing wider than the screen, Test connection answered in place by the Gemini
stub, a refused price shown at its field, a team row saved in place. Skips where Chromium is missing."""
import datetime

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app import settings  # noqa: E402
from app.models import AiGeneration  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402

shot = screenshots("ai-admin")


def add_usage(team):
    now = utcnow()
    for months_back, micros in ((0, 1_300_000), (1, 800_000), (4, 2_100_000)):
        created = (now.replace(day=10) - datetime.timedelta(days=31 * months_back)).replace(day=10)
        AiGeneration.create(team=team, prompt="subject_lines", version="v1", model="gemini-2.5-flash",
                            input_hash=f"h{months_back}", inputs={}, output={}, cost_micros=micros,
                            created_at=created)


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_ai_settings_and_usage_pages_work_at_each_width(page, gemini, size):
    page.set_viewport_size(size)
    sign_up_admin(page)
    team = Team.get()
    Team.create(name="Babbage & Daughters")
    add_usage(team)

    page.goto("/admin/ai")
    expect(page.get_by_role("heading", level=1)).to_have_text("AI settings")
    expect(page.locator("#ai-settings")).to_contain_text("comes from the server's LOFT_GEMINI_API_KEY")
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"admin-{size['width']}")

    gemini.reply(text="Hello from the stub")
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#ai-test-result")
    expect(result).to_contain_text("Connection works.")
    expect(result).to_contain_text("Hello from the stub")
    gemini.fail(403, message="API key not valid.")
    page.get_by_role("button", name="Test connection").click()
    expect(result).to_contain_text("refused the API key")
    assert_accessible(page)
    assert_fits_the_screen(page)

    page.goto("/ai/usage")
    expect(page.locator("#ai-budget-text")).to_contain_text("$1.30 of $10.00 spent (13%)")
    expect(page.get_by_role("meter", name="Spent of this month's budget")).to_be_visible()
    expect(page.locator("#ai-months svg.chart rect.chart-bar")).to_have_count(3)
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"usage-{size['width']}")


def test_a_refused_price_is_shown_at_its_field_and_a_team_row_saves_in_place(app, page, gemini):
    sign_up_admin(page)
    other = Team.create(name="Babbage & Daughters")
    page.goto("/admin/ai")

    first_input_price = page.locator("#f-price-0-input")
    first_input_price.fill("-2")
    page.get_by_role("button", name="Save AI settings").click()
    expect(page.locator("#e-price-0-input")).to_contain_text("a number of 0 or more")
    expect(page.locator("#f-price-0-input")).to_be_focused()  # app.js moves focus to the first refused field
    expect(page.locator("#f-price-0-input")).to_have_value("-2")

    page.get_by_role("button", name="Add a row").click()
    rows = page.locator("#ai-prices .ai-price-row")
    expect(rows.last.locator("input[name$='.model']")).to_have_value("")
    rows.last.get_by_label("Model").fill("my-model")
    rows.last.get_by_label("Input, USD per 1M tokens").fill("0.2")
    rows.last.get_by_label("Output, USD per 1M tokens").fill("0.8")

    row = page.locator(f"#ai-team-{other.id}")
    row.get_by_label("AI on for Babbage & Daughters").uncheck()
    row.get_by_label("Budget, USD for Babbage & Daughters").fill("3")
    row.get_by_role("button", name="Save Babbage & Daughters").click()
    expect(page.locator(f"#ai-team-{other.id}")).to_contain_text("Saved.")
    other = Team.get_by_id(other.id)
    assert other.ai_enabled is False and other.ai_monthly_budget_usd == 3.0
    expect(page.locator(f"#ai-team-{other.id}")).to_contain_text("of $3.00")
    assert_accessible(page)

    # Saving the form (the refused price corrected) moves every team without its own budget to the new default.
    page.locator("#f-price-0-input").fill("0.1")
    page.get_by_label("Default monthly budget per team, USD").fill("20")
    page.get_by_role("button", name="Save AI settings").click()
    expect(page.locator("#flashes")).to_contain_text("AI settings saved.")
    team = Team.get(Team.name == "Analytical Engines")
    expect(page.locator(f"#ai-team-{team.id}")).to_contain_text("of $20.00")
    expect(page.locator(f"#ai-team-{other.id}")).to_contain_text("of $3.00")
    with app.app_context():
        assert settings.get_setting("ai_prices")["my-model"] == {"input_per_million": 0.2, "output_per_million": 0.8}
