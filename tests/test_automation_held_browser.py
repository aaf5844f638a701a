"""An email step on hold, in a real headless Chromium at phone size: the builder says why and how many wait, the
refused "Resume sending" swaps the card in place with the error and keeps the focus on the button (keyboard only),
and once the SMTP account is back the same key press sends the waiting email to the real mail catcher.

Skips with the reason where Chromium or Playwright is missing (see tests/browser_support.py).
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible
from browser_support import assert_fits_the_screen
from browser_support import sign_up_admin


def held_step(app):
    """A live automation whose first email waits: the engine found the team's only SMTP account paused."""
    from app.automations import runs
    from app.models import Automation
    from app.models import AutomationStep
    from app.models import Contact
    from app.models import SenderDomain
    from app.models import SmtpAccount
    from app.models import Team
    from app.models import utcnow
    from app.senders import domains
    from tasks import automations as automation_tasks
    with app.app_context():
        team = Team.get()
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        domain = domains.add_domain(team, "acme.example")
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
        SmtpAccount.create(team=team, name="Catcher", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none", status="paused", paused_reason="Paused by Ada")
        automation = Automation.create(team=team, name="Onboarding", trigger={"kind": "manual"}, goal={},
                                       state="live", from_name="Acme", from_email="hello@acme.example")
        step = AutomationStep.create(automation=automation, kind="email",
                                     config={"subject": "Welcome aboard", "preheader": "", "kind": "html",
                                             "body": "<p>Hi {{ contact.name }}</p>", "template_id": None,
                                             "from_name": "", "from_email": ""})
        automation.first_step_id = step.id
        automation.save()
        reader = Contact.create(team=team, email="reader@example.org", domain="example.org", name="Reader")
        runs.enter(automation, reader)
        automation_tasks.run_tick()
        return automation, step


def test_the_held_step_resumes_by_keyboard_once_the_account_is_back(app, page, catcher):
    from app.models import CaughtMessage
    from app.models import SmtpAccount

    sign_up_admin(page)
    automation, step = held_step(app)
    page.goto(f"/automations/{automation.id}")
    expect(page.locator("#held-summary")).to_contain_text("1 email step on hold")
    card = page.locator(f"#step-{step.id}")
    expect(card.locator(f"#held-{step.id}")).to_contain_text("1 waiting to go out")
    expect(card.locator(f"#held-{step.id}")).to_contain_text("no active SMTP account")
    assert_accessible(page)
    assert_fits_the_screen(page)
    page.evaluate("window.loftMarker = 'still here'")  # a full page load would wipe it
    # Whatever takes the focus (htmx or the browser's own autofocus), the swapped-in button must already be wired
    # by htmx, or Enter posts the whole page: htmx-added marks content it has not wired yet.
    page.evaluate("window.focusedUnwired = false; document.addEventListener('focusin', event => {"
                  " if (event.target.closest('.htmx-added')) window.focusedUnwired = true; })")

    resume = card.get_by_role("button", name="Resume sending of step 1")
    resume.focus()
    page.keyboard.press("Enter")
    error = page.locator(f"#held-{step.id}-error")
    expect(error).to_contain_text("there is no active SMTP account")
    expect(page.locator(f"#step-{step.id}").get_by_role("button", name="Resume sending of step 1")).to_be_focused()
    page.wait_for_timeout(50)  # the browser's own autofocus runs at its next frame: let it, then ask
    assert page.evaluate("window.focusedUnwired") is False
    assert CaughtMessage.select().count() == 0

    SmtpAccount.update(status="active", paused_reason="").execute()
    page.keyboard.press("Enter")
    expect(page.locator(f"#step-{step.id}")).to_contain_text("Sending again")
    expect(page.locator(f"#held-{step.id}")).to_have_count(0)
    assert page.evaluate("window.loftMarker") == "still here"
    assert CaughtMessage.select().count() == 1
