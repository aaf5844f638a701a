"""Subject-line suggestions into the campaign (app/ai/subject_lines.py): "Use as subject" saves one and Undo
puts the writer's back; two to four ticked suggestions become the campaign's subject A/B test through the
existing A/B machinery, and the message of variant B reaches the real mail catcher with B's subject and
preheader; only a draft changes; the A/B form carries a preheader per variant."""
import email
import email.policy

from app.campaigns import ab_testing
from app.models import AiJob
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Subscription
from app.models import Variant
from tests.campaigns_support import create_draft
from tests.conftest import soup

SUGGESTIONS = [
    {"subject": "Tulips are back", "preheader": "Forty kinds, planted by hand"},
    {"subject": "Your autumn bulbs are here", "preheader": "Plant now, bloom in spring"},
    {"subject": "FREE bulbs!!! Act now", "preheader": "Only this week"},
    {"subject": "A garden for {{ contact.first_name }}", "preheader": "Bulbs picked for you"},
    {"subject": "Spring starts in October", "preheader": "The bulb guide is inside"},
]


def _suggestions(web, gemini, campaign):
    gemini.reply(data={"items": SUGGESTIONS})
    response = web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": "Autumn bulbs"}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    return AiJob.select().order_by(AiJob.id.desc()).first(), soup(response)


def test_the_suggestions_show_with_their_spam_flags(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news)
    job, page = _suggestions(web, gemini, campaign)
    shown = [(li.select_one(".ai-subject").get_text(strip=True), li.select_one(".ai-preheader").get_text(strip=True))
             for li in page.select(".ai-suggestion")]
    assert shown == [(s["subject"], s["preheader"]) for s in SUGGESTIONS]
    flagged = page.select(".ai-suggestion")[2].select(".ai-flags li")
    assert flagged and any("act now" in flag.get_text().lower() for flag in flagged)
    assert page.select(".ai-suggestion")[0].select(".ai-flags li") == []
    assert [b.get_text(strip=True) for b in page.select(".ai-suggestion button")] == ["Use as subject"] * 5
    assert [label.get_text(strip=True) for label in page.select(".ai-suggestion label")] == ["Test in A/B"] * 5
    assert job.result["items"][2]["flags"]


def test_use_as_subject_saves_it_and_undo_puts_the_old_one_back(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news, subject="My own subject", preheader="My own preheader")
    job, _page = _suggestions(web, gemini, campaign)
    response = web.post(f"/ai/jobs/{job.id}/use/1", htmx=True)
    assert response.status_code == 200
    saved = Campaign.get_by_id(campaign.id)
    assert (saved.subject, saved.preheader) == ("Your autumn bulbs are here", "Plant now, bloom in spring")
    page = soup(response)
    # The builder's fields follow, out of band, and the card offers Undo.
    assert page.select_one("input#f-subject[hx-swap-oob]")["value"] == "Your autumn bulbs are here"
    assert page.select_one("input#f-preheader[hx-swap-oob]")["value"] == "Plant now, bloom in spring"
    assert "My own subject" in page.select_one(".ai-undo").get_text()
    # A second suggestion tried: Undo still goes back to the writer's own.
    web.post(f"/ai/jobs/{job.id}/use/4", htmx=True)
    assert Campaign.get_by_id(campaign.id).subject == "Spring starts in October"
    undone = web.post(f"/ai/jobs/{job.id}/undo-subject", htmx=True)
    saved = Campaign.get_by_id(campaign.id)
    assert (saved.subject, saved.preheader) == ("My own subject", "My own preheader")
    assert soup(undone).select_one("input#f-subject[hx-swap-oob]")["value"] == "My own subject"
    assert soup(undone).select_one(".ai-undo") is None
    again = web.post(f"/ai/jobs/{job.id}/undo-subject", htmx=True)
    assert again.status_code == 422 and "nothing to undo" in again.get_data(as_text=True).lower()


