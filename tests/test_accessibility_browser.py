"""axe-core (vendored under tests/vendor, never served) on Loft's main pages in a real headless Chromium, at phone
and desktop sizes: no serious or critical WCAG 2.1 A/AA problem (contrast, names, labels, landmarks, headings).
The navigation is checked by hand too: every section is reachable from the phone's bottom bar, the current one
is marked, and the team switcher switches on choice. Skips with the reason where Chromium is missing."""
import os
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import axe_violations  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app import tokens  # noqa: E402
from app.consent import preferences  # noqa: E402
from app.content.blocks import catalogue  # noqa: E402
from app.content.blocks import store  # noqa: E402
from app.models import Campaign  # noqa: E402
from app.models import Contact  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import Membership  # noqa: E402
from app.models import Subscription  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import Template  # noqa: E402
from app.models import User  # noqa: E402
from app.navigation import SECTIONS  # noqa: E402
from tests.reports_support import build_campaign  # noqa: E402

from browser_support import SCREENSHOTS as SHOTS  # noqa: E402


shot = screenshots("look", full_page=False)


@pytest.fixture
def filled(app, page):
    """A signed-in administrator whose team has a public list, a subscribed contact, a draft and a sent campaign."""
    sign_up_admin(page)
    with app.app_context():
        team = Team.get()
        news = MailingList.create(team=team, visibility="public", name="News", description="Monthly news.")
        ann = Contact.create(team=team, email="ann@example.org", domain="example.org", name="Ann Lee",
                             attributes={})
        Subscription.create(contact=ann, list=news, status="subscribed")
        draft = Campaign.create(team=team, name="Autumn news", subject="Autumn", body="<p>Hi</p>",
                                from_email="news@acme.test")
        sent, sends, _ = build_campaign(team, ["ann@example.org", "bob@example.net"])
        template = Template.create(team=team, name="Monthly letter", body="<p>Hi {{ contact.first_name }}</p>")
        return {"news": news, "draft": draft, "sent": sent, "preferences": preferences.preference_path(ann),
                "ann": ann, "unsubscribe": f"/u/{tokens.sign('unsubscribe', sends[0].id)}", "template": template}


def signed_in_pages(data):
    return {
        "dashboard": "/dashboard",
        "campaigns": "/campaigns/",
        "campaign edit": f"/campaigns/{data['draft'].id}",
        "contacts": "/contacts/",
        "templates": "/templates/",
        "report": f"/reports/campaigns/{data['sent'].id}",
        "team settings": "/teams/settings",
        "account": "/account",
        "calendar": "/campaigns/calendar",
        "lists": "/contacts/lists",
        "segments": "/segments/",
        "images": "/media/",
        "sign-up forms": "/contacts/forms",
        "brand": "/teams/brand",
        "sending": "/sending/accounts",
        "contact": f"/contacts/{data['ann'].id}",
        "fields": "/contacts/fields",
        "tags": "/contacts/tags",
        "suppression": "/contacts/suppression",
        "imports": "/imports/",
        "members": "/teams/members",
        "domains": "/sending/domains",
        "bounces": "/feedback/",
        "webhooks": "/webhooks/",
        "api keys": "/api-keys/",
        "notices": "/notices/",
        "outbox": "/outbox/",
        "reports": "/reports/",
        "template edit": f"/templates/{data['template'].id}",
        "campaign progress": f"/campaigns/{data['sent'].id}/progress",
    }


def public_pages(data):
    return {"sign-up form": f"/f/{data['news'].public_id}", "preference center": data["preferences"],
            "unsubscribe": data["unsubscribe"]}


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_main_pages_have_no_serious_accessibility_problems(page, filled, size):
    page.set_viewport_size(size)
    for name, path in {**signed_in_pages(filled), **public_pages(filled)}.items():
        response = page.goto(path)
        assert response.status == 200, f"{name}: {path} answered {response.status}"
        shot(page, f"{name.replace(' ', '-')}-{size['width']}")
        assert_accessible(page)
        assert_fits_the_screen(page)
    # The menus are checked open as well: their items are what a phone user reaches every section through.
    page.goto("/dashboard")
    page.locator(".more-menu > summary").click()
    page.locator(".account-menu > summary").click()  # closes More (a click outside), opens the account menu
    assert_accessible(page)


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_block_editor_has_no_serious_accessibility_problems(app, page, size):
    sign_up_admin(page)
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Spring sale", subject="Spring sale", kind="blocks")
        store.save(campaign, catalogue.starter("newsletter").document)
    page.set_viewport_size(size)
    page.goto(f"/campaigns/{campaign.id}")
    expect(page.locator("#block-list > li.block").first).to_be_visible()
    assert_accessible(page)


