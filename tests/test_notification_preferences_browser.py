"""The notification preferences page in a real headless Chromium at phone size, used by keyboard only: reach it
from the account menu, tick and untick boxes with Space, save with Enter; axe-core and the phone's width.
Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402
from app.models import NotificationPreference  # noqa: E402


def test_preferences_by_keyboard(app, page):
    sign_up_admin(page)
    page.goto("/campaigns/")
    menu = page.locator(".account-menu summary")
    menu.focus()
    page.keyboard.press("Enter")  # opens the account menu
    link = page.locator(".account-menu a", has_text="Notifications")
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/notices/preferences")
    assert_accessible(page)
    assert_fits_the_screen(page)

    worker_email = page.get_by_label("Worker not running By email")
    expect(worker_email).to_be_checked()
    worker_email.focus()
    page.keyboard.press("Space")
    expect(worker_email).not_to_be_checked()
    page.keyboard.press("Tab")  # the next control is the same event's "in the app" box
    expect(page.get_by_label("Worker not running In the app")).to_be_focused()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Save preferences").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/notices/preferences")
    expect(page.locator("#flashes")).to_contain_text("Notification preferences for")
    expect(page.get_by_label("Worker not running By email")).not_to_be_checked()
    expect(page.get_by_label("Worker not running In the app")).not_to_be_checked()
    expect(page.get_by_label("Campaign finished By email")).to_be_checked()
    rows = [(row.event, row.by_email, row.in_app) for row in NotificationPreference.select()]
    assert rows == [("worker_down", False, False)]
    assert_accessible(page)
