"""The template editor in a real headless Chromium: start from a built-in layout, see
the live preview (inline styles applied inside the sandboxed frame, no CSP errors),
edit and watch it update, preview as a contact, and send a test into the catcher.
Skips with the reason where Chromium is missing."""

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import DESKTOP  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


shot = screenshots("templates")


def add_contact(app):
    from app.models import Contact
    from app.models import Team
    from app.models import SenderDomain
    from app.models import SmtpAccount
    from app.models import utcnow
    with app.app_context():
        team = Team.get()
        team.postal_address = "12 Rue de la Paix, Paris"
        team.default_from_email = "news@acme.example"
        team.save()
        Contact.create(team=team, email="ann@example.org", domain="example.org", name="Ann Lee",
                       attributes={})
        # Test sends go out as the team: a verified sender domain and its own account (the catcher's port).
        SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
        SmtpAccount.create(team=team, name="Catcher account", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none")


def test_start_from_a_layout_edit_and_preview_live(app, page, catcher):
    sign_up_admin(page)
    add_contact(app)
    page.goto("/templates/")
    shot(page, "library")
    card = page.locator("#builtin-templates li").filter(has_text="Newsletter")
    card.get_by_role("button", name="Copy to your templates").click()
    page.wait_for_url("**/templates/*")
    expect(page.get_by_role("heading", level=1)).to_have_text("Newsletter")

    frame = page.frame_locator(".preview-result iframe")
    expect(frame.locator("body")).to_contain_text("Hi Jamie,")  # the sample person
    expect(frame.locator("body")).to_contain_text("12 Rue de la Paix, Paris")
    # Inline styles apply inside the frame (the app's own CSP would block them in a srcdoc).
    masthead = frame.locator("td[style*='#1e3a8a']").first
    assert masthead.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(30, 58, 138)"
    shot(page, "editor")

    body = page.get_by_label("Body")
    body.press("Control+End")
    body.type('\n<p style="color: #b91c1c;">Live edit for {{ contact.first_name }}</p>')
    expect(frame.locator("p", has_text="Live edit for")).to_have_text("Live edit for Jamie")
    page.get_by_label("Preview as contact").fill("ann@example.org")
    expect(frame.locator("p", has_text="Live edit for")).to_have_text("Live edit for Ann")
    expect(page.locator("#preview-subject")).to_have_text("Newsletter")

    # A syntax error shows where it is, in place of the preview.
    body.type("{% if %}")
    expect(page.locator("#preview-error")).to_contain_text("Line ")
    body.press("Backspace", delay=5)
    for _ in range(len("{% if %}") - 1):
        body.press("Backspace")
    expect(frame.locator("p", has_text="Live edit for")).to_have_text("Live edit for Ann")

    # The page already shows "Saved “Newsletter”" from the copy: wait for the save's own page to load,
    # or the test address would be typed into the page the save is leaving.
    with page.expect_navigation():
        page.get_by_role("button", name="Save template").click()
    page.wait_for_load_state()
    expect(page.locator(".flash-success")).to_contain_text("Saved")

    page.get_by_label("Send to").fill("me@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator(".test-results li")).to_contain_text("Sent")
    from app.models import CaughtMessage
    with app.app_context():
        message = CaughtMessage.get()
    assert message.subject == "[Test] Newsletter"


def test_the_editor_side_by_side_on_a_wide_screen(app, page):
    page.set_viewport_size(DESKTOP)
    sign_up_admin(page)
    page.goto("/templates/new?kind=markdown")
    page.get_by_label("Name").fill("Notes")
    page.get_by_label("Body").fill("# Hello {{ contact.first_name or 'reader' }}\n\n- one\n- two\n")
    frame = page.frame_locator(".preview-result iframe")
    expect(frame.locator("h1")).to_have_text("Hello Jamie")
    editor, preview = page.locator("#template-form").bounding_box(), page.locator(".preview-pane").bounding_box()
    assert preview["x"] > editor["x"] + editor["width"] - 1  # side by side
    shot(page, "markdown-desktop")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator(".flash-success")).to_contain_text("Saved “Notes”")
