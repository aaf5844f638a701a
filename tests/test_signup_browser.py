"""Sign-up forms, confirmation, preference center and suppression list in a real headless Chromium.

Real HTTP (tests/browser_support.py), real mail through the catcher. Skips
with the reason where Chromium or Playwright is missing.
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from bs4 import BeautifulSoup  # noqa: E402

from app.models import CaughtMessage  # noqa: E402
from app.models import Contact  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import SenderDomain  # noqa: E402
from app.models import SmtpAccount  # noqa: E402
from app.models import Subscription  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.catcher.services import parse  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402
from tests.conftest import link_in  # noqa: E402


@pytest.fixture
def news(app, live_server):
    # Links in emails and the snippet's action use the instance's public address.
    app.config.update(BASE_URL=live_server.base_url, SIGNUP_MIN_SECONDS=0)
    team = Team.create(name="Acme", default_from_name="Acme News", default_from_email="news@acme.example")
    # Confirmation emails go out as the team, through its own account (here: the catcher's port).
    SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
    SmtpAccount.create(team=team, name="Acme relay", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                       tls_mode="none")
    return MailingList.create(team=team, visibility="public", name="News", description="Monthly product news.")


def test_hosted_form_to_confirmed_to_preferences_on_a_phone(page, news, catcher):
    response = page.goto(f"/f/{news.public_id}")
    assert "set-cookie" not in response.headers  # public pages set no cookie
    expect(page.get_by_role("heading", level=1)).to_have_text("Subscribe to News")
    assert_fits_the_screen(page)
    # The honeypot is neither seen nor reached with Tab.
    expect(page.locator("#f-website")).not_to_be_in_viewport()
    page.get_by_label("Email address").fill("reader@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("Rea")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Subscribe")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")

    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    link = link_in(parse(message)["text"], "/confirm/")
    assert link.startswith(page.url.split("/f/")[0])
    page.goto(link)
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    assert Subscription.get().status == "subscribed"

    page.get_by_role("link", name="Manage your subscriptions").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your email preferences")
    checkbox = page.get_by_role("checkbox", name="News")
    expect(checkbox).to_be_checked()
    assert_fits_the_screen(page)
    checkbox.uncheck()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status").first).to_have_text("Your choices are saved.")
    assert Subscription.get().status == "unsubscribed"
    page.get_by_role("button", name="Unsubscribe from everything").click()
    expect(page.locator(".flash-success")).to_contain_text("unsubscribed from everything")
    assert Contact.get().status == "unsubscribed"


def test_the_embedded_snippet_works_from_another_site(page, news, live_server, catcher):
    sign_up_admin(page)
    # The admin's team is the one created by /setup; give it the list instead.
    team = Team.get(Team.name != "Acme")
    MailingList.update(team=team).where(MailingList.id == news.id).execute()
    # ...and what it needs to send the confirmation as the team.
    SenderDomain.update(team=team).execute()
    SmtpAccount.update(team=team).execute()
    Team.update(default_from_email="news@acme.example").where(Team.id == team.id).execute()
    page.goto("/contacts/forms")
    snippet = page.locator(f"#snippet-{news.id}").input_value()
    assert BeautifulSoup(snippet, "html.parser").form["action"] == live_server.url(f"/f/{news.public_id}")

    other_site = page.context.new_page()
    other_site.set_content(f"<!doctype html><title>Someone's blog</title><h1>My blog</h1>{snippet}")
    expect(other_site.locator("input[name=website]")).not_to_be_in_viewport()
    other_site.get_by_label("Email address").fill("fan@example.com")
    other_site.get_by_role("button", name="Subscribe").click()
    expect(other_site.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    assert Subscription.get().status == "unconfirmed"
    assert CaughtMessage.select().count() == 1


def test_suppression_list_by_keyboard_and_htmx(page, live_server):
    sign_up_admin(page)
    page.goto("/contacts/suppression")
    expect(page.locator("section.empty")).to_be_visible()
    assert_fits_the_screen(page)
    page.get_by_label("Email address or domain").first.fill("gone@example.com")
    page.get_by_role("button", name="Add to the list").click()
    expect(page.locator("#suppression .flash-success")).to_have_text("Address g…@example.com added.")
    expect(page.locator("#suppression-entries tbody tr")).to_have_count(1)

    page.get_by_text("Remove…").click()
    field = page.get_by_label("Type the full address behind g…@example.com")
    field.fill("wrong@example.com")
    field.press("Enter")
    expect(page.locator("#suppression-entries .error")).to_contain_text("not the address behind")
    field = page.get_by_label("Type the full address behind g…@example.com")
    expect(field).to_have_attribute("aria-invalid", "true")
    field.fill("gone@example.com")
    field.press("Enter")
    # Swapped in by htmx, or (when Enter comes before htmx has taken over the swapped-in form) on the
    # page the plain form post redirects to: the person reads the same message either way.
    expect(page.locator(".flash-success", has_text="g…@example.com removed from the suppression list.")).to_be_visible()
    expect(page.locator("section.empty")).to_be_visible()
