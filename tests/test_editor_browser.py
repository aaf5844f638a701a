"""The block editor in a real headless Chromium, by keyboard only: add a heading with a personalisation tag,
rich text (bold, a bulleted list), a button and an image from the media library with its alt text; move a
block with Alt+arrows; undo; the preview shows the result. Skips with the reason where Chromium is missing."""
import io
import re

import pytest
from PIL import Image

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import DESKTOP  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

TAB_LIMIT = 40


shot = screenshots("editor")


def focused(locator):
    return locator.evaluate("element => element === document.activeElement")


def tab_to(page, locator, backwards=False):
    """Press Tab (Shift+Tab) until `locator` has the focus; fails when it is not reached."""
    for _ in range(TAB_LIMIT):
        if locator.count() == 1 and focused(locator):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"{locator} was not reached with the keyboard")


def blocks_campaign(app):
    """A draft block email and one image in the team's media library (uploaded through its service)."""
    from app.media import services as media
    from app.models import Campaign
    from app.models import Team
    from app.models import User
    out = io.BytesIO()
    Image.new("RGB", (640, 320), (200, 60, 40)).save(out, format="PNG")
    out.seek(0)
    with app.app_context():
        team = Team.get()
        media.upload(team, User.get(), "sale-banner.png", out)
        return Campaign.create(team=team, name="Spring sale", subject="Spring sale", kind="blocks").id


def order(page):
    return page.locator("#block-list > li.block").evaluate_all(
        "items => items.map(item => item.querySelector('.block-title strong').textContent)")


