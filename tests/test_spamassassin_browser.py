"""The "SpamAssassin score" card in a real headless Chromium at phone size, against a real spamd on loopback:
the button swaps in the verdict, the meter and the rules; skips with the reason without Chromium or spamd."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import sign_up_admin  # noqa: E402

from app.models import Campaign  # noqa: E402
from app.models import Team  # noqa: E402

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_the_card_shows_the_score_and_the_rules(app, spamd, page):
    app.config["SPAMD_ADDRESS"] = spamd.address
    sign_up_admin(page)
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Spring issue", subject="Spring: what is new", kind="html",
                                   body=f"<p>Hello</p><p>{GTUBE}</p>", from_name="Acme",
                                   from_email="news@acme.example")
    page.goto(f"/campaigns/{campaign.id}")
    card = page.locator("#spam-score")
    expect(card.get_by_role("heading", name="SpamAssassin score")).to_be_visible()
    card.get_by_role("button", name="Check with SpamAssassin").click()
    expect(page.locator("#spam-score .spam-verdict")).to_contain_text("Would be marked as spam")
    expect(page.locator("#spam-score svg.spam-meter")).to_be_visible()
    expect(page.locator("#spam-score tr[data-rule=GTUBE]")).to_contain_text("Generic Test for Unsolicited Bulk Email")
    # The swapped card still works: a second check replaces it again.
    page.locator("#spam-score").get_by_role("button", name="Check with SpamAssassin").click()
    expect(page.locator("#spam-score tr[data-rule=GTUBE]")).to_have_count(1)
