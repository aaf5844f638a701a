"""Block templates in a real headless Chromium: start a campaign from a built-in block template, see it in
the preview, send a test into the catcher; the new-campaign form offers blocks first. Skips with the
reason where Chromium is missing."""

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


shot = screenshots("blocks")


def ready_to_send(app):
    """The signed-up team with a postal address, a verified sender domain and an account at the catcher."""
    from app.models import SenderDomain
    from app.models import SmtpAccount
    from app.models import Team
    from app.models import utcnow
    with app.app_context():
        team = Team.get()
        team.postal_address = "12 Rue de la Paix, Paris"
        team.default_from_email = "news@acme.example"
        team.default_from_name = "Acme"
        team.save()
        SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
        SmtpAccount.create(team=team, name="Catcher account", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none")


def test_a_campaign_from_a_block_template_is_sent_as_a_test(app, page, catcher):
    sign_up_admin(page)
    ready_to_send(app)
    page.goto("/templates/")
    expect(page.locator("#template-kinds")).to_contain_text("Layouts")
    shot(page, "library")
    card = page.locator("#block-starters li").filter(has_text="Announcement")
    card.get_by_role("button", name="New campaign from Announcement").click()
    page.wait_for_url("**/campaigns/*")
    expect(page.locator(".flash-success")).to_contain_text("starts from “Announcement”")

    frame = page.frame_locator(".preview-result iframe")
    expect(frame.locator("h1")).to_have_text("Something new is here")
    expect(frame.locator("body")).to_contain_text("12 Rue de la Paix, Paris")
    shot(page, "campaign")
    button = frame.locator("a", has_text="See what is new")
    assert button.evaluate("el => getComputedStyle(el).color") == "rgb(255, 255, 255)"  # inline styles apply
    # Dark mode: the card turns dark and the text light (Apple Mail and iOS read the same rules).
    page.emulate_media(color_scheme="dark")
    assert frame.locator("table.loft-card").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(30, 41, 59)"
    assert frame.locator("h1").evaluate("el => getComputedStyle(el).color") == "rgb(241, 245, 249)"
    page.emulate_media(color_scheme="light")
    assert frame.locator("h1").evaluate("el => getComputedStyle(el).color") != "rgb(241, 245, 249)"  # the brand's again

    page.get_by_label("Send to").fill("me@example.com")
    page.get_by_role("button", name="Send test").first.click()
    expect(page.locator(".test-results li").first).to_contain_text("Sent")
    from app.models import CaughtMessage
    with app.app_context():
        message = CaughtMessage.get()
    assert message.recipients == ["me@example.com"]
    raw = bytes(message.raw).decode("utf-8", "replace")
    assert "Something new is here" in raw and "[if mso]" in raw


def test_the_new_campaign_form_offers_blocks_first_by_keyboard(app, page):
    page.set_viewport_size(PHONE)
    sign_up_admin(page)
    page.goto("/campaigns/")
    shot(page, "new-campaign-phone")
    expect(page.get_by_label("Write it with")).to_have_value("blocks")
    page.get_by_label("New campaign").fill("Autumn letter")
    page.get_by_label("Start from").select_option("starter:letter")
    page.get_by_label("Start from").press("Tab")
    expect(page.get_by_label("Write it with")).to_be_focused()
    page.get_by_role("button", name="Create draft").press("Enter")
    page.wait_for_url("**/campaigns/*")
    from app.models import Campaign
    with app.app_context():
        campaign = Campaign.get(Campaign.name == "Autumn letter")
    assert campaign.kind == "blocks" and campaign.blocks["blocks"][0]["id"] == "lt-letter"
    expect(page.locator("#save-as-template button")).to_be_visible()
    # On a phone the two columns of a starter sit one under the other, each as wide as the email.
    page.goto("/templates/starter/event")
    frame = page.frame_locator(".preview-result iframe")
    expect(frame.locator("h1")).to_have_text("Our autumn meetup")
    when, where = (frame.locator("div.loft-col").nth(i).bounding_box() for i in (0, 1))
    assert where["y"] >= when["y"] + when["height"] - 1 and abs(where["x"] - when["x"]) < 1
