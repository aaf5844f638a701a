"""The campaign builder's AI jobs (app/ai/jobs.py, tasks/ai.py): queued -> running -> done | failed |
cancelled with real huey (immediate mode) and the Gemini stub; the words of each failure; cancel and a late
answer dropped; Try again; pruning to the last 20; the panel with AI off; other teams' job ids and roles."""
import dataclasses
import datetime

import pytest

from app import settings as instance_settings
from app.ai import jobs
from app.models import AiJob
from app.models import Campaign
from app.models import Team
from app.models import User
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def campaign(admin, web):
    response = web.post("/campaigns/new", {"name": "Spring news"})
    campaign_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    Campaign.update(subject="Old subject", preheader="Old preheader",
                    body="<h1>Spring sale</h1><p>Hi {{ first_name }}, our garden tools are 20% off this week.</p>"
                    ).where(Campaign.id == campaign_id).execute()
    return Campaign.get_by_id(campaign_id)


def _suggest(web, campaign, brief="", **extra):
    return web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": brief, **extra}, htmx=True)


def _latest_job():
    return AiJob.select().order_by(AiJob.id.desc()).first()


def test_a_job_runs_to_done_with_five_suggestions(web, gemini, campaign):
    response = _suggest(web, campaign)
    assert response.status_code == 200, response.get_data(as_text=True)
    job = _latest_job()
    assert job.state == "done" and job.kind == "subject_lines" and job.finished_at is not None
    assert len(job.result["items"]) == 5 and job.result["input_tokens"] > 0 and not job.result["cached"]
    page = soup(response)
    assert len(page.select(".ai-suggestion")) == 5
    assert page.select_one(f"#ai-job-{job.id}")["data-state"] == "done"
    # Without a brief the campaign's text went out with its merge tag as a tag, and only once.
    assert len(gemini.requests) == 1
    sent = gemini.bodies_text()
    assert "garden tools are 20% off" in sent and "{{ first_name }}" in sent


def test_a_brief_is_sent_instead_of_the_content(web, gemini, campaign):
    _suggest(web, campaign, brief="Our autumn bulbs are in")
    sent = gemini.bodies_text()
    assert "Our autumn bulbs are in" in sent and "garden tools" not in sent


def test_the_same_request_again_comes_from_the_cache_and_regenerate_asks_again(web, gemini, campaign):
    _suggest(web, campaign, brief="Bulbs")
    response = _suggest(web, campaign, brief="Bulbs")
    assert len(gemini.requests) == 1
    assert _latest_job().result["cached"] is True
    page = soup(response)
    assert "from cache" in page.select_one(".ai-meta").get_text()
    regenerate = page.find("input", {"name": "regenerate"}).find_parent("form")
    assert regenerate.find("button").get_text(strip=True) == "Regenerate"
    _suggest(web, campaign, brief="Bulbs", regenerate="1")
    assert len(gemini.requests) == 2 and _latest_job().result["cached"] is False


@pytest.mark.parametrize("queue, words", [
    (lambda g: [g.fail(500), g.fail(500), g.fail(500)], "unavailable"),
    (lambda g: g.fail(403, message="API key not valid"), "key"),
    (lambda g: g.block(), "safety"),
    (lambda g: g.truncate(), "cut off"),
    (lambda g: g.malformed(), ""),
])
def test_a_failure_is_words_with_try_again_and_never_a_500(web, gemini, campaign, queue, words, monkeypatch):
    from app.ai import providers
    monkeypatch.setattr(providers, "sleep", lambda seconds: None)
    queue(gemini)
    response = _suggest(web, campaign, brief="Bulbs")
    assert response.status_code == 200
    job = _latest_job()
    assert job.state == "failed" and job.error and job.result == {}
    assert words.lower() in job.error.lower(), job.error
    card = soup(response).select_one(f"#ai-job-{job.id}")
    assert job.error in card.get_text(" ", strip=True)
    assert card.find("button", string="Try again") is not None
    # The builder keeps working.
    assert web.get(f"/campaigns/{campaign.id}").status_code == 200
    again = web.post(f"/ai/jobs/{job.id}/retry", htmx=True)
    assert again.status_code == 200 and _latest_job().id != job.id and _latest_job().state == "done"


