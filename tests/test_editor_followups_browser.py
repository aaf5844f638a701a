"""The block editor in a real headless Chromium: a block moved into a column and back out with the keyboard (its
"Move to" menu), Bold and Italic saying whether the text at the cursor is bold or italic, and the new-template
page hiding the body box while drag-and-drop blocks are chosen. Skips with the reason where Chromium is missing."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

TAB_LIMIT = 40


def tab_to(page, locator, backwards=False):
    """Press Tab (Shift+Tab) until `locator` has the focus; fails when it is not reached."""
    for _ in range(TAB_LIMIT):
        if locator.count() == 1 and locator.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"{locator} was not reached with the keyboard")


def _campaign(app, blocks):
    from app.content.blocks import store
    from app.models import Campaign
    from app.models import Team
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Columns", subject="Columns", kind="blocks")
        store.save(campaign, {"version": 1, "blocks": blocks})
        return campaign.id


def _layout(app, campaign_id):
    from app.models import Campaign
    with app.app_context():
        return [(b["id"], [[inner["id"] for inner in column] for column in b["columns"]]) if b["type"] == "columns"
                else b["id"] for b in Campaign.get_by_id(campaign_id).blocks["blocks"]]


def _move_by_keyboard(page, block_id, option_label):
    block = page.locator(f"#block-{block_id}")
    block.focus()  # as after Tab reached it; its own controls follow
    tab_to(page, block.locator(":scope > details.block-move > summary"))
    page.keyboard.press("Enter")
    menu = page.locator(f"#f-{block_id}-into")
    tab_to(page, menu)
    labels = menu.locator("option").all_text_contents()
    current = menu.evaluate("select => select.selectedIndex")
    key = "ArrowDown" if labels.index(option_label) > current else "ArrowUp"
    for _ in range(abs(labels.index(option_label) - current)):
        page.keyboard.press(key)
    expect(menu.locator("option:checked")).to_have_text(option_label)
    tab_to(page, block.get_by_role("button", name="Move", exact=True))
    page.keyboard.press("Enter")


def test_move_a_block_into_a_column_and_out_by_keyboard(app, page):
    page.set_viewport_size(PHONE)
    sign_up_admin(page)
    campaign_id = _campaign(app, [
        {"id": "heading01", "type": "heading", "text": "Welcome", "level": 1, "align": "left"},
        {"id": "columns1", "type": "columns", "columns": [[], []]},
        {"id": "button01", "type": "button", "text": "Shop now", "href": "https://shop.example.com/",
         "align": "center", "color": ""}])
    page.goto(f"/campaigns/{campaign_id}")
    _move_by_keyboard(page, "button01", "Column 2 of the columns (block 2)")
    expect(page.locator("#block-editor-status")).to_contain_text(
        "Moved the button “Shop now” into column 2 of the columns (block 2).")
    expect(page.locator("#block-columns1 #block-button01")).to_be_focused()  # the keyboard stays on the block
    assert _layout(app, campaign_id) == ["heading01", ("columns1", [[], ["button01"]])]
    _move_by_keyboard(page, "button01", "Top level")
    expect(page.locator("#block-editor-status")).to_contain_text("to the top level")
    expect(page.locator("#block-list > #block-button01")).to_be_focused()
    assert _layout(app, campaign_id) == ["heading01", ("columns1", [[], []]), "button01"]
    # The page fits a phone: nothing wider than the window.
    assert_fits_the_screen(page)


def test_bold_and_italic_show_their_state(app, page):
    sign_up_admin(page)
    campaign_id = _campaign(app, [{"id": "text0001", "type": "text", "html": "<p>Plain <strong>loud</strong></p>"}])
    page.goto(f"/campaigns/{campaign_id}")
    block = page.locator("#block-text0001")
    block.locator("details.block-edit > summary").click()
    area = block.locator(".rich-text")
    bold = block.get_by_role("button", name="Bold")
    italic = block.get_by_role("button", name="Italic")
    area.click()
    page.keyboard.press("Control+Home")
    expect(bold).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("End")  # into the bold word
    page.keyboard.press("ArrowLeft")
    expect(bold).to_have_attribute("aria-pressed", "true")
    expect(italic).to_have_attribute("aria-pressed", "false")
    # Select "Plain" and make it italic with the keyboard: the button says so.
    page.keyboard.press("Control+Home")
    for _ in range(len("Plain")):
        page.keyboard.press("Shift+ArrowRight")
    tab_to(page, italic, backwards=True)
    page.keyboard.press("Enter")
    expect(italic).to_have_attribute("aria-pressed", "true")
    expect(area.locator("i, em")).to_have_text("Plain")


def test_the_new_template_page_hides_the_body_for_blocks(app, page):
    sign_up_admin(page)
    with page.expect_response(lambda response: "/preview" in response.url):
        page.goto("/templates/new")
    body = page.get_by_label("Body")
    html_choice = page.locator("input[name=kind][value=html]")
    blocks_choice = page.locator("input[name=kind][value=blocks]")

    def choose(radio):
        # One change at a time, each answered: the live preview cancels a request a newer one replaces.
        with page.expect_response(lambda response: "/preview" in response.url):
            radio.check()

    expect(blocks_choice).to_be_checked()  # the choice a new template starts with
    expect(body).to_be_hidden()
    choose(html_choice)
    expect(body).to_be_visible()
    choose(blocks_choice)
    expect(body).to_be_hidden()
    choose(html_choice)
    expect(body).to_be_visible()


def test_drag_a_block_into_a_column_and_back_out(app, page):
    from browser_support import DESKTOP
    page.set_viewport_size(DESKTOP)
    sign_up_admin(page)
    campaign_id = _campaign(app, [
        {"id": "heading01", "type": "heading", "text": "Welcome", "level": 1, "align": "left"},
        {"id": "columns1", "type": "columns", "columns": [[], []]},
        {"id": "divider01", "type": "divider"}])
    page.goto(f"/campaigns/{campaign_id}")
    page.locator("#block-heading01").scroll_into_view_if_needed()
    page.locator("#block-divider01 .block-handle").drag_to(page.locator('ol[data-into="columns1:1"]'))
    expect(page.locator("#block-editor-status")).to_contain_text("Moved the divider into column 2")
    assert _layout(app, campaign_id) == ["heading01", ("columns1", [[], ["divider01"]])]
    expect(page.locator("#block-editor")).to_have_attribute("data-ready", "")  # the new lists are sortable
    page.locator("#block-heading01").scroll_into_view_if_needed()
    page.locator("#block-divider01 .block-handle").drag_to(page.locator("#block-heading01 .block-handle"))
    expect(page.locator("#block-editor-status")).to_contain_text("Moved the divider to the top level")
    assert _layout(app, campaign_id) == ["divider01", "heading01", ("columns1", [[], []])]


def test_a_link_at_the_cursor_takes_its_address_as_text(app, page):
    sign_up_admin(page)
    campaign_id = _campaign(app, [{"id": "text0001", "type": "text", "html": "<p>Read more: </p>"}])
    page.goto(f"/campaigns/{campaign_id}")
    block = page.locator("#block-text0001")
    block.locator("details.block-edit > summary").click()
    area = block.locator(".rich-text")
    area.click()
    page.keyboard.press("Control+End")
    tab_to(page, block.get_by_role("button", name="Link", exact=True), backwards=True)
    page.keyboard.press("Enter")
    page.keyboard.type("mailto:hello@example.com")
    page.keyboard.press("Enter")
    expect(area.locator('a[href="mailto:hello@example.com"]')).to_have_text("mailto:hello@example.com")
    expect(area).to_be_focused()
    tab_to(page, block.get_by_role("button", name="Save text"))
    page.keyboard.press("Enter")
    expect(page.locator("#block-editor-status")).to_contain_text("Saved the text")
    from app.models import Campaign
    with app.app_context():
        html = Campaign.get_by_id(campaign_id).blocks["blocks"][0]["html"]
    assert '<a href="mailto:hello@example.com">mailto:hello@example.com</a>' in html
