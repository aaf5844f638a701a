"""The block editor's "Move to" menu (into a column, back out to the top level), the image block's alignment and
height fields, and the new-template page's body box marked for hiding while blocks are chosen."""
import pytest

from app.content.blocks import store
from app.models import BlockRevision
from app.models import Campaign
from app.models import Team
from app.models import Template
from tests.conftest import soup

HEADING = {"id": "heading01", "type": "heading", "text": "Welcome", "level": 1, "align": "left"}
TEXT = {"id": "text0001", "type": "text", "html": "<p>Hello there.</p>"}
INNER = {"id": "inner001", "type": "text", "html": "<p>Left side.</p>"}
COLUMNS = {"id": "columns1", "type": "columns", "columns": [[INNER], []]}
IMAGE = {"id": "image001", "type": "image", "src": "https://img.example.com/a.png", "alt": "A shop", "href": "",
         "width": 600}


@pytest.fixture
def campaign(admin, team):
    campaign = Campaign.create(team=team, name="Spring news", subject="Spring", kind="blocks")
    store.save(campaign, {"version": 1, "blocks": [HEADING, COLUMNS, TEXT, IMAGE]})
    BlockRevision.delete().execute()
    return Campaign.get_by_id(campaign.id)


def url(campaign, tail=""):
    return f"/editor/campaign/{campaign.id}/blocks{tail}"


def blocks(campaign):
    return Campaign.get_by_id(campaign.id).blocks["blocks"]


def layout(campaign):
    """[top-level id or (columns id, [[ids of column 1], [ids of column 2]])]"""
    return [(b["id"], [[inner["id"] for inner in column] for column in b["columns"]]) if b["type"] == "columns"
            else b["id"] for b in blocks(campaign)]


def test_each_block_offers_the_top_level_and_every_column(web, campaign):
    editor = soup(web.get(url(campaign), headers={"HX-Request": "true"})).select_one("#block-editor")
    menu = editor.select_one("#f-text0001-into")
    assert editor.select_one('label[for="f-text0001-into"]').text.startswith("Move the text")
    assert [(o["value"], o.text) for o in menu.select("option")] == [
        ("top", "Top level"), ("columns1:0", "Column 1 of the columns (block 2)"),
        ("columns1:1", "Column 2 of the columns (block 2)")]
    assert menu.select_one("option[selected]")["value"] == "top"
    assert editor.select_one("#f-inner001-into option[selected]")["value"] == "columns1:0"
    assert editor.select_one("#f-columns1-into") is None  # a columns block cannot go into a column


