"""The automation builder in a real headless Chromium: a three-step series with a condition is built by keyboard and
mouse without a page load, a step is edited in place (the focus goes into its form and back to its Edit button), and
the automation goes live. Branches sit side by side on a wide screen and stacked on a phone. Deleting asks inside the
State card (a live automation is paused first) and says how many contacts stop.

Skips with the reason where Chromium or Playwright is missing (see tests/browser_support.py).
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import ADMIN
from browser_support import DESKTOP
from browser_support import assert_accessible
from browser_support import assert_fits_the_screen
from browser_support import sign_up_admin


def settled(page):
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def _ready_team():
    from app.models import MailingList
    from app.models import SenderDomain
    from app.models import Team
    from app.models import utcnow
    team = Team.get(Team.name == ADMIN["team"])
    team.postal_address = "1 Main Street, Springfield"
    team.save()
    SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow(), dkim_private_key="x")
    return MailingList.create(team=team, name="Newsletter")


def _step_ids(kind):
    from app.models import AutomationStep
    return [s.id for s in AutomationStep.select().where(AutomationStep.kind == kind).order_by(AutomationStep.id)]


def test_build_a_series_with_a_condition_edit_in_place_and_go_live(page):
    from app.models import Automation
    from app.automations import flow

    sign_up_admin(page)
    _ready_team()
    page.goto("/automations/")
    expect(page.locator("section.empty")).to_contain_text("Start with a welcome series")
    # Keyboard: choose a blank automation, type its name, submit with Enter.
    page.get_by_label("Start from").select_option("")
    page.get_by_label("Name").focus()
    page.keyboard.type("Onboarding")
    page.keyboard.press("Enter")
    page.wait_for_url("**/automations/*")
    expect(page.locator("#flow")).to_contain_text("No steps yet")
    page.evaluate("window.loftMarker = 'still here'")  # a full page load would wipe it

    # Step 1 (mouse): an email at the top; its form opens with the focus in the subject.
    page.get_by_label("Step to add at the top").select_option("email")
    page.get_by_role("button", name="Add step at the top").click()
    settled(page)
    subject = page.get_by_label("Subject")
    expect(subject).to_be_focused()
    subject.fill("Welcome aboard")
    page.get_by_label("Content").fill("<p>Hi {{ contact.name }}</p>")
    page.get_by_role("button", name="Save step").click()
    settled(page)
    email_id = _step_ids("email")[0]
    expect(page.locator(f"#step-{email_id} .flow-summary")).to_have_text("Send “Welcome aboard”")
    expect(page.locator(f"#edit-step-{email_id}")).to_be_focused()

    # Step 2 (keyboard): a condition after step 1, testing whether step 1 was opened.
    page.get_by_label("Step to add after step 1").focus()
    page.get_by_label("Step to add after step 1").select_option("condition")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    settled(page)
    expect(page.get_by_label("Test", exact=True)).to_be_focused()
    page.get_by_label("Test", exact=True).select_option("opened")
    page.get_by_label("Email (opened or clicked)").select_option(str(email_id))
    page.get_by_role("button", name="Save step").press("Enter")  # the keyboard activates the focused button
    settled(page)
    condition_id = _step_ids("condition")[0]
    expect(page.locator(f"#step-{condition_id} .flow-summary")).to_have_text("If they opened the email of step 1")

    # Step 3 (mouse): an email at the start of the yes branch.
    page.get_by_label("Step to add at the start of the yes branch of step 2").select_option("email")
    page.get_by_role("button", name="Add step at the start of the yes branch of step 2").click()
    settled(page)
    page.get_by_label("Subject").fill("Thanks for reading")
    page.get_by_label("Content").fill("<p>Here is more.</p>")
    page.get_by_role("button", name="Save step").click()
    settled(page)
    expect(page.locator("#flow article.flow-step")).to_have_count(3)
    expect(page.locator(".flow-yes article.flow-step")).to_have_count(1)
    expect(page.locator(".flow-no")).to_contain_text("The automation ends here.")

    # Edit step 1 in place: Edit → the form swaps in with the focus in it → Save swaps the card back.
    page.locator(f"#edit-step-{email_id}").click()
    settled(page)
    expect(page.locator(f"#step-form-{email_id} [name=subject]")).to_be_focused()
    page.locator(f"#step-form-{email_id} [name=subject]").fill("{{ broken")
    page.keyboard.press("Enter")
    settled(page)
    expect(page.locator(f"#step-{email_id} .error")).to_contain_text("This subject cannot be used")
    page.locator(f"#step-form-{email_id} [name=subject]").fill("Welcome, really")
    page.keyboard.press("Enter")
    settled(page)
    expect(page.locator(f"#step-{email_id} .flow-summary")).to_have_text("Send “Welcome, really”")
    expect(page.locator(f"#edit-step-{email_id}")).to_be_focused()
    assert page.evaluate("window.loftMarker") == "still here"
    assert_accessible(page)
    assert_fits_the_screen(page)  # a phone: nothing wider than the screen

    # Wide screen: the branches side by side; phone: stacked.
    yes_box = page.locator(".flow-yes").bounding_box()
    no_box = page.locator(".flow-no").bounding_box()
    assert no_box["y"] > yes_box["y"]
    page.set_viewport_size(DESKTOP)
    yes_box = page.locator(".flow-yes").bounding_box()
    no_box = page.locator(".flow-no").bounding_box()
    assert abs(no_box["y"] - yes_box["y"]) < 2 and no_box["x"] > yes_box["x"]

    # Settings, then go live.
    page.get_by_label("Starts when a contact…").select_option("list_join")
    page.get_by_label("List (joins or confirms)").select_option(label="Newsletter")
    page.get_by_label("From address").first.fill("hello@acme.example")
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_load_state()
    expect(page.locator(".problems")).to_have_count(0)
    page.get_by_role("button", name="Go live").click()
    page.wait_for_load_state()
    expect(page.locator("h1 .badge")).to_have_text("Live")
    automation = Automation.get(Automation.name == "Onboarding")
    assert automation.state == "live"
    assert [s.kind for s in flow.ordered_steps(automation)] == ["email", "condition", "email"]

    # The report page: the chart and the tables are readable on a phone and pass axe.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Report").click()
    page.wait_for_load_state()
    expect(page.locator("svg[role=img]")).to_have_count(1)
    expect(page.locator("#email-rates tbody tr")).to_have_count(2)
    assert_accessible(page)
    assert_fits_the_screen(page)


def test_the_wait_form_shows_only_the_chosen_modes_fields(page):
    from app.automations import flow
    from app.models import AutomationStep
    from app.models import Team

    sign_up_admin(page)
    automation = flow.create_automation(Team.get(Team.name == ADMIN["team"]), None, "", starter="welcome")
    wait_id = _step_ids("wait")[0]
    page.goto(f"/automations/{automation.id}")
    page.locator(f"#edit-step-{wait_id}").click()
    settled(page)
    form = page.locator(f"#step-form-{wait_id}")
    mode = form.get_by_label("Wait", exact=True)
    expect(mode).to_be_focused()
    duration, until, event = (form.locator(f"fieldset[data-mode={m}]") for m in ("duration", "until", "event"))
    expect(duration).to_be_visible()
    expect(until).to_be_hidden()
    expect(event).to_be_hidden()
    expect(form.get_by_label("How long")).to_have_value("2")

    # Keyboard: the arrow key on the focused select switches the fieldset at once; the focus stays on the select.
    page.keyboard.press("ArrowDown")
    expect(mode).to_have_value("until")
    expect(mode).to_be_focused()
    expect(until).to_be_visible()
    expect(duration).to_be_hidden()
    expect(until.locator("legend")).to_have_text("If you wait “Until a day and time”")
    page.keyboard.press("Tab")  # the next stop is the first control of the shown fieldset, not a hidden one
    expect(until.get_by_label("Monday")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(until.get_by_label("Tuesday")).to_be_checked()
    form.get_by_label("At", exact=True).fill("09:30")
    assert_accessible(page)
    # Mouse: another mode, then back; what was typed is still there.
    mode.select_option("event")
    expect(event).to_be_visible()
    expect(until).to_be_hidden()
    mode.select_option("until")
    expect(form.get_by_label("At", exact=True)).to_have_value("09:30")
    form.get_by_role("button", name="Save step").click()
    settled(page)
    expect(page.locator(f"#step-{wait_id} .flow-summary")).to_have_text("Wait until Tue at 09:30 (the contact's time)")
    assert AutomationStep.get_by_id(wait_id).config == {"mode": "until", "weekdays": [1], "time": "09:30",
                                                        "zone": "contact"}


def test_remove_a_step_asks_inside_its_card(page):
    from app.automations import flow
    from app.models import AutomationStep
    from app.models import Team

    sign_up_admin(page)
    automation = flow.create_automation(Team.get(Team.name == ADMIN["team"]), None, "", starter="welcome")
    wait_id = _step_ids("wait")[0]
    page.goto(f"/automations/{automation.id}")
    page.evaluate("window.loftMarker = 'still here'")
    page.locator(f"#remove-step-{wait_id}").click()
    settled(page)
    expect(page.locator(f"#remove-q-{wait_id}")).to_be_focused()
    expect(page.locator(f"#remove-d-{wait_id}")).to_have_text("No contact is waiting here.")
    assert_accessible(page)
    page.locator(f"#remove-confirm-{wait_id}").get_by_role("link", name="Cancel").click()  # keeps the step
    settled(page)
    expect(page.locator(f"#remove-step-{wait_id}")).to_be_focused()
    page.keyboard.press("Enter")  # the keyboard: Remove, then Tab to "Yes, remove"
    settled(page)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Yes, remove step 2")).to_be_focused()
    page.keyboard.press("Enter")
    settled(page)
    expect(page.locator("#flow article.flow-step")).to_have_count(2)
    assert AutomationStep.get_by_id(wait_id).removed_at is not None
    assert page.evaluate("window.loftMarker") == "still here"


def test_delete_asks_in_the_state_card_pauses_a_live_one_first_and_says_who_stops(page):
    from app.automations import flow
    from app.automations import runs
    from app.models import Automation
    from app.models import AutomationRun
    from app.models import Contact
    from app.models import Team

    sign_up_admin(page)
    team = Team.get(Team.name == ADMIN["team"])
    automation = flow.create_automation(team, None, "Welcome", starter="welcome")
    Automation.update(state="live").where(Automation.id == automation.id).execute()  # as after go-live
    contacts = [Contact.create(team=team, email=f"reader{i}@example.com", domain="example.com", status="active").id
                for i in range(2)]
    assert runs.enter_many(Automation.get_by_id(automation.id), contacts) == 2
    page.goto(f"/automations/{automation.id}")
    page.evaluate("window.loftMarker = 'still here'")

    # Live: the confirmation swaps into the State card, focused, and offers Pause instead of Delete.
    page.locator("#delete-button").focus()
    page.keyboard.press("Enter")
    settled(page)
    box = page.get_by_role("alertdialog")
    expect(box.locator("#h-delete")).to_be_focused()
    expect(box).to_contain_text("Pause this automation before deleting it")
    expect(box.get_by_role("button", name="Delete automation")).to_have_count(0)
    assert page.evaluate("window.loftMarker") == "still here"
    assert_accessible(page)
    box.get_by_role("button", name="Pause").click()
    page.wait_for_load_state()
    expect(page.locator("h1 .badge")).to_have_text("Paused")

    # Paused: the box says how many contacts stop; Cancel keeps it, Delete deletes it and says so.
    page.locator("#delete-button").click()
    settled(page)
    box = page.get_by_role("alertdialog")
    expect(box.locator("#d-delete")).to_contain_text("2 contacts are still going through it")
    assert_accessible(page)
    assert_fits_the_screen(page)
    box.get_by_role("button", name="Delete automation").click()
    page.wait_for_url("**/automations/")
    expect(page.locator(".flash")).to_contain_text("“Welcome” was deleted; 2 contacts stopped where they were.")
    assert Automation.get_or_none(Automation.id == automation.id) is None
    assert AutomationRun.select().where(AutomationRun.automation == automation.id).count() == 0
