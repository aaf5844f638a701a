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
        "Warming up: day 1 of 15, 40 messages today, full volume (1,000 a day) in about 15 days")
    assert_fits_the_screen(page)
    shot(page, "card")


def test_a_sender_domain_gets_a_double_daily_plan_a_bad_target_is_answered_at_its_field(page):
    sign_up_admin(page)
    page.goto("/sending/domains")
    page.get_by_label("Domain").fill("acme.test")
    page.get_by_role("button", name=re.compile("Add")).click()
    expect(page.locator("#warmup .empty-plan")).to_contain_text("No warm-up plan")
    warm_up = page.get_by_label("Warm up acme.test")
    warm_up.focus()
    page.keyboard.press("Space")
    expect(warm_up).to_be_checked()
    page.get_by_label("Double daily from the first day to a target").check()
    page.get_by_label("Messages on the first day").fill("50")
    page.get_by_label("Target a day").fill("40")
    assert_fits_the_screen(page)
    page.get_by_role("button", name="Save plan").click()
    expect(page.locator("#e-warmup_target")).to_have_text(
        "Target a day: enter more than the first day's 50 messages, or choose a fixed cap.")
    expect(page.get_by_label("Target a day")).to_be_focused()
    assert_accessible(page)
    shot(page, "domain-error")

    page.get_by_label("Target a day").fill("3200")
    page.get_by_role("button", name="Save plan").click()
    expect(page.locator("#warmup .warmup-plan")).to_have_text("Doubles daily from 50 to 3,200 a day (6 days)")
    expect(page.locator("#warmup .warmup")).to_have_text(
        "Warming up: day 1 of 6, 50 messages today, full volume (3,200 a day) in about 6 days")
    assert_fits_the_screen(page)
    shot(page, "domain-plan")
