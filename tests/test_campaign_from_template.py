"""Templates as a campaign's starting content, and layouts that say what they are (issue 9, point 15).

A saved template chosen as a campaign's layout was silently ignored unless it had a
{{ content }} slot, and no built-in one has. Now: "New campaign from this template" on the
template pages and a "Start from" choice when creating a campaign; a template with a slot
becomes the layout, any other one gives its content; the builder offers only real layouts.
"""
import pytest

from app.campaigns import drafts
from app.campaigns.errors import CampaignError
from app.content.blocks import ops as block_ops
from app.content.blocks import store as block_store
from app.models import BlockRevision
from app.models import Campaign
from app.models import Team
from app.models import Template
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def team(library_team):
    """The Acme team with a sender, a postal address, a City field and a contact (tests/email_templates_support.py)."""
    return library_team

LAYOUT = ('<table role="presentation" width="100%"><tr><td><p>Acme masthead</p>{{ content }}'
          '<p>Acme footer band</p></td></tr></table>')
LETTER = '<p>Dear {{ contact.first_name or "friend" }}, the spring letter.</p>'


def _created(response):
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    location = response.headers["Location"]
    assert location.startswith("/campaigns/")
    return Campaign.get_by_id(int(location.rstrip("/").rsplit("/", 1)[1]))


@pytest.fixture
def templates(team):  # noqa: F811
    return (Template.create(team=team, name="Spring letter", kind="html", body=LETTER),
            Template.create(team=team, name="Acme frame", kind="html", body=LAYOUT))


def test_template_pages_say_what_each_template_is(web, templates):
    letter, frame = templates
    index = soup(web.get("/templates/"))
    roles = {card.select_one("h3").get_text(strip=True): card.select_one("[data-role]")["data-role"]
             for card in index.select("#team-templates li")}
    assert roles == {"Spring letter": "content", "Acme frame": "layout"}
    assert "Built-in HTML templates" in index.select_one("#h-builtin").text
    assert "Built-in block templates" in index.select_one("#h-starters").text
    assert [term.text for term in index.select("#template-kinds dt")] == ["Block templates", "Your templates", "Layouts"]
    page = soup(web.get(f"/templates/{frame.id}"))
    assert page.select_one("#template-role").text == "Layout"
    assert soup(web.get(f"/templates/{letter.id}")).select_one("#template-role").text == "Starting content"


def test_new_campaign_from_a_template_copies_its_content(app, web, templates):
    letter, _frame = templates
    page = soup(web.get(f"/templates/{letter.id}"))
    form = page.select_one("#new-campaign-from-template").find_parent("form")
    campaign = _created(web.post(form["action"]))
    assert (campaign.name, campaign.body, campaign.kind, campaign.template_id) == (
        "Spring letter", LETTER, "html", None)
    Template.update(body="<p>Changed later</p>").where(Template.id == letter.id).execute()
    assert Campaign.get_by_id(campaign.id).body == LETTER  # its own copy
    preview = web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    assert "the spring letter" in preview  # the template is what the email shows, not ignored


def test_new_campaign_from_a_layout_wraps_the_campaigns_content(app, web, templates):
    _letter, frame = templates
    campaign = _created(web.post(f"/templates/{frame.id}/campaign"))
    assert campaign.template_id == frame.id and campaign.body == ""
    editor = soup(web.get(f"/campaigns/{campaign.id}"))
    assert editor.select_one("#f-template option[selected]").text == "Acme frame (layout)"
    assert "Write the content of the email." in [li.text for li in editor.select("ul.problems li")]
    web.post(f"/campaigns/{campaign.id}", {"name": campaign.name, "subject": "Hi", "kind": "html",
                                           "body": "<p>This month's words</p>", "template": str(frame.id)})
    preview = web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    assert "Acme masthead" in preview and "This month's words" in preview and "Acme footer band" in preview


