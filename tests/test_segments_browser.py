"""The segment rule builder in a real headless Chromium: rules are added, changed and removed
without a page load, the count follows, and the keyboard focus lands somewhere sensible.

Skips with the reason where Chromium or Playwright is missing (see tests/browser_support.py).
"""
import os

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import ADMIN
from browser_support import DESKTOP
from browser_support import PHONE
from browser_support import sign_up_admin


def settled(page):
    """Wait until htmx has finished the request, the swap and the settle of the builder.

    A person cannot touch a control in the milliseconds between its arrival and
    htmx wiring it up; Playwright can, so each builder change waits here first.
    """
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def _audience():
    from app.models import Contact
    from app.models import MailingList
    from app.models import Subscription
    from app.models import Team
    team = Team.get(Team.name == ADMIN["team"])
    news = MailingList.create(team=team, name="News")
    for index, status in enumerate(["active", "active", "active", "bounced", "unsubscribed"]):
        contact = Contact.create(team=team, email=f"p{index}@example.com", domain="example.com", status=status)
        if index % 2 == 0:
            Subscription.create(contact=contact, list=news)
    return team


def test_build_a_segment_without_a_page_load(page):
    from app.models import Segment

    sign_up_admin(page)
    _audience()
    page.goto("/segments/")
    expect(page.locator("section.empty")).to_contain_text("A segment is a saved set of rules")
    page.get_by_role("link", name="Create your first segment").click()
    page.wait_for_url("**/segments/new")
    count = page.locator("#segment-count")
    expect(count).to_contain_text("5 contacts match")
    page.evaluate("window.loftMarker = 'still here'")  # a full page load would wipe it

    page.get_by_label("Name").fill("Active subscribers")
    # Changing the field swaps the comparison and the value inputs.
    page.get_by_label("Rule 1: field").select_option(label="Status")
    settled(page)
    expect(page.get_by_label("Rule 1: comparison").locator("option")).to_have_text(["is", "is not"])
    expect(page.get_by_label("Rule 1: value")).to_have_value("active")
    expect(count).to_contain_text("3 contacts match")
    page.get_by_label("Rule 1: value").select_option(label="Bounced")
    expect(count).to_contain_text("1 contact matches")
    page.get_by_label("Rule 1: value").select_option(label="Active")
    expect(count).to_contain_text("3 contacts match")

    page.get_by_role("button", name="Add rule").click()
    settled(page)
    expect(page.locator("#builder .rule")).to_have_count(2)
    expect(page.get_by_label("Rule 2: field")).to_be_focused()
    page.get_by_label("Rule 2: field").select_option(label="List membership")
    settled(page)
    expect(page.locator("select#value-1")).to_be_attached()  # the swap has happened
    page.get_by_label("Rule 2: value").select_option(label="News")
    expect(count).to_contain_text("2 contacts match")  # p0 and p2 (p4 left)

    # A text rule counts as it is typed.
    page.get_by_role("button", name="Add rule").click()
    settled(page)
    expect(page.get_by_label("Rule 3: field")).to_be_focused()
    page.get_by_label("Rule 3: value").fill("p2@")
    expect(count).to_contain_text("1 contact matches")
    page.get_by_role("button", name="Remove rule 3").click()
    settled(page)
    expect(page.locator("#builder .rule")).to_have_count(2)
    expect(page.get_by_role("button", name="Add rule")).to_be_focused()
    expect(count).to_contain_text("2 contacts match")

    # A group, switched to OR, then removed again.
    page.get_by_role("button", name="Add group").click()
    settled(page)
    expect(page.locator("fieldset.rule-group.nested")).to_have_count(1)
    page.get_by_role("button", name="Remove group 3").click()
    settled(page)
    expect(page.locator("fieldset.rule-group.nested")).to_have_count(0)
    assert page.evaluate("window.loftMarker") == "still here"

    page.get_by_role("button", name="Save segment", exact=True).last.click()
    page.wait_for_url("**/segments/*")
    expect(page.locator("#flashes")).to_contain_text("Segment “Active subscribers” was saved.")
    segment = Segment.get(Segment.name == "Active subscribers")
    assert [r["field"] for r in segment.rules["rules"]] == ["status", "list"]

    page.goto("/segments/")
    expect(page.locator(f"#count-{segment.id}")).to_have_text("2")  # counted after the page arrived


def test_a_wrong_value_is_explained_next_to_its_rule(page):
    from app.models import CustomField
    from app.models import Team

    sign_up_admin(page)
    team = _audience()
    CustomField.create(team=team, key="plan", label="Plan", type="number")
    page.goto("/segments/new")
    page.get_by_label("Rule 1: field").select_option(label="Plan")
    settled(page)
    expect(page.get_by_label("Rule 1: comparison")).to_have_value("eq")
    page.get_by_label("Rule 1: value").fill("lots")
    page.get_by_label("Rule 1: value").press("Tab")
    expect(page.locator("#error-0")).to_have_text("Enter a number, for example 42 or 3.5.")
    expect(page.locator("#segment-count")).to_contain_text("Fix the rules marked below")
    page.get_by_label("Rule 1: value").fill("3")
    page.get_by_label("Rule 1: value").press("Tab")
    expect(page.locator("#error-0")).to_have_text("")
    expect(page.locator("#segment-count")).to_contain_text("0 contacts match")
    assert Team.select().count() == 1


@pytest.mark.skipif(not os.environ.get("LOFT_SCREENSHOTS"),
                    reason="set LOFT_SCREENSHOTS=<directory> to save screenshots of the segment pages")
def test_screenshots_of_the_builder(page):
    """Not a check: pictures of the builder at phone and desktop size, for a person to look at."""
    directory = os.environ["LOFT_SCREENSHOTS"]
    os.makedirs(directory, exist_ok=True)
    sign_up_admin(page)
    _audience()
    page.goto("/segments/new")
    page.get_by_label("Rule 1: field").select_option(label="Status")
    settled(page)
    page.get_by_role("button", name="Add group").click()
    settled(page)
    page.get_by_label("Rule 2.1: field").select_option(label="Date added")
    settled(page)
    expect(page.get_by_label("Rule 2.1: comparison")).to_have_value("within_last_days")
    page.get_by_label("Rule 2.1: value").fill("30")
    page.get_by_role("button", name="Add rule to group 2").click()
    settled(page)
    page.get_by_label("Rule 2.2: field").select_option(label="List membership")
    settled(page)
    expect(page.locator("select#value-1-1")).to_be_attached()
    for size, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        page.set_viewport_size(size)
        page.screenshot(path=os.path.join(directory, f"segment-builder-{name}.png"), full_page=True)
