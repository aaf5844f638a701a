"""Block emails: the document's checks, the pure operations, and storing with undo (app/content/blocks)."""
import pytest

from app.content.blocks import ops
from app.content.blocks import store
from app.content.blocks.richtext import clean_rich_text
from app.content.blocks.schema import BLOCK_TYPES
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import empty_document
from app.content.blocks.schema import new_block
from app.content.blocks.schema import validate_document
from app.models import BlockRevision
from app.models import Campaign
from app.models import CampaignState
from app.models import Template


def _doc(*blocks):
    return {"version": 1, "blocks": list(blocks)}


def _refusal(doc):
    with pytest.raises(BlockProblem) as refused:
        validate_document(doc)
    return refused.value


def test_every_new_block_is_valid():
    doc = _doc(*(new_block(block_type) for block_type in BLOCK_TYPES))
    assert [block["type"] for block in validate_document(doc)["blocks"]] == list(BLOCK_TYPES)


@pytest.mark.parametrize("doc, words", [
    ({"blocks": "nope"}, "needs a list of blocks"),
    (_doc({"id": "abcdefgh", "type": "marquee"}), "no block of type “marquee”"),
    (_doc({"type": "heading", "text": "Hi"}), "heading block has no id"),
    (_doc({"id": "short", "type": "divider"}), "8 to 64 letters"),
    (_doc({"id": "abcdefgh", "type": "divider"}, {"id": "abcdefgh", "type": "spacer"}), "share the same id"),
    (_doc({"id": "cols0001", "type": "columns", "columns": [
        [{"id": "cols0002", "type": "columns", "columns": [[], []]}], []]}), "Columns cannot hold other columns"),
    (_doc({"id": "cols0001", "type": "columns", "columns": [[], [], [], []]}), "twos or threes, not 4"),
    (_doc({"id": "button01", "type": "button", "text": "Go", "href": "javascript:alert(1)"}),
     "must start with https://"),
    (_doc({"id": "button01", "type": "button", "text": "Go", "href": "JaVa\tScRiPt:alert(1)"}),
     "cannot contain spaces"),
    (_doc({"id": "image001", "type": "image", "src": "javascript:alert(1)", "alt": "x"}), "media library"),
    (_doc({"id": "image001", "type": "image", "src": "https://cdn.example.com/a.png", "alt": ""}), "alt text"),
    (_doc({"id": "image001", "type": "image", "src": "/m/a.png", "alt": "A", "width": 900}), "from 1 to 600"),
    (_doc({"id": "spacer01", "type": "spacer", "height": "lots"}), "from 4 to 120"),
    (_doc({"id": "heading1", "type": "heading", "text": "x" * 301}), "too long (301 characters; at most 300)"),
    (_doc({"id": "text0001", "type": "text", "html": "<p>" + "x" * 20001 + "</p>"}), "too long"),
    (_doc({"id": "social01", "type": "social", "links": [{"network": "myspace", "url": "https://a.test"}]}),
     "Choose one of"),
    (_doc({"id": "button01", "type": "button", "text": "Go", "color": "red"}), "six hex digits"),
    (_doc({"id": "button01", "type": "button", "text": "Go", "href": "{{ contact.website }}"}),
     "only a merge tag must be {{ unsubscribe_url }}"),
])
def test_bad_documents_are_refused_with_what_is_wrong(doc, words):
    assert words in _refusal(doc).message


def test_the_refusal_names_the_field_of_the_edit_form():
    assert _refusal(_doc({"id": "image001", "type": "image", "src": "/m/a.png", "alt": ""})).field == "alt"
    assert _refusal(_doc({"id": "button01", "type": "button", "text": "Go", "href": "ftp://x"})).field == "href"


def test_validation_keeps_known_fields_only_and_accepts_merge_tag_links():
    clean = validate_document(_doc(
        {"id": "button01", "type": "button", "text": "Go", "href": "{{ unsubscribe_url }}", "onclick": "x",
         "style": "position:fixed"},
        {"id": "button02", "type": "button", "text": "Go", "href": "https://a.example/?id={{ contact.id }}"}))
    assert clean["blocks"][0] == {"id": "button01", "type": "button", "text": "Go", "href": "{{ unsubscribe_url }}",
                                  "align": "center", "color": ""}
    refused = _refusal(_doc({"id": "button01", "type": "button", "text": "Go",
                             "href": "https://a.example/{{ x | safe }}\"><script>"}))
    assert refused.field == "href" and "cannot contain" in refused.message


