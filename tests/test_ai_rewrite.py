"""Rewrites (app/ai/writing.py, the rewrite prompt): the whole body or the selected slice of it, put back in
exactly that place, refused when the body changed since; one text or heading block of a block email through
the block store (its Undo); merge tags lost or added named in words; the translate language; other teams and
guests."""
import pytest

from app.content.blocks import schema
from app.content.blocks import store
from app.models import AiJob
from app.models import Campaign
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup

BODY = ("<p>Hello {{ contact.first_name }},</p>\n"
        "<p>We are very very happy to tell you that our shop opens again on Monday.</p>\n"
        "<p>See you soon.</p>")
SENTENCE = "We are very very happy to tell you that our shop opens again on Monday."


@pytest.fixture
def campaign(admin, web):
    response = web.post("/campaigns/new", {"name": "Reopening"})
    campaign_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    Campaign.update(body=BODY).where(Campaign.id == campaign_id).execute()
    return Campaign.get_by_id(campaign_id)


def _latest_job():
    return AiJob.select().order_by(AiJob.id.desc()).first()


def _rewrite(web, campaign, **form):
    return web.post(f"/ai/campaigns/{campaign.id}/rewrite", {"mode": "shorter", **form}, htmx=True)


def test_the_rewrite_form_is_in_the_builder_with_its_script(web, gemini, campaign):
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    form = page.select_one("form[data-ai-rewrite]")
    assert form["hx-include"] == "#f-body"
    assert form.find("input", {"name": "selection_start"}) is not None
    assert page.find("script", src="/static/ai_writing.js") is not None
    for name in ("mode", "language", "language_other"):
        control = form.find(attrs={"name": name})
        assert page.find("label", attrs={"for": control["id"]}) is not None, name


def test_a_selection_is_rewritten_and_put_back_in_exactly_that_place(web, gemini, campaign):
    start = BODY.index(SENTENCE)
    gemini.reply(data={"text": "Our shop opens again on Monday."})
    response = _rewrite(web, campaign, scope="selection", selection_start=start,
                        selection_end=start + len(SENTENCE), body=BODY.replace("\n", "\r\n"))
    assert response.status_code == 200, response.get_data(as_text=True)
    job = _latest_job()
    sent = gemini.requests[0]["raw"].decode() if isinstance(gemini.requests[0]["raw"], bytes) else gemini.requests[0]["raw"]
    assert SENTENCE in sent and "See you soon" not in sent  # only the slice went out
    card = soup(response).select_one(f"#ai-result-{job.id}")
    assert SENTENCE in card.get_text() and "Our shop opens again on Monday." in card.get_text()

    accepted = web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).body == BODY.replace(SENTENCE, "Our shop opens again on Monday.")
    assert "Our shop opens again" in soup(accepted).select_one("textarea#f-body").get_text()
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert Campaign.get_by_id(campaign.id).body == BODY


def test_a_stale_selection_is_refused_and_nothing_changes(web, gemini, campaign):
    start = BODY.index(SENTENCE)
    gemini.reply(data={"text": "Our shop opens again on Monday."})
    _rewrite(web, campaign, scope="selection", selection_start=start, selection_end=start + len(SENTENCE))
    job = _latest_job()
    changed = "<p>A new first line.</p>\n" + BODY
    Campaign.update(body=changed).where(Campaign.id == campaign.id).execute()
    refused = web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    assert refused.status_code == 422
    assert "The body changed since; run the rewrite again" in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).body == changed


def test_unsaved_changes_and_an_empty_selection_are_refused_before_asking(web, gemini, campaign):
    unsaved = _rewrite(web, campaign, scope="body", body=BODY + "\n<p>typed</p>")
    assert unsaved.status_code == 422 and "Save the draft first" in unsaved.get_data(as_text=True)
    empty = _rewrite(web, campaign, scope="selection", selection_start="5", selection_end="5")
    assert empty.status_code == 422
    assert "Select some text" in soup(empty).select_one("#e-ai-scope").get_text()
    assert gemini.requests == [] and AiJob.select().count() == 0