def test_new_campaign_from_a_builtin_template(web, team):  # noqa: F811
    page = soup(web.get("/templates/builtin/newsletter"))
    form = page.select_one("#new-campaign-from-template").find_parent("form")
    campaign = _created(web.post(form["action"]))
    assert campaign.name == "Newsletter" and "The lead story of this issue" in campaign.body


def test_the_new_campaign_form_offers_templates_and_layouts(web, templates):
    letter, frame = templates
    page = soup(web.get("/campaigns/"))
    groups = {group["label"]: [o["value"] for o in group.select("option")]
              for group in page.select("#f-start_from optgroup")}
    assert groups["Your templates"] == [f"template:{letter.id}"]
    assert groups["Your layouts"] == [f"template:{frame.id}"]
    assert "builtin:newsletter" in groups["Built-in HTML templates"]
    assert [value for value in groups["Built-in block templates"]] == [
        "starter:newsletter", "starter:announcement", "starter:event", "starter:letter"]
    campaign = _created(web.post("/campaigns/new", {"name": "April", "start_from": f"template:{letter.id}"}))
    assert (campaign.name, campaign.body) == ("April", LETTER)


def test_the_builder_offers_only_layouts_as_layouts(web, templates):
    letter, frame = templates
    campaign = _created(web.post("/campaigns/new", {"name": "May"}))
    options = [o.text for o in soup(web.get(f"/campaigns/{campaign.id}")).select("#f-template option")]
    assert options == ["None: the body below is the whole email", "Acme frame (layout)"]
    # A campaign saved with a slotless template before this fix is told, not silently ignored.
    Campaign.update(template=letter.id).where(Campaign.id == campaign.id).execute()
    editor = soup(web.get(f"/campaigns/{campaign.id}"))
    assert "(not a layout: no content slot)" in editor.select_one("#f-template option[selected]").text
    assert any("has no {{ content }} slot" in li.text for li in editor.select("ul.problems li"))


def test_another_teams_template_cannot_start_a_campaign(app, web, team):  # noqa: F811
    other = Team.create(name="Other", slug="other")
    theirs = Template.create(team=other, name="Theirs", kind="html", body="<p>Private</p>")
    assert web.post(f"/templates/{theirs.id}/campaign").status_code == 404
    refused = web.post("/campaigns/new", {"name": "Sneaky", "start_from": f"template:{theirs.id}"})
    assert refused.status_code == 422
    assert not Campaign.select().where(Campaign.body == "<p>Private</p>").exists()
    with app.app_context():
        with pytest.raises(CampaignError):
            drafts.create_campaign(team, None, "x", start_from=f"template:{theirs.id}")


def test_a_guest_cannot_start_campaigns_from_templates(app, team, templates):  # noqa: F811
    letter, _frame = templates
    _user, guest = make_member(app, team, "guest")
    assert guest.post(f"/templates/{letter.id}/campaign").status_code == 403
    assert not Campaign.select().exists()


def test_a_resend_keeps_the_layout(app, templates):
    _letter, frame = templates
    team = frame.team
    sent = Campaign.create(team=team, name="June", subject="Hi", body="<p>June words</p>", template=frame,
                           state="completed")
    with app.app_context():
        copy = drafts.resend(sent, "newcomers", None)
    assert copy.template_id == frame.id and copy.body == "<p>June words</p>"


# --- Block templates: starters, team templates of blocks, and campaigns saved as templates ----------