def test_rich_text_keeps_only_the_allowed_subset():
    hostile = ('<p onclick="x">Hi {{ contact.first_name }}, <b>bold</b> <i>it</i> <u>u</u> <span style="x">s</span>'
               '<a href="javascript:alert(1)">bad</a> <a href="https://ok.example/" target="_blank">ok</a>'
               '<a href="{{ unsubscribe_url }}">out</a></p><script>alert(1)</script><img src=x onerror=alert(1)>'
               '<ul><li>one</li></ul>{% if contact %}x{% endif %}<!-- note -->')
    cleaned = clean_rich_text(hostile)
    assert cleaned.startswith('<p>Hi {{ contact.first_name }}, <b>bold</b> <i>it</i> <u>u</u> s'
                              'bad <a href="https://ok.example/">ok</a><a href="{{ unsubscribe_url }}">out</a></p>')
    for gone in ("onclick", "script", "<img", "javascript", "span", "target", "{% if", "note"):
        assert gone not in cleaned
    assert "<ul><li>one</li></ul>" in cleaned and "&#123;% if contact %}" in cleaned
    assert clean_rich_text("just words") == "<p>just words</p>"
    # A field's value could be any address, javascript: included: a whole-link merge tag is one of Loft's links.
    assert clean_rich_text('<a href="{{ contact.website }}">site</a>') == "<p>site</p>"


def test_operations_return_new_documents():
    start = empty_document()
    doc, heading = ops.add_block(start, "heading")
    assert start == empty_document() and ops.find(doc, heading["id"])["text"] == "A heading"
    doc = ops.add(doc, "text", index=0)
    doc = ops.add(doc, "columns")
    columns_id = doc["blocks"][2]["id"]
    doc, inner = ops.add_block(doc, "button", into=f"{columns_id}:1")
    assert doc["blocks"][2]["columns"][1][0]["id"] == inner["id"]
    with pytest.raises(BlockProblem, match="Columns cannot hold other columns"):
        ops.add(doc, "columns", into=(columns_id, 0))

    changed = ops.update(doc, heading["id"], {"text": "  Spring sale  ", "level": "1", "align": "center",
                                             "onclick": "x"})
    assert ops.find(changed, heading["id"]) == {"id": heading["id"], "type": "heading", "text": "Spring sale",
                                                "level": 1, "align": "center"}
    assert ops.find(doc, heading["id"])["text"] == "A heading"
    with pytest.raises(BlockProblem) as refused:
        ops.update(doc, heading["id"], {"level": "7"})
    assert refused.value.field == "level"

    order = [block["type"] for block in ops.move(doc, heading["id"], 0)["blocks"]]
    assert order == ["heading", "text", "columns"]
    assert [b["type"] for b in ops.move_by(doc, heading["id"], 1)["blocks"]] == ["text", "columns", "heading"]
    assert [b["type"] for b in ops.move_by(doc, heading["id"], 5)["blocks"]] == ["text", "columns", "heading"]
    assert [b["type"] for b in ops.move_by(doc, doc["blocks"][0]["id"], -1)["blocks"]] == ["text", "heading",
                                                                                            "columns"]
    copied = ops.duplicate(doc, columns_id)
    assert len(copied["blocks"]) == 4 and copied["blocks"][3]["id"] != columns_id
    assert copied["blocks"][3]["columns"][1][0]["id"] != inner["id"]
    assert [b["type"] for b in ops.delete(doc, columns_id)["blocks"]] == ["text", "heading"]
    moved = ops.move_into(doc, heading["id"], f"{columns_id}:0")
    assert moved["blocks"][1]["columns"][0][0]["id"] == heading["id"]
    assert [b["id"] for b in ops.move_into(moved, heading["id"], None, 0)["blocks"]][0] == heading["id"]
    three = ops.update(doc, columns_id, {"count": "3"})
    assert len(three["blocks"][2]["columns"]) == 3
    back = ops.update(ops.add(three, "text", into=f"{columns_id}:2"), columns_id, {"count": "2"})
    assert [len(column) for column in back["blocks"][2]["columns"]] == [0, 2]  # nothing lost

    social = ops.add(doc, "social")
    social_id = social["blocks"][-1]["id"]
    social = ops.update(social, social_id, {"network_0": "mastodon", "url_0": "https://social.example/@acme",
                                            "network_1": "", "url_1": ""})
    assert ops.find(social, social_id)["links"] == [{"network": "mastodon", "url": "https://social.example/@acme"}]

    for operation in (lambda: ops.find(doc, "missing-id"), lambda: ops.delete(doc, "missing-id"),
                      lambda: ops.update(doc, "missing-id", {}), lambda: ops.move_by(doc, "missing-id", 1)):
        with pytest.raises(BlockProblem, match="no longer in this email"):
            operation()


