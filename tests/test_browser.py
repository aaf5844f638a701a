"""Loft in a real headless Chromium: first-admin sign-up, sign-in, layout, labels, focus and HTMX.

These run against the app over real HTTP (see tests/browser_support.py) and
skip with the reason where Chromium or Playwright is missing.
"""
import json
import os
import re

import pytest

# Without Playwright the whole module is skipped, with the reason, rather than failing to import.
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import ADMIN
from browser_support import DESKTOP
from browser_support import PHONE
from browser_support import sign_out
from browser_support import sign_up_admin


def focused_id(page):
    return page.evaluate("document.activeElement && document.activeElement.id")


def tab_to(page, element_id, limit=8):
    """Press Tab until the element with this id has focus; fails if it is not reachable."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused_id(page) == element_id:
            return
    pytest.fail(f"#{element_id} was not reached with {limit} presses of Tab")


def test_first_admin_signs_up_signs_out_and_signs_in_again_from_the_keyboard(page):
    sign_up_admin(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(ADMIN["team"])
    expect(page.locator("footer")).to_contain_text(ADMIN["email"])

    sign_out(page)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("nav[aria-label=Main]")).to_have_count(0)

    # Keyboard only: the skip link comes first, then Tab reaches the form and Enter submits it.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab_to(page, "f-email")
    page.keyboard.type(ADMIN["email"])
    page.keyboard.press("Tab")
    assert focused_id(page) == "f-password"
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("That email and password do not match an account.")
    assert page.url.endswith("/login")
    # The address survives the error; the password does not.
    expect(page.get_by_label("Email address")).to_have_value(ADMIN["email"])
    expect(page.get_by_label("Password", exact=True)).to_have_value("")

    tab_to(page, "f-password", limit=12)
    page.keyboard.type(ADMIN["password"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text(ADMIN["team"])

    # And the ordinary way, with the mouse, after signing out once more.
    sign_out(page)
    page.get_by_label("Email address").fill(ADMIN["email"])
    page.get_by_label("Password", exact=True).fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text(ADMIN["team"])


def assert_every_field_is_labelled(page):
    """Each visible form control is found by its label text, and that label names exactly it."""
    controls = page.locator("main input:not([type=hidden]), main select, main textarea")
    assert controls.count() > 0
    for index in range(controls.count()):
        control = controls.nth(index)
        control_id = control.get_attribute("id")
        assert control_id, f"control #{index} on {page.url} has no id for a label to point at"
        label = page.locator(f"label[for='{control_id}']")
        expect(label).to_have_count(1)
        text = label.inner_text().strip()
        assert text, f"the label of #{control_id} is empty"
        expect(page.get_by_label(text, exact=True)).to_have_attribute("id", control_id)


def test_layout_labels_and_visible_focus_on_phone_and_desktop(page):
    page.goto("/setup")
    assert_every_field_is_labelled(page)
    # Keyboard focus is visible: a focused input draws an outline.
    tab_to(page, "f-name")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"

    sign_up_admin(page)
    nav = page.locator("nav[aria-label=Main]")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")

    # Phone: the main navigation is a bar along the bottom edge of the viewport...
    box = nav.bounding_box()
    assert abs(box["y"] + box["height"] - PHONE["height"]) <= 1, box
    assert box["width"] >= PHONE["width"] - 1 and box["height"] < 100, box
    # ...and nothing of the page is hidden behind it once scrolled to the end.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    sign_out_box = page.locator("footer").get_by_role("button", name="Sign out").bounding_box()
    assert sign_out_box["y"] + sign_out_box["height"] <= nav.bounding_box()["y"], (sign_out_box, box)
    # Nothing overflows sideways on a narrow screen.
    assert_fits_the_screen(page)

    # Desktop: the same navigation sits at the top, under the header, in the page flow.
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")
    box = nav.bounding_box()
    header = page.locator("header.topbar").bounding_box()
    assert box["y"] >= header["y"] + header["height"] - 1 and box["y"] < 120, (box, header)
    assert page.evaluate("getComputedStyle(document.querySelector('nav.mainnav')).position") == "static"

    sign_out(page)
    assert_every_field_is_labelled(page)
    tab_to(page, "f-email", limit=8)
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_htmx_invite_swaps_the_members_fragment_with_the_csrf_header(page, catcher):
    from app.models import CaughtMessage

    sign_up_admin(page)
    nav = page.locator("nav[aria-label=Main]")
    nav.get_by_text("More").click()  # on a phone, Team is under More
    nav.get_by_role("link", name="Team").click()
    page.wait_for_url("**/members")
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    assert token
    # A full page load would wipe this marker; an HTMX swap keeps it.
    page.evaluate("window.loftMarker = 'still here'")
    members = page.locator("#members")
    # On a phone the members table fits the screen instead of hiding its buttons off to the side.
    assert page.evaluate("[...document.querySelectorAll('.table-wrap')]"
                         ".every(w => w.scrollWidth <= w.clientWidth)")
    expect(members.get_by_role("button", name="Leave team")).to_be_in_viewport(ratio=1)

    page.get_by_label("Email address").fill("not-an-email")
    with page.expect_response(lambda r: r.url.endswith("/members/invite")) as answer:
        page.get_by_role("button", name="Send invitation").click()
    response = answer.value
    assert response.status == 422
    assert response.request.headers.get("hx-request") == "true"
    assert response.request.headers.get("x-csrf-token") == token
    expect(members.get_by_role("alert")).to_contain_text("not valid")
    # The field with the problem keeps what was typed and gets focus back.
    expect(page.get_by_label("Email address")).to_have_value("not-an-email")
    expect(page.get_by_label("Email address")).to_be_focused()
    assert page.evaluate("window.loftMarker") == "still here"
    assert CaughtMessage.select().count() == 0

    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label("Role").select_option(label="Manager")
    page.get_by_role("button", name="Send invitation").click()
    expect(members.get_by_role("status")).to_have_text("Invitation sent to grace@example.com as Manager.")
    pending = members.locator("ul.list li", has_text="grace@example.com")
    expect(pending).to_contain_text("Manager")
    expect(members.get_by_role("alert")).to_have_count(0)
    assert page.evaluate("window.loftMarker") == "still here"
    assert page.url.endswith("/members")
    message = CaughtMessage.get()
    assert message.recipients == ["grace@example.com"]


SCREENSHOT_PAGES = ["/dashboard", "/teams/members", "/teams/settings", "/teams/", "/teams/new", "/account",
                    "/outbox/", "/admin/settings"]


@pytest.mark.skipif(not os.environ.get("LOFT_SCREENSHOTS"),
                    reason="set LOFT_SCREENSHOTS=<directory> to save screenshots of the main pages")
def test_screenshots_of_the_main_pages(page, live_server):
    """Not a check: pictures of the pages at phone and desktop size, for a person to look at."""
    directory = os.environ["LOFT_SCREENSHOTS"]
    os.makedirs(directory, exist_ok=True)

    def shoot(name):
        # Phone: the screen as a person sees it, at the top and scrolled to the end (the bottom bar
        # is fixed, so a full-page picture would draw it in the middle). Desktop: the whole page.
        page.set_viewport_size(PHONE)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=os.path.join(directory, f"{name}-phone.png"))
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        page.screenshot(path=os.path.join(directory, f"{name}-phone-end.png"))
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=os.path.join(directory, f"{name}-desktop.png"), full_page=True)

    page.goto("/setup")
    shoot("setup")
    sign_up_admin(page)
    for path in SCREENSHOT_PAGES:
        page.goto(path)
        shoot(re.sub(r"\W+", "-", path.strip("/")))
    sign_out(page)
    shoot("login")
    tab_to(page, "f-email")
    page.keyboard.type("not-an-email")
    page.keyboard.press("Tab")
    page.screenshot(path=os.path.join(directory, "login-focus-desktop.png"))