def test_a_lost_or_added_merge_tag_is_named_and_an_unknown_one_refused(web, gemini, campaign):
    gemini.reply(data={"text": "<p>Hello {{ contact.last_name }}, we open Monday.</p>"})
    response = _rewrite(web, campaign, scope="body")
    job = _latest_job()
    notes = soup(response).select_one(f"#ai-result-{job.id} .ai-notes").get_text(" ", strip=True)
    assert "lost {{ contact.first_name }}" in notes and "added {{ contact.last_name }}" in notes
    gemini.reply(data={"text": "<p>Hello {{ contact.nickname }}, we open Monday.</p>"})
    response = _rewrite(web, campaign, scope="body", mode="friendlier")
    job = _latest_job()
    assert ("The rewrite uses {{ contact.nickname }}, which is not a field of this team."
            in soup(response).select_one(f"#ai-refused-{job.id}").get_text())
    assert web.post(f"/ai/jobs/{job.id}/accept", htmx=True).status_code == 422
    assert Campaign.get_by_id(campaign.id).body == BODY


def test_the_whole_body_rewritten_is_cleaned_like_a_persons(web, gemini, campaign):
    gemini.reply(data={"text": '<p onclick="x()">Hello {{ contact.first_name }}, see you Monday.</p><script>y()</script>'})
    _rewrite(web, campaign, scope="body", mode="grammar")
    job = _latest_job()
    web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    body = Campaign.get_by_id(campaign.id).body
    assert body == "<p>Hello {{ contact.first_name }}, see you Monday.</p>"


def test_translate_needs_a_language_and_sends_it(web, gemini, campaign):
    missing = _rewrite(web, campaign, scope="body", mode="translate")
    assert missing.status_code == 422 and soup(missing).select_one("#e-ai-language") is not None
    too_long = _rewrite(web, campaign, scope="body", mode="translate", language="other", language_other="x" * 61)
    assert too_long.status_code == 422 and soup(too_long).select_one("#e-ai-language_other") is not None
    assert gemini.requests == []
    gemini.reply(data={"text": "<p>Bonjour {{ contact.first_name }},</p>"})
    _rewrite(web, campaign, scope="body", mode="translate", language="other", language_other="Breton")
    assert "Translate this text into Breton" in gemini.bodies_text()


def test_a_text_block_is_rewritten_through_the_block_store_and_undone_there(web, gemini, campaign):
    heading, text = schema.new_block("heading"), schema.new_block("text")
    text["html"] = "<p>Hello {{ contact.first_name }}, we are very very happy to open again.</p>"
    store.save(campaign, {"version": 1, "blocks": [heading, text]})
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one(f"#ai-block-{text['id']} form") is not None  # "Rewrite with AI" on the block
    assert page.select_one(f"#ai-block-{heading['id']} form") is not None

    gemini.reply(data={"text": "<p>Hello {{ contact.first_name }}, we open again.</p><script>x()</script>"})
    response = web.post(f"/ai/campaigns/{campaign.id}/blocks/{text['id']}/rewrite", {"mode": "shorter"}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    job = _latest_job()
    assert soup(response).select_one(f"#ai-block-{text['id']} #ai-result-{job.id}") is not None
    accepted = web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    stored = Campaign.get_by_id(campaign.id)
    assert stored.blocks["blocks"][1]["html"] == "<p>Hello {{ contact.first_name }}, we open again.</p>"
    assert "<script" not in stored.body
    # The editor is fetched again so its forms show the new text.
    assert soup(accepted).select_one('[hx-target="#block-editor"]')["hx-get"] == \
        f"/editor/campaign/{campaign.id}/blocks"
    # The block editor's own Undo puts the old text back.
    web.post(f"/editor/campaign/{campaign.id}/blocks/undo", htmx=True)
    assert "very very happy" in Campaign.get_by_id(campaign.id).blocks["blocks"][1]["html"]


def test_a_heading_rewrite_undone_from_its_card(web, gemini, campaign):
    heading = schema.new_block("heading")
    heading["text"] = "We are very happy to open again"
    store.save(campaign, {"version": 1, "blocks": [heading]})
    gemini.reply(data={"text": "We open again\n"})
    web.post(f"/ai/campaigns/{campaign.id}/blocks/{heading['id']}/rewrite", {"mode": "shorter"}, htmx=True)
    job = _latest_job()
    web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    assert Campaign.get_by_id(campaign.id).blocks["blocks"][0]["text"] == "We open again"
    web.post(f"/ai/jobs/{job.id}/undo", htmx=True)
    assert Campaign.get_by_id(campaign.id).blocks["blocks"][0]["text"] == "We are very happy to open again"


def test_a_block_changed_since_is_refused(web, gemini, campaign):
    text = schema.new_block("text")
    store.save(campaign, {"version": 1, "blocks": [text]})
    gemini.reply(data={"text": "<p>Short.</p>"})
    web.post(f"/ai/campaigns/{campaign.id}/blocks/{text['id']}/rewrite", {"mode": "shorter"}, htmx=True)
    job = _latest_job()
    web.post(f"/editor/campaign/{campaign.id}/blocks/{text['id']}/edit", {"html": "<p>Typed by hand.</p>"}, htmx=True)
    refused = web.post(f"/ai/jobs/{job.id}/accept", htmx=True)
    assert refused.status_code == 422 and "The block changed since" in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).blocks["blocks"][0]["html"] == "<p>Typed by hand.</p>"