def test_a_suggestion_with_a_made_up_merge_tag_can_be_read_but_not_used(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news)
    gemini.reply(data={"items": [{"subject": "Hi {{ first_name }}", "preheader": "Bulbs"}] + SUGGESTIONS[1:]})
    response = web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": "Bulbs"}, htmx=True)
    first = soup(response).select(".ai-suggestion")[0]
    assert "{{ first_name }}, which is not a field of this team" in first.select_one(".ai-problem").get_text()
    assert first.find("button") is None and first.find("input") is None
    job = AiJob.select().order_by(AiJob.id.desc()).first()
    refused = web.post(f"/ai/jobs/{job.id}/use/0", htmx=True)
    assert refused.status_code == 422 and Campaign.get_by_id(campaign.id).subject == "Hello {{ contact.name }}"
    assert web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0", "1"]}, htmx=True).status_code == 422
    assert Variant.select().count() == 0


def test_undo_leaves_a_subject_typed_since(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news, subject="Mine")
    job, _page = _suggestions(web, gemini, campaign)
    web.post(f"/ai/jobs/{job.id}/use/0", htmx=True)
    Campaign.update(subject="Typed after").where(Campaign.id == campaign.id).execute()
    refused = web.post(f"/ai/jobs/{job.id}/undo-subject", htmx=True)
    assert refused.status_code == 422 and "changed since" in refused.get_data(as_text=True)
    assert Campaign.get_by_id(campaign.id).subject == "Typed after"


def _caught():
    return [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
            for m in CaughtMessage.select().order_by(CaughtMessage.id)]


def test_two_suggestions_make_the_subject_ab_test_and_b_goes_out_with_its_preheader(app, web, gemini, ready_team):
    team, news = ready_team
    for i in range(6):  # 10 active recipients: a 20 % sample is one message per variant
        contact = Contact.create(team=team, email=f"extra{i}@example.com", domain="example.com", name=f"Extra {i}")
        Subscription.create(contact=contact, list=news, status="subscribed")
    campaign = create_draft(web, news)
    job, _page = _suggestions(web, gemini, campaign)
    response = web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["1", "3"]}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    saved = Campaign.get_by_id(campaign.id)
    assert (saved.subject, saved.preheader) == ("Your autumn bulbs are here", "Plant now, bloom in spring")
    assert saved.ab_test == {"sample_percent": 20, "wait_minutes": 240, "metric": "opens", "tests": "subject"}
    variants = {v.label: (v.subject, v.preheader) for v in Variant.select().where(Variant.campaign == campaign.id)}
    assert variants == {"A": ("Your autumn bulbs are here", "Plant now, bloom in spring"),
                        "B": ("A garden for {{ contact.first_name }}", "Bulbs picked for you")}
    # The A/B section of the page is swapped in with them.
    page = soup(response)
    section = page.select_one("fieldset#ab-test[hx-swap-oob]")
    assert section.select_one("input[name=ab_enabled]").has_attr("checked")
    assert section.select_one("input[name=ab_tests][value=subject]").has_attr("checked")
    assert section.select_one("#f-b_subject")["value"] == "A garden for {{ contact.first_name }}"
    assert section.select_one("#f-b_preheader")["value"] == "Bulbs picked for you"
    assert "variants A and B" in page.select_one(f"#ai-job-{job.id}").get_text()
    # The builder page shows the same after a reload, and saving it keeps the preheaders.
    builder = soup(web.get(f"/campaigns/{campaign.id}"))
    assert builder.select_one("#f-b_preheader")["value"] == "Bulbs picked for you"
    published = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert published.status_code == 302
    messages = {m["Subject"].split(" ")[0]: m for m in _caught()}
    assert set(messages) == {"Your", "A"}
    b_html = messages["A"].get_body(("html",)).get_content()
    a_html = messages["Your"].get_body(("html",)).get_content()
    assert messages["A"]["Subject"].startswith("A garden for ")
    assert "Bulbs picked for you" in b_html and "Plant now, bloom in spring" not in b_html
    assert "Plant now, bloom in spring" in a_html


def test_one_suggestion_is_not_a_test_and_a_sent_campaign_is_refused(app, web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news)
    job, _page = _suggestions(web, gemini, campaign)
    one = web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0"]}, htmx=True)
    assert one.status_code == 422 and "two to four" in one.get_data(as_text=True)
    assert Variant.select().where(Variant.campaign == campaign.id).count() == 0
    Campaign.update(state="completed").where(Campaign.id == campaign.id).execute()
    refused = web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0", "1"]}, htmx=True)
    assert refused.status_code == 422
    assert "Duplicate it" in soup(refused).select_one("[role=alert]").get_text()
    used = web.post(f"/ai/jobs/{job.id}/use/0", htmx=True)
    assert used.status_code == 422
    asked = web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": "More"}, htmx=True)
    assert asked.status_code == 422 and "Duplicate it" in asked.get_data(as_text=True)
    assert AiJob.select().count() == 1 and len(gemini.requests) == 1
    unchanged = Campaign.get_by_id(campaign.id)
    assert unchanged.subject == "Hello {{ contact.name }}" and unchanged.ab_test == {}