def test_build_an_email_from_blocks_by_keyboard(app, page, live_server):
    sign_up_admin(page)
    app.config["BASE_URL"] = live_server.base_url  # the preview's images load from this server
    campaign_id = blocks_campaign(app)
    page.goto(f"/campaigns/{campaign_id}")
    editor = page.locator("#block-editor")
    expect(editor.locator("#blocks-empty")).to_contain_text("No blocks yet")

    # Into the editor with the link in the Content card, then keys only.
    link = page.locator('a[href="#block-editor"]')
    tab_to(page, link)
    page.keyboard.press("Enter")
    tab_to(page, editor.locator(".block-palette-end").get_by_role("button", name="Heading"))
    page.keyboard.press("Enter")

    # A heading: the focus lands in its text; a personalisation tag goes in at the cursor.
    heading_text = editor.locator("li.block-heading input[name=text]")
    expect(heading_text).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Hello ")
    tab_to(page, editor.locator("li.block-heading .merge-picker summary"))
    page.keyboard.press("Enter")
    tab_to(page, editor.locator("li.block-heading").get_by_role("button", name="First name"))
    page.keyboard.press("Enter")
    expect(heading_text).to_be_focused()
    expect(heading_text).to_have_value("Hello {{ contact.first_name }}")
    page.keyboard.type("!")
    page.keyboard.press("Enter")  # submits the block's form
    heading = editor.locator("li.block-heading")
    expect(heading.locator(".block-title")).to_contain_text("Hello {{ contact.first_name }}!")
    expect(heading).to_be_focused()
    expect(page.locator("#block-editor-status")).to_contain_text("Saved the heading")

    # Rich text below it: bold with Ctrl+B, a bulleted list from the toolbar.
    tab_to(page, heading.locator("details.block-add > summary"))
    page.keyboard.press("Enter")
    tab_to(page, heading.locator(".block-palette").get_by_role("button", name="Text"))
    page.keyboard.press("Enter")
    area = editor.locator("li.block-text .rich-text")
    expect(area).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Our ")
    page.keyboard.press("Control+B")
    page.keyboard.type("biggest")
    page.keyboard.press("Control+B")
    page.keyboard.type(" sale.")
    page.keyboard.press("Enter")
    tab_to(page, editor.locator("li.block-text").get_by_role("button", name="Bulleted list"), backwards=True)
    page.keyboard.press("Enter")
    expect(area).to_be_focused()
    page.keyboard.type("Free shipping")
    tab_to(page, editor.locator("li.block-text").get_by_role("button", name="Save text"))
    page.keyboard.press("Enter")
    text = editor.locator("li.block-text")
    expect(text).to_be_focused()
    expect(text.locator(".block-title")).to_contain_text("Our biggest sale.")
    expect(text.locator(".rich-text :is(strong, b)")).to_have_text("biggest")
    expect(text.locator(".rich-text ul li")).to_have_text("Free shipping")

    # A button below the text.
    tab_to(page, text.locator("details.block-add > summary"))
    page.keyboard.press("Enter")
    tab_to(page, text.locator(".block-palette").get_by_role("button", name="Button"))
    page.keyboard.press("Enter")
    button_text = editor.locator("li.block-button input[name=text]")
    expect(button_text).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Shop the sale")
    page.keyboard.press("Tab")
    page.keyboard.type("https://shop.example.com/sale")
    page.keyboard.press("Enter")
    button = editor.locator("li.block-button")
    expect(button.locator(".block-title")).to_contain_text("Shop the sale")

    # An image below the button, chosen from the media library, with its description.
    tab_to(page, button.locator("details.block-add > summary"))
    page.keyboard.press("Enter")
    tab_to(page, button.locator(".block-palette").get_by_role("button", name="Image"))
    page.keyboard.press("Enter")
    image = editor.locator("li.block-image")
    expect(image.locator("input[name=src]")).to_be_focused()
    tab_to(page, image.get_by_role("button", name="Choose from library"))
    page.keyboard.press("Enter")
    # The picker arrives over the network below the form; a person waits to see it before tabbing on
    # (tabbing at once on a slow box went past the picker's place before it arrived: CI, PostgreSQL).
    expect(image.locator("[data-media-choose]")).to_be_visible()
    tab_to(page, image.locator("[data-media-choose]"))
    page.keyboard.press("Enter")
    expect(image.locator("input[name=src]")).to_be_focused()
    expect(image.locator("input[name=src]")).to_have_value(re.compile(r"^/m/"))
    tab_to(page, image.locator("input[name=alt]"))
    expect(image.locator("input[name=alt]")).to_have_value("sale-banner")  # the picker's suggestion
    page.keyboard.press("Control+A")
    page.keyboard.type("Spring sale banner")
    page.keyboard.press("Enter")
    expect(image.locator(".block-title")).to_contain_text("Spring sale banner")
    assert order(page) == ["Heading", "Text", "Button", "Image"]

    # Reorder with the keyboard: the focus stays on the moved block.
    expect(image).to_be_focused()
    page.keyboard.press("Alt+ArrowUp")
    expect(page.locator("#block-editor-status")).to_contain_text("Moved the image")
    expect(editor.locator("li.block-image")).to_be_focused()
    assert order(page) == ["Heading", "Text", "Image", "Button"]
    page.keyboard.press("Alt+ArrowUp")
    expect(editor.locator("#block-list > li.block").nth(1)).to_have_class("block block-image")
    assert order(page) == ["Heading", "Image", "Text", "Button"]

    shot(page, "built")

    # Undo the last move.
    tab_to(page, editor.get_by_role("button", name="Undo last change"), backwards=True)
    page.keyboard.press("Enter")
    expect(page.locator("#block-editor-status")).to_contain_text("Undone")
    expect(editor.get_by_role("button", name="Undo last change")).to_be_focused()
    assert order(page) == ["Heading", "Text", "Image", "Button"]

    # The preview shows the email as built, for the sample person.
    frame = page.frame_locator("#preview-pane iframe")
    expect(frame.locator("h2")).to_have_text("Hello Jamie!")
    expect(frame.locator(":is(strong, b)", has_text="biggest")).to_have_count(1)
    expect(frame.locator("li")).to_have_text("Free shipping")
    expect(frame.locator("a", has_text="Shop the sale")).to_have_count(1)
    picture = frame.locator('img[alt="Spring sale banner"]')
    expect(picture).to_have_count(1)
    assert picture.evaluate("img => img.complete && img.naturalWidth") > 0
    shot(page, "preview")


