"""The billing pages in a real headless Chromium at phone and desktop sizes: the meter with a month of sending, a
cap and its chart, and Admin > Billing, with no serious accessibility problem and nothing wider than the screen.
Skips with the reason where Chromium is missing."""
import datetime

import pytest

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                    "(`make test` installs it from requirements-dev.txt)")

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app import usage  # noqa: E402
from app.models import Team  # noqa: E402
from app.teams import standing  # noqa: E402


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_meter_and_admin_billing_are_accessible_and_fit_the_screen(app, page, size):
    sign_up_admin(page)
    with app.app_context():
        team = Team.get()
        standing.set_cap(team, 100_000)
        usage.count_sent(team.id, 25_000, domain="news.example.com")
        usage.count_sent(team.id, 1_200, stream="transactional", domain="example.com")
        usage.count_sent(team.id, 250_000, now=datetime.datetime.utcnow() - datetime.timedelta(days=62),
                         domain="news.example.com")
    page.set_viewport_size(size)
    response = page.goto("/billing")
    assert response.status == 200
    assert page.locator("#billing-due").inner_text().strip() == "$4.05"  # 26,200 emails: 16,200 x $0.25 / 1,000
    assert page.locator("#billing-months figure svg").count() == 1
    assert_accessible(page)
    assert_fits_the_screen(page)
    response = page.goto("/admin/billing")
    assert response.status == 200 and page.locator("#f-key-1").input_value() == "standard"
    assert_accessible(page)
    assert_fits_the_screen(page)
