"""The block editor over HTTP: each change is one POST answered with the editor fragment; refusals show at
the block and store nothing; undo; read-only campaigns; roles and other teams' emails."""
import re

import pytest

from app.content.blocks import store
from app.models import BlockRevision
from app.models import Campaign
from app.models import CampaignState
from app.models import CustomField
from app.models import Team
from app.models import Template
from tests.accounts_support import make_member
from tests.conftest import soup


def _doc(*blocks):
    return {"version": 1, "blocks": list(blocks)}


HEADING = {"id": "heading01", "type": "heading", "text": "Welcome", "level": 1, "align": "left"}
TEXT = {"id": "text0001", "type": "text", "html": "<p>Hello there.</p>"}
BUTTON = {"id": "button01", "type": "button", "text": "Shop now", "href": "https://shop.example.com/", "align": "center",
          "color": ""}


@pytest.fixture
def campaign(admin, team):
    campaign = Campaign.create(team=team, name="Spring news", subject="Spring", kind="blocks")
    store.save(campaign, _doc(HEADING, TEXT, BUTTON))
    BlockRevision.delete().execute()  # a fresh email: nothing to undo yet
    return Campaign.get_by_id(campaign.id)


def url(campaign, tail=""):
    return f"/editor/campaign/{campaign.id}/blocks{tail}"


def ids(owner):
    owner = type(owner).get_by_id(owner.id)
    return [block["id"] for block in owner.blocks["blocks"]]


def stored(owner, block_id):
    owner = type(owner).get_by_id(owner.id)
    return next(block for block in owner.blocks["blocks"] if block["id"] == block_id)


def editor_of(response):
    return soup(response).select_one("#block-editor")


def test_the_campaign_page_shows_the_blocks_with_their_controls(web, campaign):
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    editor = page.select_one("#block-editor")
    assert [li["id"] for li in editor.select("#block-list > li.block")] == ["block-heading01", "block-text0001",
                                                                             "block-button01"]
    heading = editor.select_one("#block-heading01")
    assert "Welcome" in heading.select_one(".block-title").text
    assert heading.select_one("button[value=up]").has_attr("disabled")  # the first block cannot go up
    assert heading.select_one("#f-heading01-text")["value"] == "Welcome"
    assert page.select_one("#block-editor-status[aria-live=polite]") is not None
    assert page.select_one('script[src$="editor.js"]') and page.select_one('script[src*="Sortable-1.15.7"]')
    # The preview reloads after every block change.
    assert "blocks-changed from:body" in page.select_one("#preview form")["hx-trigger"]


