"""The CSV import in a real browser: upload with the file picker, map, import, report; live progress over htmx.

Runs on Debian's headless Chromium (see browser_support.py); skipped with the reason where it is missing.
JavaScript errors, CSP violations and failing htmx requests fail the test (the `page` fixture).
"""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(make test installs requirements-dev.txt)").expect

from browser_support import ADMIN  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


def test_upload_map_and_import_on_a_phone(page, tmp_path):
    from app.models import Contact
    from app.models import MailingList
    from app.models import Team
    sign_up_admin(page)
    team = Team.get(Team.name == ADMIN["team"])
    MailingList.create(team=team, name="Newsletter")
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes("\ufeffEmail Address;First Name;Last Name;Town\r\n"
                         "zoe@example.com;Zoë;Ærø;Oslo\r\nnot-an-address;Bad;Row;Rome\r\n".encode("utf-8"))

    page.goto("/imports/")
    expect(page.locator("#imports-empty")).to_be_visible()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and preview").click()
    page.wait_for_url("**/imports/*/map")
    expect(page.locator("#detected-delimiter")).to_have_text("semicolon")
    expect(page.locator("#preview tbody tr")).to_have_count(2)
    expect(page.get_by_label("Email Address")).to_have_value("email")
    expect(page.get_by_label("First Name")).to_have_value("first_name")
    page.get_by_label("Town").select_option("new:town")
    page.get_by_label("Newsletter").check()
    wide = page.evaluate("""[...document.querySelectorAll('main *')]
        .filter(e => !e.closest('.table-wrap, .tabs') && e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '#' + e.id)""")
    assert wide == []
    page.get_by_role("button", name="Start import").click()

    page.wait_for_url("**/imports/*")
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "done")
    expect(page.locator("#count-created")).to_have_text("1")
    expect(page.locator("#count-rejected")).to_have_text("1")
    expect(page.get_by_role("link", name="Download rejected rows (CSV)")).to_be_visible()
    assert Contact.get(Contact.email == "zoe@example.com").name == "Zoë Ærø"
    # Nothing on the page runs off the side of a phone screen (tables scroll inside their wrapper).
    wide = page.evaluate("""[...document.querySelectorAll('main *')]
        .filter(e => !e.closest('.table-wrap, .tabs') && e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '#' + e.id)""")
    assert wide == []


def test_progress_bar_updates_itself_then_shows_the_report(page):
    from app.imports import services
    from app.models import ImportJob
    from app.models import Team
    sign_up_admin(page)
    team = Team.get(Team.name == ADMIN["team"])
    job = ImportJob.create(team=team, filename="big.csv", path="/nonexistent", status="running", total_rows=1000,
                           processed_rows=100, heartbeat_at=services.utcnow())
    page.goto(f"/imports/{job.id}")
    bar = page.locator("progress#import-bar")
    expect(bar).to_have_attribute("value", "100")
    expect(page.get_by_text("100 of 1,000 rows (10%)")).to_be_visible()

    ImportJob.update(processed_rows=600, created=590).where(ImportJob.id == job.id).execute()
    expect(bar).to_have_attribute("value", "600", timeout=5000)  # htmx polls every second
    expect(page.get_by_text("600 of 1,000 rows (60%)")).to_be_visible()

    ImportJob.update(processed_rows=1000, created=990, rejected=10, status="done").where(ImportJob.id == job.id).execute()
    expect(page.locator("#count-created")).to_have_text("990", timeout=5000)
    expect(page.locator("#import-progress")).not_to_have_attribute("hx-trigger", "every 1s")
    expect(page.locator("progress#import-bar")).to_have_count(0)