def test_the_new_campaign_form_starts_with_blocks_and_keeps_them(web, team):  # noqa: F811
    page = soup(web.get("/campaigns/"))
    kinds = page.select("#f-kind option")
    assert [(o["value"], o.text) for o in kinds] == [
        ("blocks", "Drag-and-drop blocks"), ("html", "Write HTML"), ("markdown", "Write Markdown")]
    assert page.select_one("#f-kind option[selected]")["value"] == "blocks"
    assert page.select_one("label[for=f-kind]").text == "Write it with"
    campaign = _created(web.post("/campaigns/new", {"name": "June", "kind": "blocks"}))
    assert (campaign.kind, campaign.blocks) == ("blocks", {"version": 1, "blocks": []})
    body = campaign.body
    # The builder form's body and kind fields never overwrite a block email.
    web.post(f"/campaigns/{campaign.id}", {"name": "June", "subject": "Hi", "kind": "html", "body": "<p>Typed</p>"})
    stored = Campaign.get_by_id(campaign.id)
    assert (stored.kind, stored.body, stored.subject) == ("blocks", body, "Hi")
    markdown = _created(web.post("/campaigns/new", {"name": "July", "kind": "markdown"}))
    assert (markdown.kind, markdown.blocks) == ("markdown", None)


def test_new_campaign_from_a_block_starter_copies_its_blocks(web, team):  # noqa: F811
    page = soup(web.get("/templates/starter/event"))
    assert page.select_one("h1").text.startswith("Event invitation")
    form = page.select_one("#new-campaign-from-template").find_parent("form")
    campaign = _created(web.post(form["action"]))
    assert campaign.name == "Event invitation" and campaign.kind == "blocks"
    assert [block["id"] for block in campaign.blocks["blocks"]][:2] == ["ev-invited", "ev-title"]
    preview = web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    assert "Our autumn meetup" in preview and "Save my seat" in preview
    assert web.post("/templates/starter/no-such-starter/campaign").status_code == 404


