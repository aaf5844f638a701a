"""SMTP accounts and sender domains in a real headless Chromium, at phone size: the HTMX
"Test connection" against a real aiosmtpd server, inline form errors, and "Check DNS"
against a real DNS server on loopback. Skips with the reason where Chromium is missing."""
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402
from tests.smtp_support import PASSWORD  # noqa: E402
from tests.smtp_support import USER  # noqa: E402


shot = screenshots("sending")


def test_add_an_account_and_test_the_connection_in_place(app, page, smtp_server):
    app.config["SMTP_VALIDATE_CERTS"] = False  # the test server's certificate is self-signed
    port = smtp_server("starttls")
    sign_up_admin(page)
    page.goto("/sending/accounts")
    shot(page, "accounts-empty")
    page.get_by_role("link", name="Add an SMTP account").click()
    page.get_by_role("link", name="Another provider").click()
    page.get_by_label("Name", exact=True).fill("Local relay")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(port))
    page.get_by_label("Encryption").select_option("starttls")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Messages per day").fill("1000")
    page.get_by_label("Connections at a time").fill("2")
    page.get_by_role("button", name="Save account").click()
    expect(page).to_have_url(re.compile(r"/sending/accounts#account-\d+$"), timeout=15_000)
    card = page.locator("article.account")
    expect(card.locator(".limits")).to_have_text("up to 1,000 messages a day, 2 connections at a time")
    url = page.url
    page.wait_for_load_state()  # htmx is ready: a click before it would post the form without it
    card.get_by_role("button", name="Test connection").click()
    transcript = card.locator("pre.transcript")
    expect(transcript).to_contain_text("S: 235 2.7.0 Authentication successful", timeout=15_000)
    expect(card.locator(".flash-success")).to_contain_text("Connection works.")
    assert page.url == url  # swapped in place by HTMX, no navigation
    shot(page, "account-tested")


def test_a_form_error_comes_back_in_place_with_focus_on_the_field(page):
    sign_up_admin(page)
    page.goto("/sending/accounts/new?preset=icloud")
    expect(page.get_by_label("Host")).to_have_value("smtp.mail.me.com")
    expect(page.locator(".preset-note")).to_contain_text("app-specific password")
    page.get_by_label("User name").fill("ada@icloud.com")
    page.get_by_label("App-specific password").fill(PASSWORD)
    page.get_by_label("Messages per hour").fill("-3")
    page.get_by_role("button", name="Save account").click()
    error = page.locator("#e-per_hour")
    expect(error).to_have_text("Messages per hour: enter 0 or more.")
    expect(page.get_by_label("Messages per hour")).to_be_focused()
    expect(page.get_by_label("App-specific password")).to_have_value("")  # never sent back
    shot(page, "account-form-error")


def test_add_a_domain_and_check_its_dns_in_place(app, page, dns_zone):
    sign_up_admin(page)
    page.goto("/sending/domains")
    page.get_by_label("Domain").fill("example.com")
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_url("**/sending/domains/*")
    for record in page.locator("section.record").all():
        dns_zone.publish(record.locator("code.record-name").inner_text(), record.locator("code.record-value").inner_text())
    page.get_by_role("button", name="Check DNS").click()
    expect(page.locator("#dns-status .verified")).to_contain_text("campaigns may send from addresses at example.com")
    expect(page.locator("#dns-status li[data-check=dkim]")).to_contain_text("matches the one Loft signs with")
    shot(page, "domain-verified")
