"""Tags in a real headless Chromium at phone width: add by keyboard with the existing tags offered,
remove with the chip's button, filter the list, rename and delete on the Tags page.

Runs against the app over real HTTP (tests/browser_support.py) and skips with the reason where
Chromium or Playwright is missing.
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin

from app.contacts import tags
from app.models import Contact
from app.models import Team


def test_tag_a_contact_by_keyboard_then_filter_rename_and_delete(page):
    sign_up_admin(page)
    team = Team.get()
    ann = Contact.create(team=team, email="ann@example.com", domain="example.com", attributes={})
    Contact.create(team=team, email="bob@example.com", domain="example.com", attributes={})
    tags.create_tag(team, "Customer")

    page.goto(f"/contacts/{ann.id}")
    section = page.locator("section#tags")
    expect(section).to_contain_text("No tags yet")
    assert page.locator("#tag-choices option").evaluate_all("options => options.map(o => o.value)") == ["Customer"]
    box = page.get_by_label("Add tags")
    box.focus()
    page.keyboard.type("customer, Spring fair")
    page.keyboard.press("Enter")
    chips = section.locator("li.tag-chip a")
    expect(chips).to_have_text(["Customer", "Spring fair"])
    expect(page.get_by_label("Add tags")).to_be_focused()  # ready for the next one
    assert_fits_the_screen(page)  # nothing runs off a phone screen

    page.get_by_label("Add tags").fill("x" * 70)
    page.get_by_label("Add tags").press("Enter")
    expect(page.locator("#e-tags")).to_contain_text("64 characters")
    expect(page.get_by_label("Add tags")).to_be_focused()  # app.js moves focus to the refused field

    remove = page.get_by_role("button", name="Remove the tag Customer")
    remove.focus()
    page.keyboard.press("Enter")
    expect(chips).to_have_text(["Spring fair"])
    expect(page.get_by_label("Add tags")).to_be_focused()  # the pressed button is gone; focus is not lost

    page.goto("/contacts/")
    page.get_by_label("Tag", exact=True).select_option(label="Spring fair")
    rows = page.locator("#contact-results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ann@example.com")
    page.get_by_label("Select ann@example.com").check()
    page.get_by_label("Action").select_option(label="Add tag")
    page.get_by_label("Tag (add / remove)").fill("Newsletter fan")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("section#bulk-job")).to_contain_text("1 contact changed")
    assert [tag.name for tag in tags.tags_of(ann)] == ["Newsletter fan", "Spring fair"]
    page.goto("/contacts/?tag=%d" % tags.find_tag(team, "spring fair").id)

    page.goto("/contacts/tags")
    rename = page.get_by_label("Name of the tag Spring fair")
    rename.fill("Fair 2026")
    rename.press("Enter")
    expect(page.locator("#tags-page [role=status]")).to_contain_text("Renamed")
    page.get_by_role("link", name="Delete… Fair 2026").click()
    expect(page.locator("#tag-usage")).to_contain_text("1 contact loses this tag")
    page.get_by_role("button", name="Delete tag").click()
    expect(page.get_by_role("main")).to_contain_text("Tag “Fair 2026” deleted; 1 contact lost it.")
    expect(page.locator("table.tags tbody tr td.num")).to_have_text(["0 contacts tagged Customer",
                                                                     "1 contact tagged Newsletter fan"])
