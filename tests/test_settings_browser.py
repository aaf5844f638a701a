"""HTMX settings forms in a real headless Chromium (issue 9, points 16 and 19).

A saved message shows where the form was saved (not later, on another page), the
header's team name follows a rename, a connection test updates its SMTP card, and a
new field's key follows its label as it is typed. Skips where Chromium is missing.
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import sign_up_admin  # noqa: E402

from app import security  # noqa: E402
from app.models import SmtpAccount  # noqa: E402
from app.models import Team  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def test_team_settings_say_saved_in_place_and_the_header_follows_the_rename(page):
    sign_up_admin(page)
    page.goto("/teams/settings")
    expect(page.locator("#flashes")).not_to_contain_text("Welcome")  # the dashboard showed it already
    page.get_by_label("Team name").fill("Difference Engines")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#flashes")).to_contain_text("Team settings saved.")
    expect(page.locator("#team-switch option:checked")).to_have_text("Difference Engines")
    page.goto("/contacts/")
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#flashes")).not_to_contain_text("Team settings saved.")


def test_a_connection_test_updates_the_accounts_last_test_line(page, app):
    sign_up_admin(page)
    with app.app_context():
        password = security.encrypt("secret")
    SmtpAccount.create(team=Team.get(), name="Relay", host="127.0.0.1", port=free_port(), tls_mode="starttls",
                       username="ada@example.com", password=password, per_day=1000, max_connections=2)
    page.goto("/sending/accounts")
    line = page.locator(".account .last-test")
    expect(line).to_contain_text("Never tested")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".test-result")).to_contain_text("Test failed.")
    expect(line).to_contain_text("Failed")
    expect(line).not_to_contain_text("Never tested")


def test_a_new_fields_key_follows_its_label_until_typed_by_hand(page):
    sign_up_admin(page)
    page.goto("/contacts/fields")
    label = page.locator("#new-field").get_by_label("Label")
    key = page.locator("#new-field").get_by_label("Key")
    label.fill("Favourite colour")
    expect(key).to_have_value("favourite_colour")
    label.fill("Café crème")
    expect(key).to_have_value("cafe_creme")
    key.fill("drink")
    label.fill("Favourite drink")
    expect(key).to_have_value("drink")
    page.locator("#new-field").get_by_role("button", name="Add field").click()
    expect(page.locator("#fields-page tr[data-key=drink] input[name=label]")).to_have_value("Favourite drink")


def test_an_unreadable_number_does_not_clear_the_stored_value(page):
    """Custom number fields are type=number; a value the browser cannot read would be sent empty (which
    removes the stored value), so app.js stops that submit and the browser names the field."""

    from app.models import Contact
    from app.models import CustomField

    sign_up_admin(page)
    team = Team.get()
    CustomField.create(team=team, key="seats", label="Seats", type="number")
    contact = Contact.create(team=team, email="kim@example.com", domain="example.com", name="Kim",
                             attributes={"seats": 42})
    page.goto(f"/contacts/{contact.id}/edit")
    seats = page.get_by_label("Seats")
    expect(seats).to_have_attribute("type", "number")
    seats.fill("")
    seats.press_sequentially("4e")  # a number input accepts the keys, but its value is unreadable
    page.get_by_role("button", name="Save").click()
    expect(seats).to_be_focused()
    assert seats.evaluate("field => field.validity.badInput") is True
    assert Contact.get_by_id(contact.id).attributes == {"seats": 42}
    seats.fill("7.5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kim")
    assert Contact.get_by_id(contact.id).attributes == {"seats": 7.5}
