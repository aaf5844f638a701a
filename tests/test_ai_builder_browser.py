"""The AI panel of the campaign builder in a real headless Chromium, at phone and desktop size, against the
Gemini stub: subject lines suggested from a brief, two of them ticked into the campaign's subject A/B test
(the A/B card shows variants A and B without a reload), "Use as subject" and Undo, and the draft saved
afterwards keeps it all. axe-core checks the panel with its suggestions. Skips with the reason where
Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.ai import jobs  # noqa: E402
from app.models import AiJob  # noqa: E402
from app.models import Campaign  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import Variant  # noqa: E402

shot = screenshots("ai-builder")

SUGGESTIONS = [
    {"subject": "Tulips are back", "preheader": "Forty kinds, planted by hand"},
    {"subject": "Your autumn bulbs are here", "preheader": "Plant now, bloom in spring"},
    {"subject": "FREE bulbs!!! Act now", "preheader": "Only this week"},
    {"subject": "Spring starts in October", "preheader": "The bulb guide is inside"},
    {"subject": "A garden for {{ contact.first_name }}", "preheader": "Bulbs picked for you"},
]


def _draft(app):
    with app.app_context():
        return Campaign.create(team=Team.get(), name="Autumn issue", subject="My subject", preheader="Mine",
                               from_name="Acme", from_email="news@acme.example", kind="html",
                               body="<h1>Bulbs</h1><p>Hi {{ contact.first_name }}, our bulbs are in.</p>")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_subject_lines_into_an_ab_test(app, page, gemini, size):
    page.set_viewport_size(size)
    sign_up_admin(page)
    campaign = _draft(app)
    gemini.reply(data={"items": SUGGESTIONS})
    page.goto(f"/campaigns/{campaign.id}")
    panel = page.locator("#ai-panel")
    expect(panel.get_by_role("heading", name="Write with AI")).to_be_visible()
    panel.get_by_label("What is this email about?").fill("Our autumn bulbs are in")
    panel.get_by_role("button", name="Suggest subject lines").click()
    suggestions = panel.locator(".ai-suggestion")
    expect(suggestions).to_have_count(5)
    expect(suggestions.nth(2).locator(".ai-flags")).to_contain_text("act now", ignore_case=True)
    expect(panel.locator(".ai-meta")).to_contain_text("tokens")
    assert "Our autumn bulbs are in" in gemini.bodies_text()
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"suggestions-{size['width']}")

    # "Use as subject" fills the builder's fields (saved), and Undo puts the writer's own back.
    suggestions.nth(3).get_by_role("button", name="Use as subject").click()
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Spring starts in October")
    expect(page.get_by_label("Preheader", exact=True)).to_have_value("The bulb guide is inside")
    expect(panel.locator(".ai-job [role=status]")).to_be_focused()  # not lost to the top of the page
    panel.get_by_role("button", name="Undo").click()
    expect(page.get_by_label("Subject", exact=True)).to_have_value("My subject")
    assert Campaign.get_by_id(campaign.id).subject == "My subject"

    # Two ticked suggestions become variants A and B of a subject test, shown in the A/B card at once.
    suggestions = panel.locator(".ai-suggestion")
    suggestions.nth(0).get_by_label("Test in A/B").check()
    suggestions.nth(1).get_by_label("Test in A/B").check()
    panel.get_by_role("button", name="Make an A/B test").click()
    expect(panel.locator("[role=status]").first).to_contain_text("variants A and B")
    ab = page.locator("#ab-test")
    expect(ab.get_by_label("Test up to four variants", exact=False)).to_be_checked()
    expect(ab.get_by_label("Subject line")).to_be_checked()
    expect(ab.get_by_label("Variant B subject")).to_have_value("Your autumn bulbs are here")
    expect(ab.get_by_label("Variant B preheader")).to_have_value("Plant now, bloom in spring")
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Tulips are back")
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"ab-test-{size['width']}")

    # Saving the whole builder afterwards keeps the test as made.
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".flash-success")).to_contain_text("Draft saved")
    variants = {v.label: (v.subject, v.preheader) for v in Variant.select().where(Variant.campaign == campaign.id)}
    assert variants == {"A": ("Tulips are back", ""), "B": ("Your autumn bulbs are here", "Plant now, bloom in spring")}
    saved = Campaign.get_by_id(campaign.id)
    assert (saved.subject, saved.preheader) == ("Tulips are back", "Forty kinds, planted by hand")
    assert saved.ab_test["tests"] == "subject" and saved.ab_test["metric"] == "opens"


def test_a_waiting_job_polls_until_its_answer_and_cancel_stops_another(app, page, gemini):
    sign_up_admin(page)
    campaign = _draft(app)
    with app.app_context():
        waiting = jobs.start(Team.get(), None, campaign, "subject_lines", {"brief": "Bulbs"})
    page.goto(f"/campaigns/{campaign.id}")
    card = page.locator(f"#ai-job-{waiting.id}")
    expect(card.get_by_role("status")).to_contain_text("Writing suggestions")
    assert_accessible(page)
    with app.app_context():
        jobs.run(waiting.id)  # what the worker does; the page finds out by itself
    expect(card.locator(".ai-suggestion")).to_have_count(5)

    with app.app_context():
        second = jobs.start(Team.get(), None, campaign, "subject_lines", {"brief": "Tulips"})
    page.reload()
    card = page.locator(f"#ai-job-{second.id}")
    card.get_by_role("button", name="Cancel").click()
    expect(card).to_contain_text("Cancelled: nothing was changed.")
    expect(card.get_by_role("button", name="Try again")).to_be_focused()
    with app.app_context():
        jobs.run(second.id)
    assert AiJob.get_by_id(second.id).state == "cancelled" and len(gemini.requests) == 1
