"""Block emails rendered: table structure, Outlook and phone rules, hostile input, and delivery through the
real pipeline into the mail catcher (app/content/blocks/render.py, prepare.py with kind "blocks")."""
import email
import email.policy
import re

from bs4 import BeautifulSoup
from bs4 import Comment

from app.content import prepare
from app.content.blocks import catalogue
from app.content.blocks import ops
from app.content.blocks import render
from app.content.blocks import store
from app.content.blocks.schema import BLOCK_TYPES
from app.content.blocks.schema import empty_document
from app.content.blocks.schema import new_block
from app.content.blocks.schema import validate_document
from app.models import BrandKit
from app.models import CaughtMessage
from app.models import Campaign
from tests.campaigns_support import draft_form
from tests.conftest import soup as page_soup

HOSTILE_TEXT = ('<p onmouseover="alert(1)">Hi <script>alert(1)</script><img src=x onerror=alert(2)>'
                '<a href="javascript:alert(3)">click</a><a href="https://ok.example/" onclick="x">ok</a>'
                '<iframe src="https://evil.example/"></iframe><style>body{display:none}</style>'
                '<a href="data:text/html,<script>alert(4)</script>">d</a></p>')


def _every_block():
    doc = empty_document()
    for block_type in BLOCK_TYPES:
        doc = ops.add(doc, block_type)
    ids = {block["type"]: block["id"] for block in doc["blocks"]}
    doc = ops.update(doc, ids["image"], {"src": "/m/cat.png", "alt": "A cat on a sofa", "width": "300",
                                         "height": "200", "href": "https://acme.example/cats"})
    doc = ops.update(doc, ids["button"], {"text": "Shop now", "href": "https://acme.example/shop"})
    doc = ops.update(doc, ids["social"], {"network_0": "instagram", "url_0": "https://instagram.example/acme"})
    doc = ops.update(doc, ids["footer"], {"text": "Acme Ltd\nSpringfield"})
    doc = ops.add(doc, "image", into=f"{ids['columns']}:0")
    inner = doc["blocks"][6]["columns"][0][0]["id"]
    doc = ops.update(doc, inner, {"src": "https://cdn.example.com/a.jpg", "alt": "Left picture", "width": "600"})
    return ops.add(doc, "text", into=f"{ids['columns']}:1")


def _soup(html):
    return BeautifulSoup(html, "html.parser")


def test_every_block_renders_as_email_tables():
    html = render.render_html(_every_block())
    document = _soup(html)
    assert document.find("meta", attrs={"name": "color-scheme"})["content"] == "light dark"
    assert "@media only screen and (max-width: 480px)" in html and "prefers-color-scheme: dark" in html
    tables = document.find_all("table")
    assert tables and all(table.get("role") == "presentation" for table in tables)
    card = document.select_one("table.loft-card")
    assert "max-width:600px" in card["style"]
    assert not document.find_all(["div"], class_=lambda c: c != "loft-col")  # divs only for stacking columns
    for image in document.find_all("img"):
        assert image.get("alt"), image
        assert image.get("width"), image
    cat = document.find("img", alt="A cat on a sofa")
    assert (cat["width"], cat["height"], cat.find_parent("a")["href"]) == ("300", "200", "https://acme.example/cats")
    assert document.find("img", alt="Left picture")["width"] == "268"  # shrunk to its column
    button = document.find("a", string="Shop now")
    assert button.find_parent("td").get("bgcolor") == render.DEFAULT_BRAND["primary_color"]
    assert document.find("h2").text == "A heading"
    assert "Acme Ltd<br>Springfield" in html
    assert document.find("a", string="Instagram")["href"] == "https://instagram.example/acme"
    columns = document.select("div.loft-col")
    assert len(columns) == 2 and all("max-width:284px" in column["style"] for column in columns)
    ghosts = [c for c in document.find_all(string=lambda s: isinstance(s, Comment)) if "[if mso]" in c]
    assert len(ghosts) >= 5  # the page wrapper, and a table with a cell per column for Outlook
    assert 'width="284"' in "".join(ghosts)


def test_each_starter_is_a_valid_document_that_renders():
    keys = [starter.key for starter in catalogue.starters()]
    assert keys == ["newsletter", "announcement", "event", "letter"]
    for starter in catalogue.starters():
        assert validate_document(starter.document) == starter.document, starter.key
        body = prepare.clean_source(render.render_body(starter.document), "blocks")
        assert starter.name and starter.description
        assert 'contact.first_name or "there"' in body, starter.key


