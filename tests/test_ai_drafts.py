"""Drafts from a brief (app/ai/writing.py, the draft prompt): a brief's limits at its fields with no request
made, the team's merge-tag names in the prompt, a draft in each layout checked and shown beside the email,
accepted (blocks valid, HTML cleaned: a script or an on* handler never reaches the stored body or the
preview), undone; an unknown merge tag refused in words; only on a draft campaign; other teams and guests."""
import pytest

from app.ai import writing
from app.content.blocks import schema
from app.content.blocks import store
from app.models import AiJob
from app.models import BlockRevision
from app.models import Campaign
from app.models import CampaignState
from app.models import CustomField
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup

BRIEF = {"goal": "Fill the tables for our new tasting menu", "audience": "Regulars", "tone": "friendly",
         "key_points": "Seven courses\nVegetarian option", "cta_text": "Book a table",
         "cta_url": "https://bistro.example.com/book", "length": "short"}

HTML_ANSWER = {
    "subject": "Our new tasting menu",
    "preheader": "Seven courses, one evening",
    "html": '<h1 onclick="steal()">Hello {{ contact.first_name }}</h1><script>alert(1)</script>'
            '<p>Seven courses are waiting.</p><p><a href="https://bistro.example.com/book" '
            'onmouseover="x()">Book a table</a></p>',
    "text": "Hello {{ contact.first_name }}\nSeven courses are waiting.",
}


@pytest.fixture
def campaign(admin, web, team):
    response = web.post("/campaigns/new", {"name": "Tasting menu"})
    campaign_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    Campaign.update(subject="Old subject", preheader="Old preheader",
                    body="<p>Old body for {{ contact.first_name }}</p>").where(Campaign.id == campaign_id).execute()
    CustomField.create(team=team, key="favourite_dish", label="Favourite dish", type="text")
    return Campaign.get_by_id(campaign_id)


def _draft(web, campaign, **changes):
    return web.post(f"/ai/campaigns/{campaign.id}/draft", {**BRIEF, **changes}, htmx=True)


def _latest_job():
    return AiJob.select().order_by(AiJob.id.desc()).first()


def test_the_draft_form_is_in_the_builder_with_the_campaigns_layout_chosen(web, gemini, campaign):
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    form = page.select_one("#ai-draft-form")
    assert form is not None
    for name in ("goal", "audience", "tone", "key_points", "cta_text", "cta_url", "length", "body_kind"):
        control = form.find(attrs={"name": name})
        assert control is not None, name
        assert page.find("label", attrs={"for": control["id"]}) is not None, name
    assert form.find("select", attrs={"name": "body_kind"}).find("option", selected=True)["value"] == "html"