def test_a_block_template_starts_campaigns_with_its_own_copy_of_the_blocks(web, team):  # noqa: F811
    new_page = soup(web.get("/templates/new"))
    assert new_page.select_one("input[name=kind][checked]")["value"] == "blocks"
    assert [o["value"] for o in new_page.select("#f-starter option")] == [
        "", "newsletter", "announcement", "event", "letter"]
    saved = web.post("/templates/new", {"name": "Meetups", "kind": "blocks", "starter": "event"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]
    template = Template.get(Template.name == "Meetups")
    assert template.kind == "blocks" and "Our autumn meetup" in template.body
    campaign = _created(web.post(f"/templates/{template.id}/campaign"))
    assert (campaign.kind, campaign.blocks, campaign.template_id) == ("blocks", template.blocks, None)
    Template.update(blocks={"version": 1, "blocks": []}).where(Template.id == template.id).execute()
    assert Campaign.get_by_id(campaign.id).blocks["blocks"]  # its own copy
    # Saving the template's name keeps its blocks: the body textarea is not part of a block template.
    web.post(f"/templates/{template.id}", {"name": "Meetups 2025", "kind": "blocks"})
    renamed = Template.get_by_id(template.id)
    assert (renamed.name, renamed.kind, renamed.blocks) == ("Meetups 2025", "blocks", {"version": 1, "blocks": []})


def test_a_campaign_is_saved_as_a_template_with_its_blocks_or_body(web, templates):
    letter, _frame = templates
    blocks_campaign = _created(web.post("/templates/starter/newsletter/campaign"))
    editor = soup(web.get(f"/campaigns/{blocks_campaign.id}"))
    form = editor.select_one("#save-as-template")
    saved = web.post(form["action"])
    assert saved.status_code == 302
    template = Template.get(Template.name == "Newsletter")
    assert saved.headers["Location"].endswith(f"/templates/{template.id}")
    assert (template.kind, template.blocks) == ("blocks", blocks_campaign.blocks)
    again = web.post(form["action"])  # a second copy gets a free name
    assert again.status_code == 302 and Template.get_or_none(Template.name == "Newsletter 2") is not None
    html_campaign = _created(web.post(f"/templates/{letter.id}/campaign", {}))
    web.post(f"/campaigns/{html_campaign.id}/save-as-template", {"name": "Letter, kept"})
    kept = Template.get(Template.name == "Letter, kept")
    assert (kept.kind, kept.body, kept.blocks) == ("html", LETTER, None)


def test_another_teams_campaign_cannot_be_saved_as_a_template(web, team):  # noqa: F811
    other = Team.create(name="Other", slug="other")
    theirs = Campaign.create(team=other, name="Their plans", kind="html", body="<p>Private</p>")
    before = Template.select().count()
    assert web.post(f"/campaigns/{theirs.id}/save-as-template").status_code == 404
    assert Template.select().count() == before


def test_a_resend_keeps_the_blocks(app, team):  # noqa: F811
    blocks = {"version": 1, "blocks": [{"id": "heading01", "type": "heading", "text": "June", "level": 1,
                                        "align": "left"}]}
    sent = Campaign.create(team=team, name="June", subject="Hi", kind="blocks", blocks=blocks,
                           body="<p>rendered</p>", state="completed")
    with app.app_context():
        copy = drafts.resend(sent, "non_openers", None)
    assert (copy.kind, copy.blocks, copy.body) == ("blocks", blocks, "<p>rendered</p>")


def test_a_guest_cannot_save_a_campaign_as_a_template(app, team):  # noqa: F811
    campaign = Campaign.create(team=team, name="Ours", kind="html", body="<p>Ours</p>")
    _user, guest = make_member(app, team, "guest")
    assert guest.post(f"/campaigns/{campaign.id}/save-as-template").status_code == 403
    assert not Template.select().where(Template.name == "Ours").exists()


def test_block_templates_are_copied_with_their_blocks_and_deleted_with_their_history(web, team):  # noqa: F811
    copied = web.post("/templates/starter/newsletter/use")
    assert copied.status_code == 302
    template = Template.get(Template.name == "Newsletter")
    assert template.kind == "blocks" and template.blocks["blocks"][0]["id"] == "nl-masthead"
    again = web.post(f"/templates/{template.id}/duplicate")
    assert again.status_code == 302
    duplicate = Template.get(Template.name == "Newsletter (copy)")
    assert (duplicate.kind, duplicate.blocks, duplicate.body) == ("blocks", template.blocks, template.body)
    block_store.save(duplicate, block_ops.delete(duplicate.blocks, "nl-masthead"))
    assert block_store.can_undo(duplicate)
    assert web.post(f"/templates/{duplicate.id}/delete").status_code == 302
    assert not BlockRevision.select().where(BlockRevision.owner_id == duplicate.id).exists()


def test_deleting_a_block_campaign_deletes_its_undo_history_and_no_one_elses(web, team):  # noqa: F811
    assert web.post("/templates/starter/newsletter/use").status_code == 302
    template = Template.get(Template.name == "Newsletter")
    block_store.save(template, block_ops.delete(template.blocks, "nl-masthead"))
    campaign = _created(web.post(f"/templates/{template.id}/campaign"))
    assert campaign.kind == "blocks"
    block_store.save(campaign, block_ops.delete(campaign.blocks, campaign.blocks["blocks"][0]["id"]))
    assert block_store.can_undo(campaign) and block_store.can_undo(template)

    assert web.post(f"/campaigns/{campaign.id}/delete").status_code == 302
    assert not Campaign.select().where(Campaign.id == campaign.id).exists()
    assert not BlockRevision.select().where((BlockRevision.owner_type == "campaign")
                                            & (BlockRevision.owner_id == campaign.id)).exists()
    assert block_store.can_undo(Template.get_by_id(template.id))  # the template's history stays


def test_a_block_starter_is_previewed_in_a_sandboxed_frame(web, team):  # noqa: F811
    fragment = soup(web.get("/templates/starter/newsletter/preview"))
    assert fragment.select_one("iframe")["src"].startswith("/templates/starter/newsletter/preview.html")
    frame = web.get("/templates/starter/newsletter/preview.html")
    assert frame.status_code == 200 and "sandbox" in frame.headers["Content-Security-Policy"]
    assert "News, notes and things worth your time" in frame.get_data(as_text=True)
    assert web.get("/templates/starter/nothing/preview.html").status_code == 404