def test_hostile_input_never_reaches_the_email():
    doc = empty_document()
    doc, text = ops.add_block(doc, "text")
    doc = ops.update(doc, text["id"], {"html": HOSTILE_TEXT})
    doc, heading = ops.add_block(doc, "heading")
    doc = ops.update(doc, heading["id"], {"text": '<script>alert(1)</script>{% raw %}{# x #}"><img src=x>'})
    doc, image = ops.add_block(doc, "image")
    doc = ops.update(doc, image["id"], {"src": "/m/a.png", "alt": '"><script>alert(1)</script>'})
    doc, footer = ops.add_block(doc, "footer")
    doc = ops.update(doc, footer["id"], {"text": "<b onclick=x>bold</b> {% if x %}"})
    hostile_brand = {"primary_color": "red;background:url(https://evil.example/)", "font_family": "x;}</style>",
                     "logo_url": "javascript:alert(1)", "text_color": "#12345g"}
    for html in (render.render_html(doc, hostile_brand),
                 prepare.prepare(store.rendered_body(doc, hostile_brand), "blocks", "Hi",
                                 base_url="https://loft.example").html_source):
        document = _soup(html)
        assert not document.find_all(["script", "iframe", "object", "embed", "form"])
        assert document.find_all("style") == document.head.find_all("style")  # only Loft's own head
        for element in document.find_all(True):
            assert not [name for name in element.attrs if name.lower().startswith("on")], element
            for name in ("href", "src"):
                assert not re.match(r"\s*(javascript|data|vbscript):", element.get(name, ""), re.I), element
        assert "evil.example" not in html and "#12345g" not in html
        assert "{% raw %}" not in html and "{% if x %}" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert document.find("a", string="ok")["href"] == "https://ok.example/"


def test_a_blocks_campaign_is_delivered_through_the_real_pipeline(app, web, ready_team):
    team, news = ready_team
    created = web.post("/campaigns/new", {"name": "Spring", "start_from": "starter:newsletter"})
    campaign = Campaign.get_by_id(int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    doc = campaign.blocks
    doc = ops.update(doc, "nl-masthead", {"text": "Spring news for {{ contact.first_name }}"})
    store.save(campaign, doc)
    saved = web.post(f"/campaigns/{campaign.id}", draft_form(news, name="Spring", kind="html", body="<p>ignored</p>"))
    assert saved.status_code == 302, saved.get_data(as_text=True)[:1000]
    assert Campaign.get_by_id(campaign.id).kind == "blocks"
    # The brand changes after the last edit: publishing renders the blocks again, in the brand of the day.
    BrandKit.create(team=team, primary_color="#7c3aed")
    published = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert published.status_code == 302
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "completed", campaign.state_reason
    messages = {m.recipients[0]: m for m in CaughtMessage.select()}
    assert sorted(messages) == [f"reader{i}@example.com" for i in range(4)]
    parsed = email.message_from_bytes(bytes(messages["reader2@example.com"].raw), policy=email.policy.default)
    html = parsed.get_body(("html",)).get_content()
    document = _soup(html)
    assert document.find("h1").text == "Spring news for Reader"
    assert "Hi Reader," in document.text and "ignored" not in html
    assert "{{" not in html  # every merge tag filled in
    assert document.find("meta", attrs={"name": "color-scheme"})["content"] == "light dark"
    assert "<!--[if mso]>" in html and "1 Main Street, Springfield" in html
    read_more = document.find("a", string="Read the full story")
    assert read_more["href"].split("/c/")[0].startswith("http")
    assert read_more.find_parent("td")["bgcolor"] == "#7c3aed"
    text = parsed.get_body(("plain",)).get_content()
    assert "Spring news for Reader" in text and "Read the full story" in text and "<" not in text.split("\n")[0]


def test_the_campaign_preview_shows_the_rendered_blocks(web, team):
    created = web.post("/campaigns/new", {"name": "Letter", "start_from": "starter:letter"})
    campaign_id = int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    frame = web.get(f"/campaigns/{campaign_id}/preview.html")
    assert frame.status_code == 200 and "sandbox" in frame.headers["Content-Security-Policy"]
    document = _soup(frame.get_data(as_text=True))
    assert "Write the way you would write to one person." in document.text
    assert page_soup(web.get(f"/campaigns/{campaign_id}")).select_one("#save-as-template")


def test_new_blocks_have_what_an_email_needs():
    for block_type in BLOCK_TYPES:
        assert new_block(block_type)["type"] == block_type
    assert render.ink("#1d4ed8") == "#ffffff" and render.ink("#ffdd00") == "#111827"
    assert render.readable_link("#ffdd00") == "#1d4ed8" and render.readable_link("#1d4ed8") == "#1d4ed8"


def test_a_brand_font_stack_with_quotes_keeps_the_whole_style():
    doc = ops.add(empty_document(), "button")
    brand = {"font_family": "-apple-system, BlinkMacSystemFont, 'Segoe UI', \"Helvetica Neue\", sans-serif",
             "primary_color": "#4338CA"}
    button = _soup(store.rendered_body(doc, brand)).find("a", string="Read more")
    assert "font-family:-apple-system, BlinkMacSystemFont, Segoe UI, Helvetica Neue, sans-serif;" in button["style"]
    assert button["style"].endswith("color:#ffffff;text-decoration:none;")


def test_a_blocks_campaign_without_blocks_cannot_be_published(web, ready_team):
    team, news = ready_team
    created = web.post("/campaigns/new", {"name": "Empty", "kind": "blocks"})
    campaign_id = int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    web.post(f"/campaigns/{campaign_id}", draft_form(news, name="Empty"))
    refused = web.post(f"/campaigns/{campaign_id}/publish", {"when": "now"})
    assert "Write the content of the email." in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign_id).state == "draft"