def test_another_teams_rewrite_routes_are_not_found_and_a_guest_may_not_use_them(app, web, gemini, campaign, team):
    text = schema.new_block("text")
    _rewrite(web, campaign, scope="body")
    job = _latest_job()
    other_team = Team.create(name="Other")
    _user, other = make_member(app, other_team, "admin", email="boss@other.example.com")
    _guest_user, guest = make_member(app, team, "guest", email="guest@example.com")
    paths = (f"/ai/campaigns/{campaign.id}/rewrite", f"/ai/campaigns/{campaign.id}/blocks/{text['id']}/rewrite",
             f"/ai/jobs/{job.id}/accept", f"/ai/jobs/{job.id}/undo", f"/ai/jobs/{job.id}/discard")
    for path in paths:
        assert other.post(path, {"mode": "shorter", "scope": "body"}, htmx=True).status_code == 404, path
        assert guest.post(path, {"mode": "shorter", "scope": "body"}, htmx=True).status_code == 403, path
    assert AiJob.select().count() == 1 and len(gemini.requests) == 1
    assert Campaign.get_by_id(campaign.id).body == BODY


def test_with_ai_off_a_block_offers_no_rewrite(web, campaign):
    text = schema.new_block("text")
    store.save(campaign, {"version": 1, "blocks": [text]})
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one(f"#block-{text['id']}") is not None
    assert page.select_one(f"#ai-block-{text['id']}") is None
    assert page.select_one("#ai-off") is not None  # the AI panel says how to turn it on


def test_a_markdown_body_is_rewritten_as_markdown(web, gemini, campaign):
    Campaign.update(kind="markdown", body="# Hello {{ contact.first_name }}\n\nWe are very very happy.").where(
        Campaign.id == campaign.id).execute()
    gemini.reply(data={"text": "# Hello {{ contact.first_name }}\n\nWe are happy."})
    _rewrite(web, campaign, scope="body")
    assert '"format": "markdown"' in gemini.bodies_text() or "Format: markdown" in gemini.bodies_text()
    job = _latest_job()
    assert web.post(f"/ai/jobs/{job.id}/accept", htmx=True).status_code == 200
    stored = Campaign.get_by_id(campaign.id)
    assert (stored.kind, stored.body) == ("markdown", "# Hello {{ contact.first_name }}\n\nWe are happy.")


def test_the_text_around_a_selection_stays_exactly_as_typed_and_a_script_in_the_slice_is_cleaned(web, gemini, campaign):
    typed = "<p>Line one<br/>still {{contact.first_name}}</p>\r\n<p>Old sentence.</p>"
    Campaign.update(body=typed).where(Campaign.id == campaign.id).execute()
    start = typed.replace("\r\n", "\n").index("Old sentence.")
    gemini.reply(data={"text": "New sentence."})
    _rewrite(web, campaign, scope="selection", selection_start=start, selection_end=start + len("Old sentence."))
    web.post(f"/ai/jobs/{_latest_job().id}/accept", htmx=True)
    assert Campaign.get_by_id(campaign.id).body == "<p>Line one<br/>still {{contact.first_name}}</p>\n<p>New sentence.</p>"

    start = Campaign.get_by_id(campaign.id).body.index("New sentence.")
    gemini.reply(data={"text": 'New <b onclick="x()">sentence</b>.<script>y()</script>'})
    _rewrite(web, campaign, scope="selection", selection_start=start, selection_end=start + len("New sentence."))
    web.post(f"/ai/jobs/{_latest_job().id}/accept", htmx=True)
    body = Campaign.get_by_id(campaign.id).body
    assert "<b>sentence</b>." in body and "onclick" not in body and "<script" not in body
