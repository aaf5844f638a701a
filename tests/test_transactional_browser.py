"""The Transactional page in a real headless Chromium: the empty state, then a list with a failed message and its
status history, checked with axe at phone and desktop size. Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from app.models import SenderDomain  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.senders import domains  # noqa: E402
from app.transactional import service  # noqa: E402
from tasks import transactional as tx_tasks  # noqa: E402
from tests.sending_support import make_account  # noqa: E402

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_page_lists_messages_and_shows_a_history(app, page, smtp, size):
    page.set_viewport_size(size)
    admin = sign_up_admin(page)
    page.goto("/transactional/")
    page.wait_for_load_state()
    expect(page.locator("#transactional-empty")).to_contain_text("POST /api/v1/tx")
    assert_accessible(page)
    assert_fits_the_screen(page)

    server = smtp(reject=("nobody@",))
    with app.app_context():
        team = Team.get(Team.name == admin["team"])
        team.default_from_email = "news@acme.test"
        team.save()
        row = domains.add_domain(team, "acme.test")
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
        make_account(team, server.port)
        for to in ("buyer@example.com", "nobody@example.com"):
            tx_tasks.queue([service.accept(team, api_key=None, message={
                "to": to, "subject": "Your receipt", "html": "<p>Thanks</p>", "tags": ["receipt"]})])
    page.goto("/transactional/")
    page.wait_for_load_state()
    expect(page.locator("#tx-messages tbody tr")).to_have_count(2)
    assert_accessible(page)
    assert_fits_the_screen(page)
    page.get_by_role("link", name="Failed").click()
    page.wait_for_load_state()
    expect(page.locator("#tx-messages tbody tr")).to_have_count(1)
    page.get_by_role("link", name="nobody@example.com").click()
    page.wait_for_load_state()
    expect(page.locator("#tx-history li")).to_have_count(2)
    expect(page.locator("#tx-history")).to_contain_text("550 5.1.1")
    assert_accessible(page)
    assert_fits_the_screen(page)