def test_a_provider_that_hangs_fails_the_job_in_words(web, gemini, campaign, monkeypatch):
    from app.ai import generate
    from app.ai import providers
    monkeypatch.setattr(providers, "sleep", lambda seconds: None)
    configured = generate.provider_config
    monkeypatch.setattr(generate, "provider_config", lambda: dataclasses.replace(configured(), timeout_seconds=1))
    for _ in range(3):
        gemini.hang(5)
    response = _suggest(web, campaign, brief="Bulbs")
    assert response.status_code == 200
    job = _latest_job()
    assert job.state == "failed" and "did not answer within" in job.error, job.error
    assert soup(response).select_one(f"#ai-job-{job.id}").find("button", string="Try again") is not None


def test_a_budget_that_is_used_up_is_said_in_words(web, gemini, campaign, team):
    Team.update(ai_monthly_budget_usd=0.000001).where(Team.id == team.id).execute()
    _suggest(web, campaign, brief="Bulbs")
    _suggest(web, campaign, brief="Tulips")
    job = _latest_job()
    assert job.state == "failed" and "budget" in job.error.lower()
    assert len(gemini.requests) == 1


def test_polling_answers_204_until_the_job_has_finished(app, web, gemini, campaign, admin):
    with app.app_context():
        job = jobs.start(campaign.team, admin.id, campaign, "subject_lines", {"brief": "Bulbs"})
    assert job.state == "queued"
    waiting = web.get(f"/ai/jobs/{job.id}?waiting=1", headers={"HX-Request": "true"})
    assert waiting.status_code == 204 and waiting.get_data() == b""
    card = soup(web.get(f"/ai/jobs/{job.id}", headers={"HX-Request": "true"})).select_one(f"#ai-job-{job.id}")
    assert card["hx-trigger"] == "every 1s" and "Writing suggestions" in card.get_text()
    assert card.find("button", string="Cancel") is not None
    with app.app_context():
        jobs.run(job.id)
    done = web.get(f"/ai/jobs/{job.id}?waiting=1", headers={"HX-Request": "true"})
    card = soup(done).select_one(f"#ai-job-{job.id}")
    assert done.status_code == 200 and card["data-state"] == "done" and not card.has_attr("hx-trigger")


def test_a_job_whose_worker_is_gone_stops_the_waiting_in_words(app, web, gemini, campaign, admin):
    with app.app_context():
        job = jobs.start(campaign.team, admin.id, campaign, "subject_lines", {"brief": "Bulbs"})
    AiJob.update(state="running", created_at=job.created_at - jobs.STALE_AFTER - datetime.timedelta(seconds=1)
                 ).where(AiJob.id == job.id).execute()
    response = web.get(f"/ai/jobs/{job.id}?waiting=1", headers={"HX-Request": "true"})
    card = soup(response).select_one(f"#ai-job-{job.id}")
    assert card["data-state"] == "failed" and "took too long" in card.get_text()
    assert card.find("button", string="Try again") is not None
    with app.app_context():
        jobs.run(job.id)  # the lost task, should it still turn up, changes nothing
    assert AiJob.get_by_id(job.id).state == "failed" and gemini.requests == []


def test_the_per_user_rate_limit_is_said_in_words(app, web, gemini, campaign):
    with app.app_context():
        instance_settings.save_settings({"ai_user_requests_per_hour": 1})
    _suggest(web, campaign, brief="Bulbs")
    _suggest(web, campaign, brief="Tulips")
    job = _latest_job()
    assert job.state == "failed" and "1 AI request" in job.error, job.error
    assert len(gemini.requests) == 1


