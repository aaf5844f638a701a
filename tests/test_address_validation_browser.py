"""Address validation in a real headless Chromium: a list's check shows its progress bar, polls, and turns into the
result table; a contact's "Validate" swaps its card; a sign-up form's "Did you mean …?" button signs up the fix.

Runs against the app over real HTTP (tests/browser_support.py), DNS on a loopback server (dns_zone), and skips
with the reason where Chromium or Playwright is missing.
"""
import threading
import time

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import DESKTOP
from browser_support import PHONE
from browser_support import assert_accessible
from browser_support import assert_fits_the_screen
from browser_support import sign_up_admin

from app.contacts import validity
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from app.models import ValidationJob


@pytest.fixture
def zone(dns_zone):
    dns_zone.add("acme.example", "MX", "10 mx.acme.example.")
    dns_zone.add("gmail.com", "MX", "5 gmail-smtp-in.l.google.com.")
    dns_zone.add("nomail.example", "MX", "0 .")
    return dns_zone


def seed(team, mailing_list, emails):
    for email in emails:
        contact = Contact.create(team=team, email=email, domain=email.rpartition("@")[2])
        Subscription.create(contact=contact, list=mailing_list)


def test_a_lists_check_shows_progress_then_the_result_table(app, page, zone):
    sign_up_admin(page)
    page.set_viewport_size(DESKTOP)
    team = Team.get()
    news = MailingList.create(team=team, name="News")
    seed(team, news, ["pat@acme.example", "info@acme.example", "lee@nomail.example", "max@nowhere.example"])

    # A job waiting for its worker: the card shows a progress bar and asks for itself every second.
    job = validity.start_job(team, news)
    page.goto(f"/contacts/lists/{news.id}")
    card = page.locator("#list-validation")
    expect(card).to_have_attribute("data-state", "queued")
    expect(card.locator("progress")).to_be_visible()
    expect(card).to_contain_text("Checked 0 of 4")

    # The worker runs it (the task's own function, on another thread, as a huey consumer would).
    def work():
        time.sleep(1.2)  # at least one poll sees the job still waiting
        with app.app_context():
            validity.run_job(job.id, chunk=2)
    worker = threading.Thread(target=work)
    worker.start()
    expect(card).to_have_attribute("data-state", "done", timeout=15_000)
    worker.join()
    expect(card.locator("progress")).to_have_count(0)
    expect(card.locator(".validation-counts tr[data-status=valid] td")).to_have_text("1")
    expect(card.locator(".validation-counts tr[data-status=risky] td")).to_have_text("1")
    expect(card.locator(".validation-counts tr[data-status=invalid] td")).to_have_text("2")
    flagged = card.locator(".validation-flagged tbody tr")
    expect(flagged).to_have_count(3)
    expect(flagged.filter(has_text="lee@nomail.example")).to_contain_text("null MX")
    expect(card.locator("svg.chart")).to_be_visible()

    # Only the invalid ones, swapped in place.
    before = page.url
    card.get_by_role("link", name="Invalid", exact=True).click()
    expect(flagged).to_have_count(2)
    assert page.url == before  # swapped by htmx, not a new page

    # Checking again from the button: huey runs the task at once in tests, the card shows the new result.
    Contact.update(email="pat@gmail.com", domain="gmail.com").where(Contact.email == "max@nowhere.example").execute()
    card.get_by_role("button", name="Validate this list again").click()
    expect(card.locator(".validation-counts tr[data-status=valid] td")).to_have_text("2")
    assert ValidationJob.select().count() == 2


def test_validate_on_a_contacts_page_swaps_its_card(app, page, zone):
    sign_up_admin(page)
    team = Team.get()
    contact = Contact.create(team=team, email="kim@gmail.con", domain="gmail.con")
    page.goto(f"/contacts/{contact.id}")
    card = page.locator("#validation")
    expect(card).to_contain_text("Not checked yet")
    card.get_by_role("button", name="Validate").click()
    expect(card).to_have_attribute("data-status", "invalid")
    expect(card.locator(".validation-suggestion")).to_contain_text("Did you mean kim@gmail.com?")
    expect(card.get_by_role("button", name="Validate again")).to_be_visible()
    assert Contact.get_by_id(contact.id).validation_status == "invalid"


def test_a_sign_up_typo_is_fixed_with_one_click(app, page, live_server, zone):
    app.config.update(SIGNUP_CHECK_DOMAINS=True, SIGNUP_MIN_SECONDS=0)
    sign_up_admin(page)
    team = Team.get()
    news = MailingList.create(team=team, name="News", visibility="public", double_opt_in=False)
    page.goto(f"/f/{news.public_id}")
    page.get_by_label("Email address").fill("ann@gmial.com")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("#e-email")).to_contain_text("Did you mean ann@gmail.com?")
    assert Contact.select().where(Contact.email.contains("ann@")).count() == 0
    page.get_by_role("button", name="Use ann@gmail.com").click()
    expect(page.locator("#e-email")).to_have_count(0)
    assert Contact.get(Contact.email == "ann@gmail.com").team_id == team.id


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_validation_cards_and_the_typo_question_are_accessible_and_fit_a_phone(app, page, zone, size):
    app.config.update(SIGNUP_CHECK_DOMAINS=True, SIGNUP_MIN_SECONDS=0)
    sign_up_admin(page)
    page.set_viewport_size(size)
    team = Team.get()
    news = MailingList.create(team=team, name="News", visibility="public")
    seed(team, news, ["pat@acme.example", "info@acme.example", "a-rather-long-address-for-a-phone@nomail.example",
                      "kim@gmail.con"])
    with app.app_context():
        validity.run_job(validity.start_job(team, news).id)
    contact = Contact.get(Contact.email == "kim@gmail.con")
    for path in (f"/contacts/lists/{news.id}", f"/contacts/lists/{news.id}/validation", f"/contacts/{contact.id}"):
        page.goto(path)
        if path.endswith(f"/{contact.id}"):
            page.locator("#validation").get_by_role("button", name="Validate").click()
            expect(page.locator("#validation")).to_have_attribute("data-status", "invalid")
        assert_accessible(page)
        assert_fits_the_screen(page)
    running = validity.start_job(team, news)
    page.goto(f"/contacts/lists/{news.id}")
    expect(page.locator("#list-validation progress")).to_be_visible()
    assert_accessible(page)
    with app.app_context():
        validity.cancel_job(running)
    page.goto(f"/f/{news.public_id}")
    page.get_by_label("Email address").fill("ann@gmial.com")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("button", name="Use ann@gmail.com")).to_be_visible()
    assert_accessible(page)
    assert_fits_the_screen(page)
