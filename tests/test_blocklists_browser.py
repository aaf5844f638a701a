"""The Blocklists section of a sender domain's page in a real headless Chromium at phone size: "Check now"
asks the lists on the loopback DNS server and swaps the answers in place, in words and colour, accessible
(axe-core) and no wider than the phone. Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import ADMIN  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.models import SmtpAccount  # noqa: E402
from app.models import Team  # noqa: E402

shot = screenshots("blocklists")


def test_check_now_shows_each_list_in_place(app, page, dns_zone):
    sign_up_admin(page)
    SmtpAccount.create(team=Team.get(Team.name == ADMIN["team"]), name="Relay", host="smtp.example.com", port=587,
                       tls_mode="starttls")
    dns_zone.add("smtp.example.com", "A", "192.0.2.10")
    dns_zone.add("10.2.0.192.zen.spamhaus.org", "A", "127.0.0.2")
    dns_zone.publish("10.2.0.192.zen.spamhaus.org", "Listed in SBL, see https://check.spamhaus.org/")
    dns_zone.add("10.2.0.192.b.barracudacentral.org", "A", "127.255.255.254")
    page.goto("/sending/domains")
    page.get_by_label("Domain").fill("example.com")
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_url("**/sending/domains/*")
    section = page.locator("#blocklists")
    expect(section.locator("#blocklists-empty")).to_contain_text("Not checked yet")
    url = page.url
    section.get_by_role("button", name="Check now").click()
    listed = section.locator('tr[data-target="192.0.2.10"][data-zone="zen.spamhaus.org"]')
    expect(listed).to_contain_text("Listed", timeout=15_000)
    expect(listed).to_contain_text("Spamhaus SBL")
    expect(listed.get_by_role("link", name="Look up and request removal")).to_have_attribute(
        "href", "https://check.spamhaus.org/")
    expect(section.locator('tr[data-zone="b.barracudacentral.org"]')).to_contain_text("Could not check")
    expect(section.locator('tr[data-zone="bl.spamcop.net"]')).to_contain_text("Not listed")
    expect(section.locator('tr[data-zone="dbl.spamhaus.org"]')).to_contain_text("Not listed")
    expect(section.locator("#blocklists-summary")).to_contain_text("Listed on 1 list")
    assert page.url == url  # swapped in place by HTMX
    assert_fits_the_screen(page)
    assert_accessible(page)
    shot(page, "checked")