def test_an_html_draft_is_cleaned_shown_beside_the_email_accepted_and_undone(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    response = _draft(web, campaign, body_kind="html")
    assert response.status_code == 200, response.get_data(as_text=True)
    job = _latest_job()
    assert job.state == "done" and job.kind == "draft"
    # The prompt got the team's merge-tag names (built-in and custom) and the brief, never a contact.
    sent = gemini.bodies_text()
    assert "{{ contact.first_name }}" in sent and "{{ contact.favourite_dish }}" in sent
    assert "Fill the tables for our new tasting menu" in sent and "admin@example.com" not in sent
    card = soup(response).select_one(f"#ai-result-{job.id}")
    assert "Our new tasting menu" in card.get_text()
    frames = card.select("iframe")
    assert len(frames) == 2 and all(frame.has_attr("sandbox") and not frame["sandbox"] for frame in frames)
    assert frames[1]["src"] == f"/ai/jobs/{job.id}/proposal.html"
    preview = web.get(f"/ai/jobs/{job.id}/proposal.html")
    assert "sandbox" in preview.headers["Content-Security-Policy"]
    shown = preview.get_data(as_text=True)
    assert "Seven courses are waiting" in shown
    assert "<script" not in shown and "onclick" not in shown and "onmouseover" not in shown
    assert Campaign.get_by_id(campaign.id).body == "<p>Old body for {{ contact.first_name }}</p>"  # nothing yet

    accepted = web.post(f"/ai/jobs/{job.id}/accept", {"use_subject": "1"}, htmx=True)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    stored = Campaign.get_by_id(campaign.id)
    assert "Seven courses are waiting" in stored.body and "{{ contact.first_name }}" in stored.body
    assert "<script" not in stored.body and "onclick" not in stored.body and "onmouseover" not in stored.body
    assert (stored.subject, stored.preheader, stored.kind) == ("Our new tasting menu", "Seven courses, one evening",
                                                              "html")
    page = soup(accepted)
    assert page.select_one("textarea#f-body")["hx-swap-oob"] == "true"  # the builder's field shows what is stored
    assert "Seven courses are waiting" in page.select_one("textarea#f-body").get_text()
    assert page.select_one(f"#ai-undo-{job.id}") is not None
    assert accepted.headers["HX-Trigger"] == "blocks-changed"

    undone = web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert undone.status_code == 200, undone.get_data(as_text=True)
    restored = Campaign.get_by_id(campaign.id)
    assert (restored.body, restored.subject, restored.preheader) == (
        "<p>Old body for {{ contact.first_name }}</p>", "Old subject", "Old preheader")
    assert AiJob.get_by_id(job.id).accepted_at is None


def test_accepting_without_the_subject_keeps_the_subject(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    web.post(f"/ai/jobs/{_latest_job().id}/accept", {}, htmx=True)
    stored = Campaign.get_by_id(campaign.id)
    assert stored.subject == "Old subject" and "Seven courses" in stored.body


def test_a_markdown_draft_is_shown_as_text_and_stored_as_markdown(web, gemini, campaign):
    gemini.reply(data={"subject": "Menu", "preheader": "Seven courses",
                       "markdown": "# Hello {{ contact.first_name }}\n\nSeven **courses**.", "text": "Hello"})
    response = _draft(web, campaign, body_kind="markdown")
    job = _latest_job()
    proposed = soup(response).select_one(f"#ai-proposed-text-{job.id}")
    assert proposed.name == "pre" and "# Hello {{ contact.first_name }}" in proposed.get_text()
    web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    stored = Campaign.get_by_id(campaign.id)
    assert (stored.kind, stored.body) == ("markdown", "# Hello {{ contact.first_name }}\n\nSeven **courses**.")
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    restored = Campaign.get_by_id(campaign.id)
    assert (restored.kind, restored.body) == ("html", "<p>Old body for {{ contact.first_name }}</p>")


def test_a_blocks_draft_becomes_a_valid_document_an_invalid_block_left_out_with_a_note(web, gemini, campaign):
    gemini.reply(data={"subject": "Menu", "preheader": "Seven courses", "text": "Hello", "blocks": [
        {"type": "heading", "text": "Hello {{ contact.first_name }}"},
        {"type": "text", "text": "Seven courses.\n\nA <b>vegetarian</b> option <script>x()</script>too."},
        {"type": "button", "text": "Book a table", "url": "javascript:alert(1)"},
        {"type": "image", "text": "A picture"},
        {"type": "divider"},
        {"type": "button", "text": "Book now", "url": "https://bistro.example.com/book"},
    ]})
    response = _draft(web, campaign, body_kind="blocks")
    job = _latest_job()
    card = soup(response).select_one(f"#ai-result-{job.id}")
    notes = card.select_one(".ai-notes").get_text(" ", strip=True)
    assert "Block 3 (button) was left out" in notes and "Block 4 was left out" in notes

    web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    stored = Campaign.get_by_id(campaign.id)
    assert stored.kind == "blocks"
    assert schema.validate_document(stored.blocks) == stored.blocks
    assert [block["type"] for block in stored.blocks["blocks"]] == ["heading", "text", "divider", "button"]
    assert "javascript:" not in stored.body and "<script" not in stored.body
    assert "&lt;b&gt;vegetarian&lt;/b&gt;" in stored.blocks["blocks"][1]["html"]  # the model's markup is text
    # The campaign was HTML: undo puts the HTML body back.
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    restored = Campaign.get_by_id(campaign.id)
    assert (restored.kind, restored.body) == ("html", "<p>Old body for {{ contact.first_name }}</p>")


def test_a_blocks_draft_on_a_block_email_goes_through_the_block_store_undo(web, gemini, campaign, team):
    store.save(campaign, {"version": 1, "blocks": [schema.new_block("heading")]})
    before = Campaign.get_by_id(campaign.id).blocks
    gemini.reply(data={"subject": "Menu", "preheader": "P", "text": "T",
                       "blocks": [{"type": "text", "text": "Seven courses."}]})
    _draft(web, campaign, body_kind="blocks")
    job = _latest_job()
    web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    assert BlockRevision.select().where(BlockRevision.owner_id == campaign.id).count() == 1
    assert "Seven courses." in Campaign.get_by_id(campaign.id).body
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert Campaign.get_by_id(campaign.id).blocks == before


def test_an_unknown_merge_tag_is_refused_in_words_and_never_stored(web, gemini, campaign):
    gemini.reply(data={**HTML_ANSWER, "html": "<p>Hi {{ contact.shoe_size }}, welcome.</p>"})
    response = _draft(web, campaign, body_kind="html")
    job = _latest_job()
    message = "The draft uses {{ contact.shoe_size }}, which is not a field of this team."
    assert message in soup(response).select_one(f"#ai-refused-{job.id}").get_text()
    assert soup(response).select_one(f"#ai-accept-{job.id}") is None
    refused = web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    assert refused.status_code == 422 and message in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).body == "<p>Old body for {{ contact.first_name }}</p>"
    assert "shoe_size" not in web.get(f"/ai/jobs/{job.id}/proposal.html").get_data(as_text=True).replace(
        "The draft uses {{ contact.shoe_size }}", "")


def test_a_bare_unknown_name_and_a_custom_field_are_told_apart(team, app):
    with app.app_context():
        CustomField.create(team=team, key="city", label="City", type="text")
        writing.check_merge_tags(team, "{{ contact.city }} {{ contact.first_name|default('there') }} {{ team.name }}"
                                       "{% if contact.city %}x{% endif %}")
        with pytest.raises(writing.WritingError, match=r"uses \{\{ discount \}\}, which is not a field"):
            writing.check_merge_tags(team, "<p>{{ discount }}</p>")
        with pytest.raises(writing.WritingError, match=r"uses \{\{ contact.shoe \}\}"):
            writing.check_merge_tags(team, "{% if contact.shoe %}x{% endif %}")


def test_a_brief_too_long_is_refused_at_its_fields_and_nothing_is_asked(web, gemini, campaign):
    response = _draft(web, campaign, goal="x" * 501, key_points="y" * 2001, cta_url="javascript:alert(1)")
    assert response.status_code == 422
    page = soup(response)
    assert "at most 500" in page.select_one("#e-ai-goal").get_text()
    assert "at most 2,000" in page.select_one("#e-ai-key_points").get_text()
    assert "https://" in page.select_one("#e-ai-cta_url").get_text()
    assert page.select_one("#f-ai-goal")["aria-invalid"] == "true"
    assert gemini.requests == [] and AiJob.select().count() == 0


def test_a_goal_is_needed(web, gemini, campaign):
    response = _draft(web, campaign, goal="  ")
    assert response.status_code == 422 and soup(response).select_one("#e-ai-goal") is not None
    assert gemini.requests == []


def test_only_a_draft_campaign_takes_a_draft(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    job = _latest_job()
    Campaign.update(state=CampaignState.SENDING).where(Campaign.id == campaign.id).execute()
    refused = web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    assert refused.status_code == 422 and "started sending" in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).body == "<p>Old body for {{ contact.first_name }}</p>"
    again = _draft(web, campaign)
    assert again.status_code == 422 and "started sending" in again.get_data(as_text=True)
    assert len(gemini.requests) == 1


def test_discard_forgets_the_proposal(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    job = _latest_job()
    response = web.post(f"/ai/jobs/{job.id}/discard", htmx=True)
    assert response.status_code == 200 and "Discarded" in response.get_data(as_text=True)
    assert AiJob.get_or_none(AiJob.id == job.id) is None
    assert Campaign.get_by_id(campaign.id).body == "<p>Old body for {{ contact.first_name }}</p>"


def test_another_teams_draft_routes_are_not_found_and_a_guest_may_not_use_them(app, web, gemini, campaign, team):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    job = _latest_job()
    other_team = Team.create(name="Other")
    _user, other = make_member(app, other_team, "admin", email="boss@other.example.com")
    for path in (f"/ai/jobs/{job.id}/accept", f"/ai/jobs/{job.id}/undo", f"/ai/jobs/{job.id}/discard",
                 f"/ai/jobs/{job.id}/regenerate", f"/ai/campaigns/{campaign.id}/draft"):
        assert other.post(path, {**BRIEF, "use_subject": "1"}, htmx=True).status_code == 404, path
    assert other.get(f"/ai/jobs/{job.id}/proposal.html").status_code == 404
    _guest_user, guest = make_member(app, team, "guest", email="guest@example.com")
    for path in (f"/ai/jobs/{job.id}/accept", f"/ai/jobs/{job.id}/undo", f"/ai/jobs/{job.id}/discard",
                 f"/ai/jobs/{job.id}/regenerate", f"/ai/campaigns/{campaign.id}/draft"):
        assert guest.post(path, BRIEF, htmx=True).status_code == 403, path
    assert AiJob.select().count() == 1 and len(gemini.requests) == 1
    unchanged = Campaign.get_by_id(campaign.id)
    assert (unchanged.body, unchanged.subject) == ("<p>Old body for {{ contact.first_name }}</p>", "Old subject")


def test_a_second_accept_is_refused_and_undo_still_restores_the_first_state(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    job = _latest_job()
    assert web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True).status_code == 200
    again = web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    assert again.status_code == 422 and "already in the email" in again.get_data(as_text=True)
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert Campaign.get_by_id(campaign.id).body == "<p>Old body for {{ contact.first_name }}</p>"
    assert web.post(f"/ai/jobs/{job.id}/undo", htmx=True).status_code == 422  # nothing left to undo


def test_undo_is_refused_when_the_body_was_changed_after_the_accept(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    job = _latest_job()
    web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True)
    Campaign.update(body="<p>Edited by hand after the accept.</p>").where(Campaign.id == campaign.id).execute()
    refused = web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert refused.status_code == 422 and "would lose those changes" in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).body == "<p>Edited by hand after the accept.</p>"
    assert AiJob.get_by_id(job.id).accepted_at is not None


def test_the_same_brief_comes_from_the_cache_and_regenerate_asks_again(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    response = _draft(web, campaign, body_kind="html")
    cached = _latest_job()
    assert len(gemini.requests) == 1 and cached.result["cached"] is True
    card = soup(response).select_one(f"#ai-result-{cached.id}")
    assert "from cache" in card.get_text() and card.select_one(f"#ai-regenerate-{cached.id}").get_text() == "Regenerate"
    gemini.reply(data={**HTML_ANSWER, "subject": "Another subject"})
    again = web.post(f"/ai/jobs/{cached.id}/regenerate", htmx=True)
    assert again.status_code == 200, again.get_data(as_text=True)
    fresh = _latest_job()
    assert len(gemini.requests) == 2 and fresh.id != cached.id and fresh.result["cached"] is False
    assert "Another subject" in soup(again).select_one(f"#ai-job-{fresh.id}").get_text()


def test_spam_wording_in_a_draft_is_named_beside_it(web, gemini, campaign):
    gemini.reply(data={**HTML_ANSWER, "subject": "ACT NOW!!! FREE MONEY", "html": "<p>Act now, 100% free!!!</p>"})
    response = _draft(web, campaign, body_kind="html")
    job = _latest_job()
    flags = soup(response).select_one(f"#ai-result-{job.id} .ai-flags")
    assert flags is not None and len(flags.select("li")) >= 2
    assert any("act now" in item.get_text().lower() for item in flags.select("li"))


def test_a_markdown_draft_with_a_script_is_refused_not_stored(web, gemini, campaign):
    gemini.reply(data={"subject": "Menu", "preheader": "P", "text": "T",
                       "markdown": "# Hello\n\n<script>alert(1)</script>\n\n<a href='#' onclick='x()'>Book</a>"})
    response = _draft(web, campaign, body_kind="markdown")
    job = _latest_job()
    assert "HTML that an email cannot keep" in soup(response).select_one(f"#ai-refused-{job.id}").get_text()
    assert web.post(f"/ai/jobs/{job.id}/accept", {}, htmx=True).status_code == 422
    assert Campaign.get_by_id(campaign.id).kind == "html"


def test_without_javascript_the_forms_post_and_come_back_to_the_builder(web, gemini, campaign):
    gemini.reply(data=HTML_ANSWER)
    started = web.post(f"/ai/campaigns/{campaign.id}/draft", {**BRIEF, "body_kind": "html"})
    job = _latest_job()
    assert started.status_code == 302 and started.headers["Location"].endswith(f"/campaigns/{campaign.id}#ai-job-{job.id}")
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one(f"#ai-draft #ai-result-{job.id}") is not None
    accepted = web.post(f"/ai/jobs/{job.id}/accept", {"use_subject": "1"})
    assert accepted.status_code == 302 and Campaign.get_by_id(campaign.id).subject == "Our new tasting menu"
    refused = web.post(f"/ai/campaigns/{campaign.id}/draft", {**BRIEF, "goal": ""})
    assert refused.status_code == 302 and len(gemini.requests) == 1


def test_a_team_with_very_many_fields_still_gets_a_draft(web, gemini, campaign, team):
    for number in range(200):
        CustomField.create(team=team, key=f"a_rather_long_field_name_{number:03d}", label=f"F {number}", type="text")
    gemini.reply(data=HTML_ANSWER)
    response = _draft(web, campaign, body_kind="html")
    assert response.status_code == 200 and _latest_job().state == "done"
    sent = gemini.bodies_text()
    assert "{{ contact.first_name }}" in sent and "a_rather_long_field_name_000" in sent


def test_an_html_draft_for_a_block_email_is_previewed_as_html_and_a_blocks_draft_as_blocks(web, gemini, campaign):
    store.save(campaign, {"version": 1, "blocks": [schema.new_block("heading")]})
    gemini.reply(data=HTML_ANSWER)
    _draft(web, campaign, body_kind="html")
    shown = web.get(f"/ai/jobs/{_latest_job().id}/proposal.html").get_data(as_text=True)
    assert "Seven courses are waiting" in shown and "<script" not in shown
    gemini.reply(data={"subject": "S", "preheader": "P", "text": "T", "blocks": [{"type": "text", "text": "Block text."}]})
    _draft(web, campaign, body_kind="blocks", goal="Another goal")
    shown = web.get(f"/ai/jobs/{_latest_job().id}/proposal.html").get_data(as_text=True)
    assert "Block text." in shown and "loft-card" in shown  # the block email's own markup
    assert Campaign.get_by_id(campaign.id).kind == "blocks" and "Block text." not in Campaign.get_by_id(campaign.id).body