def test_the_check_finds_a_real_problem(page, filled):
    """assert_accessible can fail: an unlabelled input and an image without alt text are reported."""
    page.goto("/dashboard")
    page.evaluate("""() => {
        const main = document.querySelector('main');
        main.insertAdjacentHTML('beforeend', '<input id="nameless" type="text"><img src="/favicon.ico">');
    }""")
    found = {violation["id"] for violation in axe_violations(page)}
    assert {"label", "image-alt"} <= found
    with pytest.raises(AssertionError, match="image-alt"):
        assert_accessible(page)


def test_every_section_is_reachable_from_the_phones_bottom_bar(app, page):
    sign_up_admin(page)
    page.set_viewport_size(PHONE)
    nav = page.locator("nav[aria-label=Main]")
    bar = [name.strip() for name in nav.locator(":scope > ul > li:visible").all_inner_texts()]
    assert bar == ["Dashboard", "Campaigns", "Contacts", "Templates", "More"]
    box = nav.bounding_box()
    assert abs(box["y"] + box["height"] - PHONE["height"]) <= 1  # along the bottom edge
    assert_fits_the_screen(page)

    # The phone header is one compact row: logo, team, notices and the account menu.
    header = page.locator("header.topbar").bounding_box()
    assert header["height"] < 70, header

    # By keyboard: More opens with Enter and lists every other section, then Sign out.
    more = nav.locator(".more-menu > summary")
    more.focus()
    page.keyboard.press("Enter")
    menu = nav.locator(".more-menu .menu-list")
    expect(menu).to_be_visible()
    shot(page, "phone-more")
    with app.app_context():
        admin = User.get()
    everyone = {s.label for s in SECTIONS if not s.instance_admin or admin.is_instance_admin}
    in_bar = {"Dashboard", "Campaigns", "Contacts", "Templates"}
    in_menu = {name.strip() for name in menu.locator("a:visible").all_inner_texts()}
    assert in_menu == everyone - in_bar
    expect(menu.get_by_role("button", name="Sign out")).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()

    # Each link opens its page, and that section is the current one: in the menu, and More says it holds it.
    for label in sorted(everyone - in_bar):
        nav.locator(".more-menu > summary").click()
        menu.get_by_role("link", name=label, exact=True).click()
        page.wait_for_load_state()
        expect(nav.locator(".more-menu a[aria-current=page]")).to_have_text(re.compile(rf"^\s*{label}\s*$"))
        expect(nav.locator(".more-menu > summary")).to_have_class(re.compile("holds-current"))
        assert_fits_the_screen(page)

    # Sub-pages belong to their section: a list is under Contacts, team settings under Settings, not Team.
    page.goto("/contacts/lists")
    expect(nav.get_by_role("link", name="Contacts")).to_have_attribute("aria-current", "page")
    page.goto("/teams/settings")
    expect(nav.locator("[aria-current=page]")).to_have_count(1)
    expect(nav.locator("[aria-current=page]")).to_have_text(re.compile(r"^\s*Settings\s*$"))

    # Wider screens show Reports and Team in the bar itself, and More holds the rest.
    page.set_viewport_size(DESKTOP)
    page.goto("/reports/")
    expect(nav.get_by_role("link", name="Reports")).to_have_attribute("aria-current", "page")
    nav.locator(".more-menu > summary").click()
    expect(menu.get_by_role("link", name="Reports")).to_be_hidden()
    expect(menu.get_by_role("link", name="Segments")).to_be_visible()
    shot(page, "desktop-more")
    # The open menu stays inside the window down to the narrowest width that has the top bar.
    for width in (768, 900):
        page.set_viewport_size({"width": width, "height": 800})
        box = menu.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)
        assert_fits_the_screen(page)


