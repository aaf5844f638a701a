"""The DMARC pages in a real headless Chromium at phone size: the empty page's rua= advice, a report
uploaded with the file chooser and the keyboard, the digest it leads to (axe-core, fits the screen).
Skips with the reason where Chromium is missing."""
import datetime
import gzip

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402
from tests.dmarc_support import report_xml  # noqa: E402


def test_upload_a_report_and_read_its_digest(app, page, tmp_path):
    sign_up_admin(page)
    page.goto("/deliverability/dmarc")
    expect(page.locator("#dmarc-empty")).to_contain_text("rua=")
    assert_accessible(page)
    assert_fits_the_screen(page)

    begin = int(datetime.datetime.combine(datetime.date.today() - datetime.timedelta(days=1), datetime.time(),
                                          datetime.timezone.utc).timestamp())
    path = tmp_path / "mail.example.net!example.com!report.xml.gz"
    path.write_bytes(gzip.compress(report_xml(records=6, begin=begin, end=begin + 86399)))
    page.get_by_label("Report file").set_input_files(str(path))
    page.get_by_label("Report file").focus()
    page.keyboard.press("Tab")  # the Upload button is next, and Enter presses it
    page.keyboard.press("Enter")
    page.wait_for_url("**/deliverability/dmarc/example.com")
    expect(page.locator("#flashes")).to_contain_text("6 records, 18 messages")
    expect(page.locator("#dmarc-totals")).to_contain_text("50.0 %")
    expect(page.locator("#dmarc-trend svg")).to_be_visible()
    expect(page.locator("#dmarc-failing-table tbody tr")).to_have_count(3)
    assert_accessible(page)
    assert_fits_the_screen(page)

    page.goto("/deliverability/dmarc")
    expect(page.locator("#dmarc-domains")).to_contain_text("example.com")
    assert_accessible(page)
