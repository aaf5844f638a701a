"""Warm-up on the SMTP account form in a real headless Chromium at phone size (390 px): turned on from
the keyboard, a bad value answered at its field with the focus there, and the card saying where the
warm-up stands. Skips with the reason where Chromium is missing."""
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

shot = screenshots("warmup")


def test_turn_warmup_on_from_the_keyboard_fix_a_bad_value_and_see_it_on_the_card(page):
    sign_up_admin(page)
    page.goto("/sending/accounts/new?preset=generic")
    page.get_by_label("Name", exact=True).fill("Relay")
    page.get_by_label("Host").fill("smtp.example.com")
    page.get_by_label("Messages per day").fill("1000")
    warm_up = page.get_by_label("Warm up this account")
    expect(warm_up).not_to_be_checked()
    warm_up.focus()
    page.keyboard.press("Space")
    expect(warm_up).to_be_checked()
    page.get_by_label("Messages on the first day").fill("0")
    page.get_by_label("Daily increase (%)").fill("25")
    assert_fits_the_screen(page)
    page.get_by_role("button", name="Save account").click()
    expect(page.locator("#e-warmup_first_day")).to_have_text("Messages on the first day: enter 1 or more.")
    expect(page.get_by_label("Messages on the first day")).to_be_focused()
    expect(page.get_by_label("Warm up this account")).to_be_checked()
    assert_accessible(page)
    shot(page, "form-error")

    page.get_by_label("Messages on the first day").fill("40")
    page.get_by_role("button", name="Save account").click()
    expect(page).to_have_url(re.compile(r"/sending/accounts#account-\d+$"), timeout=15_000)
    expect(page.locator("article.account .warmup")).to_have_text(
        "Warming up: day 1, 40 messages today, full volume (1,000 a day) in about 15 days")
    assert_fits_the_screen(page)
    shot(page, "card")