def test_move_a_block_into_a_column_and_back_out(web, campaign):
    response = web.post(url(campaign, "/text0001/move"), {"into": "columns1:1"}, htmx=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "blocks-changed"
    assert layout(campaign) == ["heading01", ("columns1", [["inner001"], ["text0001"]]), "image001"]
    editor = soup(response).select_one("#block-editor")
    assert editor["data-focus"] == "block-text0001"
    assert editor["data-announce"] == "Moved the text “Hello there.” into column 2 of the columns (block 2)."
    assert editor.select_one("#block-columns1 #block-text0001")
    # Out again: right below the columns block that held it.
    response = web.post(url(campaign, "/inner001/move"), {"into": "top"}, htmx=True)
    assert response.status_code == 200
    assert layout(campaign) == ["heading01", ("columns1", [[], ["text0001"]]), "inner001", "image001"]
    assert soup(response).select_one("#block-editor")["data-announce"].endswith("to the top level.")


def test_a_drop_names_the_list_and_the_position(web, campaign):
    response = web.post(url(campaign, "/heading01/move"), {"into": "columns1:0", "to_index": "0"}, htmx=True)
    assert response.status_code == 200
    assert layout(campaign) == [("columns1", [["heading01", "inner001"], []]), "text0001", "image001"]
    web.post(url(campaign, "/inner001/move"), {"into": "top", "to_index": "3"}, htmx=True)
    assert layout(campaign) == [("columns1", [["heading01"], []]), "text0001", "image001", "inner001"]


def test_columns_cannot_go_into_columns_and_nothing_changes(web, campaign):
    store.save(campaign, {"version": 1, "blocks": [COLUMNS, dict(COLUMNS, id="columns2", columns=[[], []])]})
    before = blocks(campaign)
    for into in ("columns2:0", "columns1:1"):  # another's column, and one of its own
        response = web.post(url(campaign, "/columns1/move"), {"into": into}, htmx=True)
        assert response.status_code == 422
        assert "Columns cannot hold other columns." in soup(response).select_one("#block-columns1").text
    assert blocks(campaign) == before


def test_a_bad_target_is_refused_at_the_block(web, campaign):
    before = blocks(campaign)
    for into, words in (("columns1:7", "That column does not exist."),
                        ("heading01:0", "Blocks can only be put inside columns."),
                        ("somewhere", "Choose where the block goes")):
        response = web.post(url(campaign, "/text0001/move"), {"into": into}, htmx=True)
        assert response.status_code == 422, into
        assert words in soup(response).select_one("#block-editor").text
    assert blocks(campaign) == before
    already = web.post(url(campaign, "/inner001/move"), {"into": "columns1:0"}, htmx=True)
    assert "is already there" in soup(already).select_one("#block-editor")["data-announce"]
    assert blocks(campaign) == before


def test_without_javascript_the_move_comes_back_to_the_page(web, campaign):
    response = web.post(url(campaign, "/text0001/move"), {"into": "columns1:0"})
    assert response.status_code == 302 and response.headers["Location"].endswith("#block-text0001")
    assert layout(campaign)[1] == ("columns1", [["inner001", "text0001"], []])


def test_another_teams_block_cannot_be_moved(web, campaign):
    other = Team.create(name="Rivals")
    theirs = Campaign.create(team=other, name="Theirs", kind="blocks")
    store.save(theirs, {"version": 1, "blocks": [dict(HEADING, id="theirs01"), dict(COLUMNS, id="theirs02")]})
    before = Campaign.get_by_id(theirs.id).blocks
    response = web.post(f"/editor/campaign/{theirs.id}/blocks/theirs01/move", {"into": "theirs02:1"}, htmx=True)
    assert response.status_code == 404
    assert Campaign.get_by_id(theirs.id).blocks == before


def test_the_image_form_sets_alignment_and_height(web, campaign):
    editor = soup(web.get(url(campaign), headers={"HX-Request": "true"})).select_one("#block-editor")
    align = editor.select_one("#f-image001-align")
    assert [o["value"] for o in align.select("option")] == ["left", "center", "right"]
    assert align.select_one("option[selected]")["value"] == "center"
    assert editor.select_one('label[for="f-image001-height"]')
    form = {"src": IMAGE["src"], "alt": "A shop", "href": "", "width": "300", "height": "200", "align": "right"}
    response = web.post(url(campaign, "/image001/edit"), form, htmx=True)
    assert response.status_code == 200
    image = blocks(campaign)[3]
    assert (image["align"], image["height"], image["width"]) == ("right", 200, 300)
    assert 'align="right"' in Campaign.get_by_id(campaign.id).body
    refused = web.post(url(campaign, "/image001/edit"), dict(form, align="middle", height=""), htmx=True)
    assert refused.status_code == 422
    assert soup(refused).select_one("#f-image001-align[aria-invalid=true]")  # the message is at the field
    assert blocks(campaign)[3]["align"] == "right"
    cleared = web.post(url(campaign, "/image001/edit"), dict(form, height=""), htmx=True)
    assert cleared.status_code == 200 and "height" not in blocks(campaign)[3]


def test_the_new_template_body_is_marked_to_hide_for_blocks(web, admin):
    page = soup(web.get("/templates/new"))
    body = page.select_one("#f-body")
    assert "template-body" in body.find_parent("div", class_="field")["class"]
    assert page.select_one("#template-form input[name=kind][value=blocks]")


def test_a_new_template_of_blocks_ignores_a_typed_body(web, admin, team):
    response = web.post("/templates/new", {"name": "Monthly", "kind": "blocks", "body": "<p>Typed first</p>"})
    assert response.status_code == 302
    template = Template.get(Template.name == "Monthly")
    assert template.team_id == team.id and template.kind == "blocks"
    assert "Typed first" not in (template.body or "") and template.blocks["blocks"] == []


def test_a_third_column_reaches_every_blocks_menu_at_once(web, campaign):
    response = web.post(url(campaign, "/columns1/edit"), {"count": "3"}, htmx=True)
    assert response.status_code == 200
    assert (response.headers["HX-Retarget"], response.headers["HX-Reswap"]) == ("#block-editor", "outerHTML")
    editor = soup(response).select_one("#block-editor")  # the whole editor, not the columns block alone
    assert editor is not None and editor["data-focus"] == "block-columns1"
    assert "columns1:2" in [o["value"] for o in editor.select("#f-heading01-into option")]