def test_team_switcher_switches_on_choice_and_by_keyboard_without_javascript(app, browser, live_server, page):
    sign_up_admin(page)
    with app.app_context():
        admin = User.get()
        side = Team.create(name="Side project")
        Membership.create(user=admin, team=side, role="admin")
    page.goto("/contacts/")
    switcher = page.get_by_label("Current team")
    with page.expect_navigation():  # no button pressed: the choice switches (and comes back to /contacts/)
        switcher.select_option(label="Side project")
    expect(page.locator("#team-switch option:checked")).to_have_text("Side project")
    with app.app_context():
        assert User.get().current_team_id == side.id

    # Arrow keys look through the teams without leaving the page; Enter switches to the one shown.
    page.goto("/segments/")
    switcher.focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#team-switch option:checked")).to_have_text("Analytical Engines")
    page.wait_for_timeout(300)  # room for a submit that must not happen; the assertions below are on state
    with app.app_context():
        assert User.get().current_team_id == side.id
    assert page.url.endswith("/segments/")
    # The URL is /segments/ before and after: wait for the switch's own navigation, not for the URL.
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    with app.app_context():
        assert User.get().current_team_id != side.id
    with page.expect_navigation():  # a choice made with the mouse still switches at once
        switcher.select_option(label="Side project")
    with app.app_context():
        assert User.get().current_team_id == side.id

    # The Switch button is out of sight until the keyboard reaches it, and works on its own.
    button = page.locator("#team-switcher").get_by_role("button", name="Switch")
    assert button.bounding_box()["width"] <= 1
    switcher.focus()
    page.keyboard.press("Tab")
    expect(button).to_be_focused()
    assert button.bounding_box()["width"] > 20

    context = browser.new_context(viewport=PHONE, base_url=live_server.base_url, java_script_enabled=False,
                                  storage_state=page.context.storage_state())
    try:
        plain = context.new_page()
        plain.goto("/contacts/")
        plain.get_by_label("Current team").select_option(label="Analytical Engines")
        with app.app_context():
            assert User.get().current_team_id == side.id  # without JavaScript, choosing alone does nothing
        if SHOTS:
            plain.screenshot(path=os.path.join(SHOTS, "look-no-js.png"))
        plain_button = plain.locator("#team-switcher").get_by_role("button", name="Switch")
        assert plain_button.bounding_box()["width"] > 20  # in sight when nothing would switch on choice
        with plain.expect_navigation():
            plain_button.click()
        assert plain.locator("#team-switch option:checked").inner_text().strip() == "Analytical Engines"
        with app.app_context():
            assert User.get().current_team_id != side.id
    finally:
        context.close()


def test_forms_put_labels_above_and_help_and_errors_below_in_one_column_on_phones(page):
    sign_up_admin(page)
    page.set_viewport_size(PHONE)
    page.goto("/contacts/")
    # The filter row: side by side on wide screens, each the full width on a phone.
    search, status = page.get_by_label("Search"), page.get_by_label("Status")
    assert abs(status.bounding_box()["width"] - search.bounding_box()["width"]) <= 1

    page.goto("/contacts/new")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Add contact").click()
    email = page.get_by_label("Email address")
    expect(email).to_have_attribute("aria-invalid", "true")
    error = page.locator("#e-email")
    expect(error).to_be_visible()
    assert email.get_attribute("aria-describedby").split()[0] == "e-email"
    label = page.locator("label[for=f-email]").bounding_box()
    box = email.bounding_box()
    assert label["y"] + label["height"] <= box["y"] + 1  # label above
    assert error.bounding_box()["y"] >= box["y"] + box["height"] - 1  # error below
    expect(error.locator("svg.icon")).to_have_attribute("aria-hidden", "true")
    assert_accessible(page)

    page.set_viewport_size(DESKTOP)
    page.goto("/contacts/")
    assert status.bounding_box()["width"] < search.bounding_box()["width"] / 2
