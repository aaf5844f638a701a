"""The API keys page in a real headless Chromium: create a key (refused first, then made), see it once with
the focus on it, copy it with the keyboard, revoke it after confirming, and axe at phone and desktop size.
Skips with the reason where Chromium is missing."""
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from app.api import keys  # noqa: E402
from app.models import ApiKey  # noqa: E402

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

shot = screenshots("api-keys")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_create_a_key_see_it_once_copy_it_and_revoke_it(app, page, size):
    page.set_viewport_size(size)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up_admin(page)
    page.goto("/api-keys/")
    page.wait_for_load_state()
    expect(page.locator("#api-keys-empty")).to_contain_text("Connect your product to Loft")
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"empty-{size['width']}")

    # A refusal lands at its field, with the focus there.
    page.get_by_label("Name").fill("Shop sign-ups")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#e-role")).to_contain_text("Choose one of the roles")
    expect(page.get_by_label("Role")).to_be_focused()
    expect(page.locator("#api-key-form.htmx-settling")).to_have_count(0)

    page.get_by_label("Role").select_option(label="Manager")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("API key “Shop sign-ups” (Manager)")
    expect(shown).to_have_value(re.compile(r"^loft_[A-Za-z0-9_-]{43}$"))
    expect(shown).to_be_focused()  # a screen reader reads it and the keyboard is on it at once
    raw = shown.input_value()
    with app.app_context():
        assert keys.authenticate(raw) is not None
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"created-{size['width']}")

    # The copy button works from the keyboard and says that it did.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Copy the key")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == raw

    # Shown once: a reload shows the list, never the key.
    page.reload()
    page.wait_for_load_state()
    expect(page.locator("#new-api-key")).to_have_count(0)
    assert raw not in page.content()
    row = page.locator("#api-key-list tbody tr").first
    expect(row).to_contain_text("Shop sign-ups")
    expect(row).to_contain_text(raw[:12] + "…")
    expect(row).to_contain_text("Active")

    # Revoking asks first; dismissing keeps the key.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke “Shop sign-ups”").click()
    expect(row).to_contain_text("Active")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke “Shop sign-ups”").click()
    page.wait_for_load_state()
    expect(page.locator(".flash-success")).to_contain_text("Key “Shop sign-ups” revoked")
    expect(page.locator("#api-key-list tbody tr").first).to_contain_text("Revoked")
    with app.app_context():
        assert keys.authenticate(raw) is None
        assert ApiKey.select().where(ApiKey.revoked_at.is_null()).count() == 0
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"revoked-{size['width']}")