def test_drag_a_block_by_its_handle(app, page):
    from app.content.blocks import store
    from app.models import Campaign
    from app.models import Team
    page.set_viewport_size(DESKTOP)
    sign_up_admin(page)
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Drag", subject="Drag", kind="blocks")
        store.save(campaign, {"version": 1, "blocks": [
            {"id": "heading01", "type": "heading", "text": "First", "level": 1, "align": "left"},
            {"id": "divider01", "type": "divider"},
            {"id": "button001", "type": "button", "text": "Last", "href": "https://example.com/", "align": "center",
             "color": ""},
            {"id": "footer01", "type": "footer", "text": "Saved footer"}]})
    page.goto(f"/campaigns/{campaign.id}")
    # Typing in a block that is not saved yet survives a change to another block.
    page.locator("#block-footer01 details.block-edit > summary").click()
    page.locator("#f-footer01-text").fill("Typed, not saved yet")
    page.locator("#block-heading01").scroll_into_view_if_needed()  # both ends of the drag on the screen
    page.locator("#block-button001 .block-handle").drag_to(page.locator("#block-heading01 .block-handle"))
    expect(page.locator("#block-editor-status")).to_contain_text("Moved the button “Last” to position 1")
    assert order(page) == ["Button", "Heading", "Divider", "Footer"]
    expect(page.locator("#f-footer01-text")).to_have_value("Typed, not saved yet")
    with app.app_context():
        assert [block["id"] for block in Campaign.get_by_id(campaign.id).blocks["blocks"]] == [
            "button001", "heading01", "divider01", "footer01"]
        assert Campaign.get_by_id(campaign.id).blocks["blocks"][3]["text"] == "Saved footer"


def test_a_link_from_the_toolbar_and_a_javascript_one_refused(app, page):
    from app.content.blocks import store
    from app.models import Campaign
    from app.models import Team
    sign_up_admin(page)
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Links", subject="Links", kind="blocks")
        store.save(campaign, {"version": 1, "blocks": [{"id": "text0001", "type": "text", "html": "<p>Read the post</p>"}]})
    page.goto(f"/campaigns/{campaign.id}")
    block = page.locator("#block-text0001")
    tab_to(page, block.locator("details.block-edit > summary"))
    page.keyboard.press("Enter")
    area = block.locator(".rich-text")
    tab_to(page, area)
    page.keyboard.press("End")
    for _ in range(len("post")):
        page.keyboard.press("Shift+ArrowLeft")
    tab_to(page, block.get_by_role("button", name="Link", exact=True), backwards=True)
    page.keyboard.press("Enter")
    address = block.get_by_label("Link address")
    expect(address).to_be_focused()
    page.keyboard.type("https://acme.example/post")  # over the selected "https://" it starts with
    page.keyboard.press("Enter")
    expect(area.locator('a[href="https://acme.example/post"]')).to_have_text("post")
    expect(address).to_be_hidden()
    expect(area).to_be_focused()
    # A javascript: address is refused at once, in words at the field; nothing is linked.
    page.keyboard.press("Control+Home")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowRight")
    tab_to(page, block.get_by_role("button", name="Link", exact=True), backwards=True)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+A")
    page.keyboard.type("javascript:alert(1)")
    page.keyboard.press("Enter")
    expect(address).to_have_attribute("aria-invalid", "true")
    expect(block.locator(".rich-link-form .error")).to_contain_text("Not linked")
    expect(page.locator("#block-editor-status")).to_contain_text("Not linked")
    expect(address).to_be_focused()
    page.keyboard.press("Escape")
    expect(address).to_be_hidden()
    expect(area).to_be_focused()
    tab_to(page, block.get_by_role("button", name="Save text"))
    page.keyboard.press("Enter")
    expect(page.locator("#block-editor-status")).to_contain_text("Saved the text")
    with app.app_context():
        html = Campaign.get_by_id(campaign.id).blocks["blocks"][0]["html"]
    assert '<a href="https://acme.example/post">post</a>' in html
    assert "javascript" not in html and "Read" in html
    expect(page.locator("#block-text0001 .rich-text a")).to_have_count(1)


def test_a_block_template_previews_each_change(app, page):
    from app.content.blocks import store
    from app.models import Team
    from app.models import Template
    sign_up_admin(page)
    with app.app_context():
        template = Template.create(team=Team.get(), name="Monthly", kind="blocks")
        store.save(template, {"version": 1, "blocks": [
            {"id": "heading01", "type": "heading", "text": "Monthly news", "level": 1, "align": "left"}]})
    page.goto(f"/templates/{template.id}")
    frame = page.frame_locator(".preview-result iframe")
    expect(frame.locator("h1")).to_have_text("Monthly news")
    tab_to(page, page.locator(".block-palette-end").get_by_role("button", name="Button"))
    page.keyboard.press("Enter")
    button_text = page.locator("li.block-button input[name=text]")
    expect(button_text).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Join us, {{ contact.first_name }}")
    page.keyboard.press("Tab")
    page.keyboard.type("https://acme.example/join")
    page.keyboard.press("Enter")
    expect(frame.locator("a", has_text="Join us, Jamie")).to_have_count(1)
