"""AI drafts and rewrites in a real headless Chromium against the Gemini stub: a draft written from a brief in
the builder's AI panel, shown beside the current email (stacked on a phone, side by side on a wide screen),
accepted into the body field without a reload, undone with the keyboard; then a selection of the body
rewritten and put back in its place (static/ai_writing.js sends the selection). axe-core checks the panel.
Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.content.blocks import schema  # noqa: E402
from app.content.blocks import store  # noqa: E402
from app.models import Campaign  # noqa: E402
from app.models import Team  # noqa: E402

shot = screenshots("ai-writing")

OLD_BODY = "<p>Hello {{ contact.first_name }},</p>\n<p>We are very very happy that the shop opens again.</p>"
SENTENCE = "We are very very happy that the shop opens again."


def draft_campaign(app):
    with app.app_context():
        return Campaign.create(team=Team.get(), name="Tasting menu", subject="Old subject", kind="html",
                               body=OLD_BODY)


def stored(campaign):
    return Campaign.get_by_id(campaign.id)


def test_a_draft_from_a_brief_beside_the_body_accepted_and_undone_then_a_selection_rewritten(app, page, gemini):
    sign_up_admin(page)
    campaign = draft_campaign(app)
    gemini.reply(data={
        "subject": "Seven courses this spring", "preheader": "Book your table",
        "html": '<h1>Hello {{ contact.first_name }}</h1><p onclick="x()">Seven courses are waiting.</p>'
                '<script>alert(1)</script>',
        "text": "Hello\nSeven courses are waiting."})
    page.goto(f"/campaigns/{campaign.id}")
    panel = page.locator("#ai-draft")
    panel.get_by_label("Goal").fill("Fill the tables for our new tasting menu")
    panel.get_by_label("Key points").fill("Seven courses\nA vegetarian option")
    panel.get_by_label("Tone").select_option("friendly")
    panel.get_by_label("Length").select_option("short")
    expect(panel.get_by_label("Layout")).to_have_value("html")  # the campaign's own kind
    panel.get_by_role("button", name="Write a draft").click()

    result = page.locator(".ai-result")
    expect(result.get_by_role("heading", name="Proposed draft")).to_be_visible()
    expect(result).to_contain_text("Seven courses this spring")
    now_frame, proposed_frame = result.locator("iframe").nth(0), result.locator("iframe").nth(1)
    expect(proposed_frame).to_have_attribute("sandbox", "")
    proposed = page.frame_locator(".ai-proposed iframe")
    expect(proposed.get_by_text("Seven courses are waiting.")).to_be_visible()
    assert "Seven courses" not in stored(campaign).body  # nothing changes before a click
    # On a phone the current email and the proposal are stacked; on a wide screen side by side.
    now_box, proposed_box = now_frame.bounding_box(), proposed_frame.bounding_box()
    assert proposed_box["y"] >= now_box["y"] + now_box["height"]
    assert_fits_the_screen(page)
    shot(page, "draft-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    result.scroll_into_view_if_needed()
    page.wait_for_function("() => { const f = document.querySelectorAll('.ai-result iframe');"
                           " return f.length === 2 && Math.abs(f[0].getBoundingClientRect().top"
                           " - f[1].getBoundingClientRect().top) < 2; }")
    shot(page, "draft-desktop")
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 844})

    result.get_by_role("button", name="Accept into the email").click()
    expect(result).to_contain_text("This draft is in the email")
    body_field = page.locator("#f-body")
    expect(body_field).to_have_value(stored(campaign).body)
    assert "Seven courses are waiting." in stored(campaign).body
    assert "<script" not in stored(campaign).body and "onclick" not in stored(campaign).body
    expect(page.locator("#f-subject")).to_have_value("Seven courses this spring")

    undo = result.get_by_role("button", name="Undo")
    expect(undo).to_be_focused()  # the keyboard stays in the card
    page.keyboard.press("Enter")
    expect(body_field).to_have_value(OLD_BODY)
    expect(page.locator("#f-subject")).to_have_value("Old subject")
    assert (stored(campaign).body, stored(campaign).subject) == (OLD_BODY, "Old subject")
    expect(result.get_by_role("button", name="Accept into the email")).to_be_focused()

    # Rewrite only a selection of the body: the script sends where it is, the answer goes back there.
    gemini.reply(data={"text": "We are glad the shop opens again."})
    start = OLD_BODY.index(SENTENCE)
    body_field.evaluate("(el, range) => { el.focus(); el.setSelectionRange(range[0], range[1]);"
                        " el.dispatchEvent(new Event('select', {bubbles: true})); }", [start, start + len(SENTENCE)])
    rewrite = page.locator("#ai-rewrite")
    expect(rewrite.get_by_label("The text selected in the body", exact=False)).to_be_checked()
    expect(rewrite).to_contain_text(f"{len(SENTENCE)} characters selected")
    rewrite.get_by_label("How").select_option("friendlier")
    rewrite.get_by_role("button", name="Rewrite").click()
    rewritten = rewrite.locator(".ai-result")
    expect(rewritten.locator(".ai-proposed")).to_contain_text("We are glad the shop opens again.")
    rewritten.get_by_role("button", name="Accept").click()
    expected = OLD_BODY.replace(SENTENCE, "We are glad the shop opens again.")
    expect(body_field).to_have_value(expected)
    assert stored(campaign).body == expected
    shot(page, "rewrite-accepted")


def test_a_text_block_rewritten_with_ai_then_put_back_with_the_block_editors_undo(app, page, gemini):
    sign_up_admin(page)
    campaign = draft_campaign(app)
    with app.app_context():
        text = schema.new_block("text")
        text["html"] = "<p>Hello {{ contact.first_name }}, we are very very happy to open again.</p>"
        store.save(Campaign.get_by_id(campaign.id), {"version": 1, "blocks": [schema.new_block("heading"), text]})
    gemini.reply(data={"text": "<p>Hello {{ contact.first_name }}, we open again.</p>"})
    page.goto(f"/campaigns/{campaign.id}")
    block = page.locator(f"#block-{text['id']}")
    block.get_by_text("Rewrite with AI").click()
    block.get_by_label("How").select_option("shorter")
    block.get_by_role("button", name="Rewrite this block").click()
    card = block.locator(".ai-result")
    expect(card.locator(".ai-proposed")).to_contain_text("we open again.")
    expect(card).to_contain_text("very very happy")  # the block's text now, beside the proposal
    assert_fits_the_screen(page)
    assert_accessible(page)
    shot(page, "block-proposal")
    card.get_by_role("button", name="Accept").click()
    # The editor is loaded again: the block's summary and form show the new text, and its card says so.
    expect(page.locator(f"#block-{text['id']} .block-summary")).to_contain_text("we open again.")
    expect(page.locator(f"#block-{text['id']} .ai-result")).to_contain_text("The rewrite is in the email")
    assert "we open again." in stored(campaign).blocks["blocks"][1]["html"]
    page.locator("#block-undo").click()
    expect(page.locator(f"#block-{text['id']} .block-summary")).to_contain_text("very very happy")
    assert "very very happy" in stored(campaign).blocks["blocks"][1]["html"]
    expect(page.locator(f"#block-{text['id']} .ai-result")).to_contain_text("the email has changed since")
