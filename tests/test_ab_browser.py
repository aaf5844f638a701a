"""A/B variants, UTM and the click map in a real headless Chromium at phone size: a From-name test of
three variants written in the A/B card (only the tested field of each variant shows), variant B
previewed and test-sent into the catcher, the campaign published, "Pick B as the winner" on the report
sending the rest, and the click map's marked email. axe-core checks the builder and the report.
Skips with the reason where Chromium is missing."""
import email
import email.policy
import os

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.content import utm  # noqa: E402
from app.models import Campaign  # noqa: E402
from app.models import CaughtMessage  # noqa: E402
from app.models import Contact  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import SenderDomain  # noqa: E402
from app.models import SmtpAccount  # noqa: E402
from app.models import Subscription  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.senders import domains  # noqa: E402

from browser_support import SCREENSHOTS as SHOTS  # noqa: E402


shot = screenshots("ab")


def ready_campaign(app):
    """A team that can send into the catcher, six readers, and an HTML draft with a link."""
    with app.app_context():
        team = Team.get()
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        domain = domains.add_domain(team, "acme.example")  # with its DKIM key, as the page makes it
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
        SmtpAccount.create(team=team, name="Catcher", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none")
        news = MailingList.create(team=team, name="Readers", double_opt_in=False)
        for i in range(6):
            contact = Contact.create(team=team, email=f"r{i}@example.org", domain="example.org", name=f"R {i}")
            Subscription.create(contact=contact, list=news, status="subscribed")
        return Campaign.create(team=team, name="Spring issue", subject="Spring news", from_name="Acme",
                               from_email="news@acme.example", kind="html",
                               body='<p>Hi, see <a href="https://acme.example/shop">the shop</a>.</p>',
                               audience={"lists": [news.id], "segments": [], "exclude_lists": [],
                                         "exclude_segments": []}, utm=utm.defaults("Spring issue"))


def from_names():
    return [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)["From"].addresses[0].display_name
            for m in CaughtMessage.select().order_by(CaughtMessage.id)]


def test_from_name_variants_preview_test_send_pick_the_winner_and_the_click_map(app, page, catcher):
    sign_up_admin(page)
    campaign = ready_campaign(app)
    page.on("dialog", lambda dialog: dialog.accept())  # the "Send … now?" confirmations
    page.goto(f"/campaigns/{campaign.id}")
    expect(page.locator("#utm-example code.url")).to_have_text(
        "https://www.example.com/spring-sale?utm_source=loft&utm_medium=email&utm_campaign=spring-issue")
    page.get_by_label("Content (utm_content)").fill("hero")  # the example follows the typing
    expect(page.locator("#utm-example code.url")).to_have_text(
        "https://www.example.com/spring-sale?utm_source=loft&utm_medium=email&utm_campaign=spring-issue"
        "&utm_content=hero")

    expect(page.get_by_label("Variant B subject")).to_be_hidden()  # the A/B card is folded while off
    page.get_by_label("Test up to four variants on a sample first; the winner goes to the rest of the audience").check()
    expect(page.get_by_label("Variant B subject")).to_be_visible()
    tests = page.get_by_role("group", name="What the variants change")
    tests.get_by_label("From name").focus()
    page.keyboard.press("ArrowDown")  # radios move by keyboard: From name -> Content
    expect(tests.get_by_label("Content")).to_be_checked()
    page.keyboard.press("ArrowUp")
    expect(tests.get_by_label("From name")).to_be_checked()
    expect(page.get_by_label("Variant B subject")).to_be_hidden()
    expect(page.get_by_label("Variant B content (HTML)")).to_be_hidden()
    page.get_by_label("Variant B From name").fill("Ann at Acme")
    page.get_by_label("Variant C From name").fill("Cy at Acme")
    page.get_by_label("Sample size (% of the audience)").fill("50")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".flash-success")).to_contain_text("Draft saved")
    expect(page.get_by_label("Variant C From name")).to_have_value("Cy at Acme")
    shot(page, "builder")
    assert_accessible(page)

    page.get_by_label("Variant", exact=True).select_option(label="Variant B")
    page.locator("#preview").get_by_role("button", name="Show").click()
    expect(page.locator("#preview-from")).to_have_text("Ann at Acme")
    expect(page.frame_locator("#preview-pane iframe").get_by_role("link", name="the shop")).to_have_attribute(
        "href", "https://acme.example/shop?utm_source=loft&utm_medium=email&utm_campaign=spring-issue&utm_content=hero")

    page.get_by_label("Which version").select_option(label="Variant C of the A/B test")
    page.get_by_label("Send to").fill("me@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator(".test-results")).to_contain_text("Sent")
    assert from_names() == ["Cy at Acme"]

    page.get_by_role("button", name="Publish").click()
    page.wait_for_url("**/progress")
    assert sorted(from_names()[1:]) == ["Acme", "Ann at Acme", "Cy at Acme"]  # a 50% sample of 6, one each

    page.goto(f"/reports/campaigns/{campaign.id}")
    expect(page.locator("#ab-pick")).to_be_visible()
    expect(page.frame_locator("#click-map iframe").locator(".loft-share")).to_have_text("0%")
    shot(page, "report")
    if SHOTS:
        page.locator("#click-map iframe").screenshot(path=os.path.join(SHOTS, "ab-click-map.png"))
    assert_accessible(page)
    assert_fits_the_screen(page)  # no sideways scroll at 390 px
    mark = page.frame_locator("#click-map iframe").locator("a[data-loft-link] .loft-share")
    expect(mark).to_have_text("0%")
    expect(page.locator("#links td.url")).to_have_text(
        "https://acme.example/shop?utm_source=loft&utm_medium=email&utm_campaign=spring-issue&utm_content=hero")
    page.get_by_role("button", name="Pick B as the winner").click()
    expect(page.locator(".flash-success")).to_contain_text("Variant B is the winner")
    expect(page.locator("#ab-pick")).to_have_count(0)
    assert sorted(from_names()[4:]) == ["Ann at Acme"] * 3  # the rest of the audience got B