def test_a_cancelled_job_never_runs_and_a_late_answer_is_dropped(app, web, gemini, campaign, admin, monkeypatch):
    with app.app_context():
        job = jobs.start(campaign.team, admin.id, campaign, "subject_lines", {"brief": "Bulbs"})
    response = web.post(f"/ai/jobs/{job.id}/cancel", htmx=True)
    assert "Cancelled" in soup(response).select_one(f"#ai-job-{job.id}").get_text()
    with app.app_context():
        jobs.run(job.id)
    assert AiJob.get_by_id(job.id).state == "cancelled" and gemini.requests == []
    # Cancelled while the provider was answering: the answer arrives, and is not kept.
    with app.app_context():
        late = jobs.start(campaign.team, admin.id, campaign, "subject_lines", {"brief": "Tulips"})
        original = jobs.generate.generate

        def cancel_then_answer(*args, **kwargs):
            jobs.cancel(campaign.team, AiJob.get_by_id(late.id))
            return original(*args, **kwargs)

        monkeypatch.setattr(jobs.generate, "generate", cancel_then_answer)
        jobs.run(late.id)
    late = AiJob.get_by_id(late.id)
    assert late.state == "cancelled" and late.result == {} and len(gemini.requests) == 1


def test_a_campaign_keeps_its_last_twenty_jobs(app, gemini, campaign, admin):
    with app.app_context():
        made = [jobs.start(campaign.team, admin.id, campaign, "subject_lines", {"brief": f"Brief {i}"})
                for i in range(23)]
    kept = [job.id for job in AiJob.select().where(AiJob.campaign == campaign.id).order_by(AiJob.id)]
    assert kept == [job.id for job in made[3:]]


def test_too_long_a_brief_is_refused_at_the_field_and_nothing_is_asked(web, gemini, campaign):
    response = _suggest(web, campaign, brief="x" * 2001)
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#f-ai-brief")["aria-invalid"] == "true"
    assert "2,001" in page.select_one("#e-ai-brief").get_text()
    assert AiJob.select().count() == 0 and gemini.requests == []


def test_with_ai_off_the_panel_says_how_to_turn_it_on_and_offers_no_button(web, campaign):
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    panel = page.select_one("#ai-panel")
    assert "AI writing help is off" in panel.get_text() and "LOFT_GEMINI_API_KEY" in panel.get_text()
    assert panel.find("button") is None
    refused = _suggest(web, campaign, brief="Bulbs")
    assert refused.status_code == 422 and AiJob.select().count() == 0


def test_with_ai_on_the_panel_offers_subject_lines(web, gemini, campaign):
    panel = soup(web.get(f"/campaigns/{campaign.id}")).select_one("#ai-panel")
    assert panel.select_one("label[for=f-ai-brief]") is not None
    assert panel.find("button", string="Suggest subject lines") is not None


def test_a_guest_sees_no_panel_and_cannot_start_a_job_an_author_can(app, web, gemini, campaign, team):
    _user, guest = make_member(app, team, "guest")
    assert soup(guest.get(f"/campaigns/{campaign.id}")).select_one("#ai-panel") is None
    assert _suggest(guest, campaign, brief="Bulbs").status_code == 403
    _user, author = make_member(app, team, "author")
    assert _suggest(author, campaign, brief="Bulbs").status_code == 200
    job = _latest_job()
    assert job.user_id == _user.id
    for path in (f"/ai/jobs/{job.id}/cancel", f"/ai/jobs/{job.id}/retry", f"/ai/jobs/{job.id}/use/0",
                 f"/ai/jobs/{job.id}/undo-subject", f"/ai/jobs/{job.id}/ab-test"):
        assert guest.post(path, htmx=True).status_code == 403, path
    assert guest.get(f"/ai/jobs/{job.id}").status_code == 403


def test_another_teams_job_and_campaign_are_not_found(app, web, gemini, campaign):
    _suggest(web, campaign, brief="Bulbs")
    job = _latest_job()
    other_team = Team.create(name="Other")
    _user, other = make_member(app, other_team, "admin", email="boss@other.example.com")
    assert other.get(f"/ai/jobs/{job.id}").status_code == 404
    for path in (f"/ai/jobs/{job.id}/cancel", f"/ai/jobs/{job.id}/retry", f"/ai/jobs/{job.id}/use/0",
                 f"/ai/jobs/{job.id}/undo-subject", f"/ai/jobs/{job.id}/ab-test",
                 f"/ai/campaigns/{campaign.id}/subject-lines"):
        assert other.post(path, {"pick": ["0", "1"], "brief": "x"}, htmx=True).status_code == 404, path
    assert AiJob.select().count() == 1
    unchanged = Campaign.get_by_id(campaign.id)
    assert (unchanged.subject, unchanged.ab_test) == ("Old subject", {})
    assert User.select().count() >= 2
