"""The instance console in a real headless Chromium at phone size: the teams list and a team's page pass axe-core
and fit the screen; a suspension is typed and sent by keyboard and its banner is read on the next page.
Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


def test_console_and_suspension_by_keyboard(app, page):
    admin = sign_up_admin(page)
    page.goto("/admin/teams")
    expect(page.locator("#console-teams tbody tr")).to_have_count(1)
    assert_accessible(page)
    assert_fits_the_screen(page)
    page.locator("#console-teams tbody a").click()
    page.wait_for_url("**/admin/teams/*")
    assert_accessible(page)
    assert_fits_the_screen(page)
    page.get_by_label("Why suspend it").focus()
    page.keyboard.type("Testing the lever")
    page.keyboard.press("Tab")  # the Suspend button is next
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page.locator("#suspended-banner")).to_contain_text(
        "Sending is suspended by the instance administrator: Testing the lever.")
    expect(page.locator("#team-suspension")).to_contain_text("Testing the lever")
    assert_accessible(page)
    page.get_by_role("button", name=f"Resume {admin['team']}").click()
    expect(page.locator("#suspended-banner")).to_have_count(0)
