"""The contact pages in a real headless Chromium: search as you type, 422 form swaps, lists, Load more.

Runs against the app over real HTTP (tests/browser_support.py) and skips with
the reason where Chromium or Playwright is missing.
"""
import datetime
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import DESKTOP
from browser_support import sign_up_admin

from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Team


def seed(count=60):
    team = Team.get()
    Contact.insert_many([{"team": team.id, "email": f"person{i:03d}@example.com", "domain": "example.com",
                          "name": f"Person {i:03d}"} for i in range(count)]).execute()
    Contact.create(team=team, email="grace@navy.example", domain="navy.example", name="Grace Hopper")
    return team


def test_search_as_you_type_and_keyset_pages(page):
    sign_up_admin(page)
    seed()
    page.goto("/contacts/")
    rows = page.locator("#contact-results tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(11)
    expect(page).to_have_url(re.compile(r"before=\d+"))
    page.get_by_role("link", name="Newest").click()
    expect(rows).to_have_count(50)

    search = page.get_by_label("Search")
    search.fill("hopper")  # no Enter: htmx searches after a short pause
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("grace@navy.example")
    expect(page).to_have_url(re.compile(r"q=hopper"))
    assert page.evaluate("document.activeElement.id") == "f-q"  # typing carries on in the box

    page.get_by_label("Status", exact=True).select_option("bounced")
    expect(page.locator("#no-matches")).to_be_visible()


def test_new_contact_form_shows_errors_in_place_then_saves(page):
    sign_up_admin(page)
    page.goto("/contacts/new")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_label("Name").fill("Ada")
    page.get_by_role("button", name="Add contact").click()
    error = page.locator("#e-email")
    expect(error).to_contain_text("not valid")
    expect(page.get_by_label("Email address")).to_be_focused()  # app.js moves focus to the invalid field
    expect(page.get_by_label("Name")).to_have_value("Ada")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_role("button", name="Add contact").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada")
    expect(page.locator("#timeline li.event")).to_have_count(1)


def test_lists_and_timeline_on_the_contact_page(page):
    sign_up_admin(page)
    page.set_viewport_size(DESKTOP)
    team = seed(1)
    MailingList.create(team=team, name="Newsletter")
    contact = Contact.get(Contact.email == "grace@navy.example")
    start = datetime.datetime(2026, 1, 1)
    for i in range(30):
        Event.create(team=team, contact=contact, type="opened", campaign_id=i, at=start + datetime.timedelta(hours=i))
    page.goto(f"/contacts/{contact.id}")
    lists = page.locator("section#lists")
    lists.get_by_role("button", name="Add").click()
    expect(lists.locator("li[data-list]")).to_contain_text("Newsletter")
    expect(lists.get_by_role("status")).to_have_text("Added to “Newsletter”.")

    events = page.locator("#timeline li.event")
    expect(events).to_have_count(25)
    page.get_by_role("link", name="Load more").click()
    expect(events).to_have_count(30)
    expect(page.get_by_role("link", name="Load more")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    lists.get_by_role("button", name="Remove").click()
    expect(lists.locator(".empty")).to_have_text("Not on any list.")