def test_an_existing_test_of_another_kind_is_not_replaced(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="from_name", b_from_name="Ann at Acme")
    job, _page = _suggestions(web, gemini, campaign)
    refused = web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0", "1"]}, htmx=True)
    assert refused.status_code == 422 and "from name" in refused.get_data(as_text=True).lower()
    assert {v.from_name for v in Variant.select().where(Variant.campaign == campaign.id)} == {"Acme", "Ann at Acme"}


def test_four_suggestions_make_variants_a_to_d_keeping_the_tests_settings(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="subject", ab_sample_percent="30",
                            ab_wait_minutes="60", ab_metric="clicks", b_subject="Old B")
    job, _page = _suggestions(web, gemini, campaign)
    web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0", "1", "3", "4"]}, htmx=True)
    saved = Campaign.get_by_id(campaign.id)
    assert saved.ab_test == {"sample_percent": 30, "wait_minutes": 60, "metric": "clicks", "tests": "subject"}
    assert [v.subject for v in ab_testing.variants_of(saved)] == [
        "Tulips are back", "Your autumn bulbs are here", "A garden for {{ contact.first_name }}", "Spring starts in October"]
    five = web.post(f"/ai/jobs/{job.id}/ab-test", {"pick": ["0", "1", "2", "3", "4"]}, htmx=True)
    assert five.status_code == 422


def test_the_ab_form_saves_a_preheader_per_variant(web, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="subject", b_subject="Subject B",
                            b_preheader="Preheader B")
    variants = {v.label: v for v in Variant.select().where(Variant.campaign == campaign.id)}
    assert (variants["B"].subject, variants["B"].preheader) == ("Subject B", "Preheader B")
    assert variants["A"].preheader == ""
    b_frame = web.get(f"/campaigns/{campaign.id}/preview.html?variant=B").get_data(as_text=True)
    a_frame = web.get(f"/campaigns/{campaign.id}/preview.html?variant=A").get_data(as_text=True)
    assert "Preheader B" in b_frame and "Preheader B" not in a_frame


def test_a_block_email_is_sent_as_its_text_with_tags_and_no_contact_data(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news)
    Campaign.update(kind="blocks", body='<table role="presentation"><tr><td style="padding:8px">'
                    '<h1>Bulb week</h1><p>Hello {{ contact.first_name }}, the tulips are in.</p></td></tr></table>'
                    ).where(Campaign.id == campaign.id).execute()
    response = web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": ""}, htmx=True)
    assert response.status_code == 200
    sent = gemini.bodies_text()
    assert "Bulb week" in sent and "Hello {{ contact.first_name }}, the tulips are in." in sent
    assert "<table" not in sent and "padding" not in sent
    for contact in Contact.select():
        assert contact.email not in sent and contact.name not in sent


def test_without_javascript_each_button_posts_and_comes_back_to_the_builder(web, gemini, ready_team):
    _team, news = ready_team
    campaign = create_draft(web, news)
    started = web.post(f"/ai/campaigns/{campaign.id}/subject-lines", {"brief": "Bulbs"})
    assert started.status_code == 302 and started.headers["Location"].endswith(f"/campaigns/{campaign.id}#ai-panel")
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert len(page.select("#ai-panel .ai-suggestion")) == 5  # the latest job is shown on the page
    job = AiJob.select().order_by(AiJob.id.desc()).first()
    form = page.select_one(f"#ai-ab-form-{job.id}")
    assert form["action"] == f"/ai/jobs/{job.id}/ab-test"
    assert form.select("button")[0]["formaction"] == f"/ai/jobs/{job.id}/use/0"
    used = web.post(f"/ai/jobs/{job.id}/use/0", follow_redirects=True)
    page = soup(used)
    assert "Saved as the subject" in page.select_one(".flash-success").get_text()
    assert page.select_one("#f-subject")["value"] == "Sample subject 1"
