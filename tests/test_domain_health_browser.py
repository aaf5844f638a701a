"""Domain health in a real headless Chromium: "Check now" swaps the section in place (HTMX) with a traffic light,
a symbol and a word per check, the record to publish in a box its Copy button copies; axe-core finds no serious
problem and nothing is wider than a phone. DNS is a loopback server (dns_zone); skips with the reason where
Chromium or Playwright is missing."""
import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.models import SenderDomain  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.senders import domains  # noqa: E402


def test_check_now_shows_the_lights_and_copies_the_record_on_a_phone(app, page, dns_zone):
    sign_up_admin(page)
    app.config["DOMAIN_HEALTH_GATE"] = True
    with app.app_context():
        row = domains.add_domain(Team.get(), "acme.example")
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
        dns_zone.publish(domains.dkim_name(row), domains.dkim_record(row))
    dns_zone.publish("acme.example", "v=spf1 mx ~all")
    dns_zone.add("acme.example", "MX", "10 mx.acme.example.")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    page.goto(f"/sending/domains/{row.id}")
    section = page.locator("#domain-health")
    expect(section.locator(".health-empty")).to_contain_text("Not checked yet")
    button = section.get_by_role("button", name="Check now")
    button.focus()
    page.keyboard.press("Enter")  # by keyboard
    dmarc = section.locator("li[data-check=dmarc]")
    expect(dmarc).to_have_attribute("data-status", "fail")
    expect(dmarc.locator(".badge")).to_have_text("Fail")
    expect(dmarc.locator(".badge svg.icon use")).to_have_attribute("href", re.compile("#circle-x$"))
    expect(section.locator("li[data-check=dkim] .badge")).to_have_text("Pass")
    expect(section.locator(".health-gate")).to_contain_text("acme.example has no DMARC record.")
    expect(section.locator(".health-checked")).to_contain_text("Last checked")
    assert page.url.endswith(f"/sending/domains/{row.id}")  # swapped in place, no navigation

    dmarc.get_by_role("button", name="Copy the DMARC record").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.example"
    expect(page.get_by_label("Publish: TXT record at _dmarc.acme.example")).to_have_value(copied)
    assert_accessible(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "wider than the phone"