def test_saving_keeps_the_previous_document_for_undo(team):
    campaign = Campaign.create(team=team, name="Spring")
    first = ops.add(empty_document(), "heading")
    store.save(campaign, first)
    assert (campaign.kind, campaign.blocks) == ("blocks", first)
    assert "A heading" in campaign.body and "<table" in campaign.body
    second = ops.update(first, first["blocks"][0]["id"], {"text": "Hello {{ contact.first_name }}"})
    store.save(campaign, second)
    stored = Campaign.get_by_id(campaign.id)
    assert stored.blocks == second and "Hello {{ contact.first_name }}" in stored.body
    assert store.can_undo(stored)
    assert store.undo(stored) == first
    assert Campaign.get_by_id(campaign.id).blocks == first and "Hello" not in Campaign.get_by_id(campaign.id).body
    with pytest.raises(BlockProblem, match="Nothing to undo"):
        store.undo(stored)


def test_undo_history_is_capped_per_owner(team):
    template = Template.create(team=team, name="Weekly")
    doc = ops.add(empty_document(), "heading")
    block_id = doc["blocks"][0]["id"]
    for number in range(store.MAX_REVISIONS + 5):
        store.save(template, ops.update(doc, block_id, {"text": f"Issue {number}"}))
    rows = BlockRevision.select().where((BlockRevision.owner_type == "template")
                                        & (BlockRevision.owner_id == template.id))
    assert rows.count() == store.MAX_REVISIONS
    assert ops.find(store.undo(template), block_id)["text"] == f"Issue {store.MAX_REVISIONS + 3}"
    store.forget(template)
    assert not store.can_undo(template)


def test_nothing_is_written_when_a_document_is_refused(team):
    campaign = Campaign.create(team=team, name="Spring")
    good = ops.add(empty_document(), "heading")
    store.save(campaign, good)
    with pytest.raises(BlockProblem):
        store.save(campaign, _doc({"id": "button01", "type": "button", "text": "Go", "href": "javascript:x"}))
    with pytest.raises(BlockProblem, match="cannot be saved"):
        store.save(campaign, ops.update(good, good["blocks"][0]["id"], {"text": "Hi {{ contct.first_name }}"}))
    stored = Campaign.get_by_id(campaign.id)
    assert stored.blocks == good and not store.can_undo(stored)


def test_a_campaign_that_started_sending_is_read_only(team):
    campaign = Campaign.create(team=team, name="Spring", state=CampaignState.COMPLETED)
    with pytest.raises(BlockProblem, match="can no longer be changed"):
        store.save(campaign, ops.add(empty_document(), "heading"))
    assert Campaign.get_by_id(campaign.id).blocks is None


def test_an_email_too_long_to_send_is_refused_when_saved(team):
    campaign = Campaign.create(team=team, name="Long")
    doc = empty_document()
    for _ in range(20):
        doc, block = ops.add_block(doc, "text")
        doc = ops.update(doc, block["id"], {"html": "<p>" + "words " * 3000 + "</p>"})
    with pytest.raises(BlockProblem, match="too long"):
        store.save(campaign, doc)
    assert Campaign.get_by_id(campaign.id).blocks is None