def test_add_a_block_after_another(web, campaign):
    response = web.post(url(campaign, "/add"), {"type": "image", "after": "heading01"}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "blocks-changed"
    order = ids(campaign)
    assert order[0] == "heading01" and order[2:] == ["text0001", "button01"]
    new_id = order[1]
    editor = editor_of(response)
    assert editor["data-focus"] == f"block-{new_id}"
    assert editor["data-announce"] == "Added the image."
    assert editor.select_one(f"#block-{new_id} details.block-edit").has_attr("open")  # ready to fill in
    assert Campaign.get_by_id(campaign.id).kind == "blocks"


def test_add_at_the_end_and_an_unknown_type_is_refused(web, campaign):
    web.post(url(campaign, "/add"), {"type": "divider"}, htmx=True)
    assert [stored(campaign, i)["type"] for i in ids(campaign)][-1] == "divider"
    refused = web.post(url(campaign, "/add"), {"type": "marquee"}, htmx=True)
    assert refused.status_code == 422
    assert "no block of type “marquee”" in editor_of(refused).select_one("#block-editor-error").text
    assert len(ids(campaign)) == 4


def test_edit_a_heading_in_place(web, campaign):
    response = web.post(url(campaign, "/heading01/edit"), {"text": "Hi {{ contact.first_name }}", "level": "2",
                                                            "align": "center"}, htmx=True)
    assert response.status_code == 200
    assert stored(campaign, "heading01") == {**HEADING, "text": "Hi {{ contact.first_name }}", "level": 2,
                                             "align": "center"}
    body = Campaign.get_by_id(campaign.id).body
    assert "Hi {{ contact.first_name }}" in body and "<table" in body  # the body is rendered again
    # Only the edited block comes back, to be swapped in place (the others keep any unsaved typing).
    page = soup(response)
    assert page.select_one("#block-editor") is None
    block = page.select_one("li#block-heading01")
    assert block.has_attr("data-swapped") and "Saved the heading" in block["data-announce"]
    assert "Saved the heading" in page.select_one("#block-message[hx-swap-oob=true]").text


def test_hostile_html_in_a_text_block_is_stored_sanitized(web, campaign):
    hostile = ('<p onclick="steal()">Hi <strong>there</strong><script>alert(1)</script>'
               '<a href="javascript:alert(2)">bad</a> <a href="https://ok.example/">good</a>'
               '<img src=x onerror=alert(3)><iframe src="https://evil.example/"></iframe></p>')
    response = web.post(url(campaign, "/text0001/edit"), {"html": hostile}, htmx=True)
    assert response.status_code == 200
    html = stored(campaign, "text0001")["html"]
    for bad in ("script", "onclick", "javascript:", "onerror", "<img", "iframe", "alert(1)"):
        assert bad not in html
    assert "<strong>there</strong>" in html and 'href="https://ok.example/"' in html
    body = Campaign.get_by_id(campaign.id).body
    assert "javascript:" not in body and "<script" not in body.lower()
    # The editor's own copy of it (the textarea editor.js reads) holds the clean version too.
    textarea = soup(response).select_one("#f-text0001-html")
    assert "script" not in textarea.text and "onclick" not in textarea.text


def test_a_refused_edit_shows_at_the_block_and_stores_nothing(web, campaign):
    before = Campaign.get_by_id(campaign.id)
    response = web.post(url(campaign, "/button01/edit"), {"text": "Go", "href": "javascript:alert(1)",
                                                           "align": "center", "color": ""}, htmx=True)
    assert response.status_code == 422
    block = soup(response).select_one("li#block-button01")
    assert "has-error" in block["class"]
    href = block.select_one("#f-button01-href")
    assert href["aria-invalid"] == "true" and href["value"] == "javascript:alert(1)"  # what was typed, back
    assert "https://" in block.select_one("#e-button01-href").text
    assert block.select_one("details.block-edit").has_attr("open")
    after = Campaign.get_by_id(campaign.id)
    assert after.blocks == before.blocks and after.body == before.body
    assert BlockRevision.select().count() == 0
    assert "HX-Trigger" not in response.headers


def test_move_by_buttons_and_to_a_position(web, campaign):
    response = web.post(url(campaign, "/button01/move"), {"direction": "up"}, htmx=True)
    assert ids(campaign) == ["heading01", "button01", "text0001"]
    editor = editor_of(response)
    assert editor["data-focus"] == "block-button01"
    assert editor["data-announce"] == "Moved the button “Shop now” up."
    web.post(url(campaign, "/heading01/move"), {"to_index": "2"}, htmx=True)  # a drop
    assert ids(campaign) == ["button01", "text0001", "heading01"]
    already = web.post(url(campaign, "/button01/move"), {"direction": "up"}, htmx=True)
    assert "already the first block" in editor_of(already)["data-announce"]
    assert ids(campaign) == ["button01", "text0001", "heading01"]
    nowhere = web.post(url(campaign, "/button01/move"), {}, htmx=True)
    assert nowhere.status_code == 422


def test_duplicate_and_delete_name_the_block(web, campaign):
    response = web.post(url(campaign, "/text0001/duplicate"), {}, htmx=True)
    order = ids(campaign)
    assert len(order) == 4 and order[1] == "text0001" and stored(campaign, order[2])["html"] == TEXT["html"]
    assert editor_of(response)["data-focus"] == f"block-{order[2]}"
    response = web.post(url(campaign, "/heading01/delete"), {}, htmx=True)
    assert "heading01" not in ids(campaign)
    editor = editor_of(response)
    assert editor["data-announce"] == "Deleted the heading “Welcome”. Undo brings it back."
    assert "Deleted the heading “Welcome”" in editor.select_one(".block-message").text
    assert editor["data-focus"] == "block-text0001"  # the next block, the first one gone
    gone = web.post(url(campaign, "/heading01/delete"), {}, htmx=True)
    assert gone.status_code == 422 and "no longer in this email" in editor_of(gone).text


def test_undo_the_last_changes_one_by_one(web, campaign):
    web.post(url(campaign, "/heading01/delete"), {}, htmx=True)
    web.post(url(campaign, "/button01/move"), {"direction": "up"}, htmx=True)
    assert ids(campaign) == ["button01", "text0001"]
    response = web.post(url(campaign, "/undo"), {}, htmx=True)
    assert response.status_code == 200 and ids(campaign) == ["text0001", "button01"]
    assert editor_of(response)["data-focus"] == "block-undo"
    web.post(url(campaign, "/undo"), {}, htmx=True)
    assert ids(campaign) == ["heading01", "text0001", "button01"]
    nothing = web.post(url(campaign, "/undo"), {}, htmx=True)
    assert nothing.status_code == 422 and "Nothing to undo" in editor_of(nothing).text


def test_an_edit_of_a_block_deleted_meanwhile_answers_with_the_whole_editor(web, campaign):
    web.post(url(campaign, "/text0001/delete"), {}, htmx=True)
    response = web.post(url(campaign, "/text0001/edit"), {"html": "<p>Late</p>"}, htmx=True)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#block-editor"
    assert "no longer in this email" in editor_of(response).select_one("#block-editor-error").text


def test_without_javascript_a_change_comes_back_to_the_page(web, campaign):
    response = web.post(url(campaign, "/button01/move"), {"direction": "up"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/campaigns/{campaign.id}#block-button01")
    assert "Moved the button" in web.get(f"/campaigns/{campaign.id}").get_data(as_text=True)


def test_the_personalisation_picker_lists_the_teams_fields(web, campaign, team):
    CustomField.create(team=team, key="favourite_colour", label="Favourite colour")
    editor = soup(web.get(f"/campaigns/{campaign.id}")).select_one("#block-editor")
    tags = [b["data-merge-tag"] for b in editor.select("#block-heading01 .merge-picker button")]
    assert tags[:2] == ["{{ contact.first_name }}", "{{ contact.last_name }}"]
    assert "{{ contact.favourite_colour }}" in tags
    # The tag a picker inserts is what the sandbox fills in.
    web.post(url(campaign, "/heading01/edit"), {"text": "For {{ contact.favourite_colour }} fans", "level": "1"},
             htmx=True)
    preview = web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    assert "For  fans" in preview or "For fans" in preview  # the sample person has no colour: filled in empty


def test_a_sent_campaign_shows_its_blocks_without_controls(web, campaign):
    Campaign.update(state=CampaignState.COMPLETED).where(Campaign.id == campaign.id).execute()
    fragment = web.get(url(campaign), headers={"HX-Request": "true"})
    editor = editor_of(fragment)
    assert len(editor.select("li.block")) == 3
    assert not editor.select("form") and "can be read, not changed" in editor.text
    refused = web.post(url(campaign, "/heading01/delete"), {}, htmx=True)
    assert refused.status_code == 422 and "started sending" in editor_of(refused).text
    assert ids(campaign) == ["heading01", "text0001", "button01"]


def test_a_template_of_blocks_is_edited_on_its_page(web, team):
    template = Template.create(team=team, name="Monthly", kind="blocks")
    store.save(template, _doc(HEADING))
    page = soup(web.get(f"/templates/{template.id}"))
    assert page.select_one("#block-editor #block-heading01")
    assert page.select_one("#f-body") is None  # no HTML body box for a block template
    response = web.post(f"/editor/template/{template.id}/blocks/add", {"type": "spacer", "after": "heading01"},
                        htmx=True)
    assert response.status_code == 200
    assert [stored(template, i)["type"] for i in ids(template)] == ["heading", "spacer"]


def test_a_guest_reads_but_cannot_change(app, campaign, team):
    _, guest = make_member(app, team, "guest")
    editor = soup(guest.get(f"/campaigns/{campaign.id}")).select_one("#block-editor")
    assert editor is not None and not editor.select("form")
    for tail in ("/add", "/heading01/edit", "/heading01/move", "/heading01/duplicate", "/heading01/delete", "/undo"):
        assert guest.post(url(campaign, tail), {"type": "divider", "direction": "down"}, htmx=True).status_code == 403
    assert ids(campaign) == ["heading01", "text0001", "button01"]


def test_another_teams_email_is_not_found_and_not_changed(app, web, campaign, team):
    other = Team.create(name="Rivals")
    theirs = Campaign.create(team=other, name="Theirs", kind="blocks")
    store.save(theirs, _doc(dict(HEADING, id="theirs001")))
    their_template = Template.create(team=other, name="Theirs", kind="blocks")
    store.save(their_template, _doc(dict(HEADING, id="theirs002")))
    before = (Campaign.get_by_id(theirs.id).blocks, Template.get_by_id(their_template.id).blocks)
    for owner, block in (("campaign", "theirs001"), ("template", "theirs002")):
        owner_id = theirs.id if owner == "campaign" else their_template.id
        base = f"/editor/{owner}/{owner_id}/blocks"
        assert web.get(base, headers={"HX-Request": "true"}).status_code == 404
        for tail in ("/add", f"/{block}/edit", f"/{block}/move", f"/{block}/duplicate", f"/{block}/delete", "/undo"):
            response = web.post(base + tail, {"type": "divider", "text": "Mine now", "direction": "down"}, htmx=True)
            assert response.status_code == 404, (owner, tail)
    assert (Campaign.get_by_id(theirs.id).blocks, Template.get_by_id(their_template.id).blocks) == before
    builtin = Template.create(team=None, name="Built in", kind="blocks")
    assert web.post(f"/editor/template/{builtin.id}/blocks/add", {"type": "divider"}, htmx=True).status_code == 404


def test_columns_hold_blocks_of_their_own(web, campaign):
    web.post(url(campaign, "/add"), {"type": "columns"}, htmx=True)
    columns_id = ids(campaign)[-1]
    response = web.post(url(campaign, "/add"), {"type": "text", "into": f"{columns_id}:1"}, htmx=True)
    assert response.status_code == 200
    columns = stored(campaign, columns_id)["columns"]
    assert columns[0] == [] and [b["type"] for b in columns[1]] == ["text"]
    inner = columns[1][0]["id"]
    assert editor_of(response).select_one(f"#block-{columns_id} #block-{inner}")
    nested = web.post(url(campaign, "/add"), {"type": "columns", "into": f"{columns_id}:0"}, htmx=True)
    assert nested.status_code == 422 and "Columns cannot hold other columns" in editor_of(nested).text


def test_social_links_are_edited_as_rows(web, campaign):
    web.post(url(campaign, "/add"), {"type": "social"}, htmx=True)
    social = ids(campaign)[-1]
    response = web.post(url(campaign, f"/{social}/edit"), {"network_0": "mastodon",
                                                           "url_0": "https://social.example/@acme"}, htmx=True)
    assert response.status_code == 200
    assert stored(campaign, social)["links"] == [{"network": "mastodon", "url": "https://social.example/@acme"}]
    rows = soup(response).select(f"#block-{social} .social-row")
    assert len(rows) == 2  # the saved link and an empty row for the next one


def test_every_block_form_has_unique_ids_and_labels(web, campaign):
    for block_type in ("image", "spacer", "footer", "social", "columns", "divider"):
        web.post(url(campaign, "/add"), {"type": block_type}, htmx=True)
    editor = editor_of(web.get(url(campaign), headers={"HX-Request": "true"}))
    all_ids = [element["id"] for element in editor.select("[id]")]
    assert len(all_ids) == len(set(all_ids))
    for control in editor.select("input:not([type=hidden]), select, textarea"):
        assert editor.select_one(f'label[for="{control["id"]}"]'), control
    assert re.search(r"Alt\+↑", editor.select_one("#block-editor-help").text)


def test_saving_the_pages_forms_keeps_the_blocks(web, campaign, team):
    """The campaign and template pages post kind=blocks and no body: their own Save keeps the blocks."""
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one('#builder input[name=kind]')["value"] == "blocks"
    assert page.select_one("#builder textarea[name=body]") is None
    saved = web.post(f"/campaigns/{campaign.id}", {"name": "Spring news", "subject": "Spring, saved", "kind": "blocks",
                                                   "from_name": "Acme", "from_email": "news@acme.example"})
    assert saved.status_code in (200, 302), saved.get_data(as_text=True)[:500]
    after = Campaign.get_by_id(campaign.id)
    assert after.kind == "blocks" and ids(after) == ["heading01", "text0001", "button01"]
    template = Template.create(team=team, name="Monthly", kind="blocks")
    store.save(template, _doc(HEADING))
    renamed = web.post(f"/templates/{template.id}", {"name": "Monthly letter", "kind": "blocks",
                                                     "template_id": str(template.id)})
    assert renamed.status_code == 302, renamed.get_data(as_text=True)[:500]
    template = Template.get_by_id(template.id)
    assert template.name == "Monthly letter" and template.kind == "blocks" and ids(template) == ["heading01"]


def test_a_made_up_block_id_never_reaches_the_redirect(web, campaign):
    response = web.post(url(campaign, "/no%20such%22block/delete"), {})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/campaigns/{campaign.id}#block-editor")
    assert "no longer in this email" in web.get(f"/campaigns/{campaign.id}").get_data(as_text=True)


def test_a_stored_document_that_fails_the_checks_is_named_not_a_broken_page(web, campaign):
    Campaign.update(blocks={"version": 1, "blocks": [{"id": "marquee01", "type": "marquee"}]}).where(
        Campaign.id == campaign.id).execute()
    response = web.get(f"/campaigns/{campaign.id}")
    assert response.status_code == 200
    assert "no block of type “marquee”" in soup(response).select_one("#block-editor-error").text
