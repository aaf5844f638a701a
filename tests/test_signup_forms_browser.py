"""The sign-up form builder in a real headless Chromium: build a form, sign up on its hosted page, and open
it from the popup script on another site.

Real HTTP (tests/browser_support.py). The "other site" is a second small server on another loopback port
(another origin), so the popup runs cross-origin as on a real website.
Skips with the reason where Chromium or Playwright is missing.
"""
import http.server
import threading

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from app.models import Contact  # noqa: E402
from app.models import CustomField  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import SignupForm  # noqa: E402
from app.models import Subscription  # noqa: E402
from app.models import Team  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


@pytest.fixture
def ready(app, live_server, page):
    """An administrator signed in, with a public single opt-in list, a private one and a custom field."""
    app.config.update(BASE_URL=live_server.base_url, SIGNUP_MIN_SECONDS=0)
    sign_up_admin(page)
    team = Team.get()
    offers = MailingList.create(team=team, name="Offers", visibility="public", double_opt_in=False)
    MailingList.create(team=team, name="Staff", visibility="private")
    CustomField.create(team=team, key="company", label="Company", type="text")
    return team, offers


@pytest.fixture
def blog_site():
    """start(html) -> the URL of another origin (a loopback port of its own) that serves `html`."""
    servers = []

    def start(html):
        class Blog(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blog)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_build_a_form_sign_up_on_its_page_and_the_contact_has_its_lists(page, ready):
    team, offers = ready
    page.goto("/contacts/forms")
    expect(page.locator("#no-built-forms")).to_be_visible()
    page.get_by_role("link", name="Build a sign-up form").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New sign-up form")
    assert_fits_the_screen(page)
    page.get_by_label("Name (for your team)").fill("Shop footer")
    page.get_by_label("Staff").check()
    page.get_by_label("Offers").check()
    page.get_by_label("Ask Company").check()
    page.get_by_label("Company is required").check()
    page.get_by_label("Title").fill("Deals every Friday")
    # The live preview follows what is typed.
    expect(page.frame_locator("#builder-preview iframe").get_by_role("heading", level=1)).to_have_text(
        "Deals every Friday")
    expect(page.frame_locator("#builder-preview iframe").get_by_label("Company")).to_be_visible()
    assert "csrf_token" not in page.locator("#builder-preview iframe").get_attribute("src")  # no token in URLs
    page.get_by_role("button", name="Create form").click()
    # A private list is refused in words, at its place, and the rest is kept.
    expect(page.locator("#e-lists")).to_contain_text("“Staff” is a private list")
    expect(page.get_by_label("Title")).to_have_value("Deals every Friday")
    page.get_by_label("Staff").uncheck()
    page.get_by_role("button", name="Create form").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shop footer")
    assert_fits_the_screen(page)
    assert_accessible(page)
    url = page.get_by_label("Hosted form address").input_value()
    signup_form = SignupForm.get()
    assert url == f"{page.url.split('/contacts')[0]}/f/{signup_form.public_id}"

    visitor = page.context.browser.new_context(viewport=page.viewport_size)
    hosted = visitor.new_page()
    response = hosted.goto(url)
    assert "set-cookie" not in response.headers
    expect(hosted.get_by_role("heading", level=1)).to_have_text("Deals every Friday")
    assert "Staff" not in hosted.content()
    assert_accessible(hosted)
    hosted.get_by_label("Email address").fill("fan@example.com")
    hosted.get_by_role("button", name="Subscribe").click()
    expect(hosted.locator("#e-field-company")).to_have_text("Fill in “Company”.")
    hosted.get_by_label("Company").fill("Initech")
    hosted.get_by_role("button", name="Subscribe").click()
    expect(hosted.get_by_role("heading", level=1)).to_have_text("Thank you")
    visitor.close()

    contact = Contact.get(Contact.email == "fan@example.com")
    assert contact.attributes == {"company": "Initech"}
    assert [(s.list_id, s.status) for s in Subscription.select().where(Subscription.contact == contact)] == [
        (offers.id, "subscribed")]
    page.goto("/contacts/forms")
    expect(page.locator(f"#built-{signup_form.id} .signups")).to_have_text("1 signed up, 1 confirmed")


def test_the_popup_script_opens_an_accessible_dialog_on_another_site(page, ready, live_server, blog_site):
    team, offers = ready
    signup_form = SignupForm.create(team=team, name="Popup", title="Join the club", list_ids=[offers.id],
                                    fields=[], popup_delay=0)
    blog = (f'<!doctype html><html lang="en"><title>A blog</title><h1>My blog</h1>'
            f'<a href="{live_server.url(f"/f/{signup_form.public_id}")}" data-loft-form="{signup_form.public_id}">'
            f'Subscribe to my news</a>'
            f'<script src="{live_server.url(f"/f/{signup_form.public_id}/popup.js")}" defer></script></html>')
    other_site = page.context.new_page()
    blog_url = blog_site(blog)
    other_site.goto(blog_url)
    opener = other_site.get_by_role("link", name="Subscribe to my news")  # the builder's popup code
    opener.focus()
    other_site.keyboard.press("Enter")
    dialog = other_site.get_by_role("dialog", name="Join the club")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    frame = other_site.frame_locator("dialog iframe")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Join the club")
    # Modal: what is behind the dialog is out of reach; Esc closes it and focus goes back to the button.
    other_site.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    assert other_site.url == blog_url  # the link opened the dialog instead of leaving the page

    # Signing up inside the dialog.
    opener.click()
    frame.get_by_label("Email address").fill("reader@example.com")
    frame.get_by_role("button", name="Subscribe").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Thank you")
    contact = Contact.get(Contact.email == "reader@example.com")
    assert Subscription.get(Subscription.contact == contact).list_id == offers.id
    other_site.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_the_popup_opens_by_itself_after_the_forms_delay(page, ready, blog_site, live_server):
    team, offers = ready
    signup_form = SignupForm.create(team=team, name="Timed", title="Before you go", list_ids=[offers.id],
                                    fields=[], popup_delay=1)
    blog = (f'<!doctype html><html lang="en"><title>A shop</title><h1>My shop</h1>'
            f'<script src="{live_server.url(f"/f/{signup_form.public_id}/popup.js")}" defer></script></html>')
    other_site = page.context.new_page()
    other_site.goto(blog_site(blog))
    dialog = other_site.get_by_role("dialog", name="Before you go")
    expect(dialog).to_be_visible()  # nobody clicked anything
    expect(other_site.frame_locator("dialog iframe").get_by_role("heading", level=1)).to_have_text("Before you go")
    other_site.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
