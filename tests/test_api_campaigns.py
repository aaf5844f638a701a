"""/api/v1/campaigns through the campaign services the pages call: drafts made and changed field by field
(what the builder keeps, the API keeps), a campaign sent through the API going out into the real mail
catcher, its numbers matching the report, the state machine's refusals as 409s naming the state, and test
sends through the team's own SMTP account."""
import datetime
import email
import email.policy

from app.campaigns import publishing
from app.models import CaughtMessage
from app.models import Campaign
from app.models import MailingList
from app.models import Team
from app.models import Send
from app.models import Variant
from app.models import utcnow
from app.reports import rollup
from app.reports import services as report_services
from tests.campaigns_support import create_draft
from tests.conftest import link_in
from tests.conftest import soup

PROBLEM = "application/problem+json"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()["errors"]


def draft_body(news, **overrides):
    body = {"name": "Launch", "subject": "Hello {{ contact.name }}", "from_name": "Acme",
            "from_email": "news@acme.example", "body": "<p>Hi {{ contact.name }}, <a href=\"https://acme.example/"
            "post\">read the post</a>.</p>", "audience": {"lists": [news.id]}}
    body.update(overrides)
    return body


def new_draft(api, news, **overrides):
    response = api.post("/api/v1/campaigns", json=draft_body(news, **overrides))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# --- Drafts ---------------------------------------------------------------------------------------

def test_create_get_change_list_and_delete_a_draft(api, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news)
    assert campaign["state"] == "draft" and campaign["name"] == "Launch" and campaign["kind"] == "html"
    assert campaign["audience"] == {"lists": [news.id], "segments": [], "exclude_lists": [], "exclude_segments": []}
    assert campaign["from_email"] == "news@acme.example" and campaign["track_opens"] is True
    assert api.get(f"/api/v1/campaigns/{campaign['id']}").get_json() == campaign
    assert Campaign.get_by_id(campaign["id"]).created_by_id == api.key.created_by_id

    changed = api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"subject": "News", "track_clicks": False,
                                                                      "utm": {"enabled": True, "source": "api"}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    after = changed.get_json()
    assert after["subject"] == "News" and after["track_clicks"] is False and after["track_opens"] is True
    assert after["utm"]["enabled"] is True and after["utm"]["source"] == "api"
    for unchanged in ("name", "body", "from_email", "from_name", "audience", "preheader"):
        assert after[unchanged] == campaign[unchanged], unchanged

    drafts = api.get("/api/v1/campaigns?state=draft").get_json()
    assert [row["id"] for row in drafts["data"]] == [campaign["id"]] and drafts["next"] is None
    assert api.get("/api/v1/campaigns?state=sending").get_json()["data"] == []
    assert api.get("/api/v1/campaigns?search=aunc").get_json()["data"][0]["subject"] == "News"

    assert api.delete(f"/api/v1/campaigns/{campaign['id']}").status_code == 204
    refused(api.get(f"/api/v1/campaigns/{campaign['id']}"), 404)


def test_a_draft_is_refused_at_its_field_and_nothing_is_kept(api, ready_team):
    team, news = ready_team
    other_list = MailingList.create(team=Team.create(name="Other"), name="Theirs")
    errors = refused(api.post("/api/v1/campaigns", json=draft_body(news, audience={"lists": [news.id, other_list.id]})))
    assert errors == {"audience.lists": f"No list of this team has the id {other_list.id}."}
    assert "one email address" in refused(api.post("/api/v1/campaigns",
                                                   json=draft_body(news, from_email="a@b.example, c@d.example")))[
        "from_email"]
    assert "cannot be used" in refused(api.post("/api/v1/campaigns", json=draft_body(news, subject="{{ x")))["subject"]
    assert "template" in refused(api.post("/api/v1/campaigns", json={"name": "X", "start_from": "template:999"}))[
        "start_from"]
    assert "name" in refused(api.post("/api/v1/campaigns", json={"subject": "No name"}))
    assert set(refused(api.post("/api/v1/campaigns", json={"name": "X", "colour": "red", "kind": "pdf"}))) == {
        "colour", "kind"}
    assert set(refused(api.post("/api/v1/campaigns", json={"name": "X", "audience": {"lists": [2**70]},
                                                           "template_id": 2**64}))) == {"audience.lists.0",
                                                                                        "template_id"}
    assert Campaign.select().count() == 0

    campaign = new_draft(api, news)
    assert refused(api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"template_id": 999999})) == {
        "template_id": "No template of this team has the id 999999."}
    plain = api.post("/api/v1/templates", json={"name": "Plain", "body": "<p>No slot</p>"}).get_json()
    assert "no {{ content }} slot" in refused(api.patch(f"/api/v1/campaigns/{campaign['id']}",
                                                        json={"template_id": plain["id"]}))["template_id"]
    assert "utm.source" in refused(api.patch(f"/api/v1/campaigns/{campaign['id']}",
                                             json={"utm": {"enabled": True, "source": "a\nb"}}))
    assert api.get(f"/api/v1/campaigns/{campaign['id']}").get_json() == campaign


def test_a_layout_and_a_blocks_email(api, ready_team):
    team, news = ready_team
    layout = api.post("/api/v1/templates", json={"name": "Frame", "body": "<div>Acme</div>{{ content }}"}).get_json()
    campaign = new_draft(api, news, template_id=layout["id"])
    assert campaign["template_id"] == layout["id"]
    assert api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"template_id": 0}).get_json()["template_id"] is None
    blocks = api.post("/api/v1/campaigns", json={"name": "Blocks", "kind": "blocks"}).get_json()
    assert blocks["kind"] == "blocks"
    assert "block editor" in refused(api.patch(f"/api/v1/campaigns/{blocks['id']}", json={"body": "<p>x</p>"}))["body"]
    assert "block editor" in refused(api.patch(f"/api/v1/campaigns/{blocks['id']}", json={"kind": "html"}))["kind"]
    assert "block editor" in refused(api.post("/api/v1/campaigns", json={"name": "B", "kind": "blocks",
                                                                         "body": "<p>x</p>"}))["body"]
    starter = api.post("/api/v1/campaigns", json={"start_from": "starter:newsletter", "body": "<p>x</p>"})
    assert "block editor" in refused(starter)["body"]
    assert Campaign.select().where(Campaign.kind == "blocks").count() == 1


def test_changing_one_field_keeps_the_ab_test_set_on_the_page(api, web, ready_team):
    team, news = ready_team
    draft = create_draft(web, news, ab_enabled="1", ab_sample_percent="30", ab_wait_minutes="90",
                         ab_metric="opens", ab_tests="subject", b_subject="Other subject", b_preheader="Other",
                         utm_enabled="1", utm_campaign="spring")
    changed = api.patch(f"/api/v1/campaigns/{draft.id}", json={"name": "Renamed"})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    ab_test = changed.get_json()["ab_test"]
    assert {key: ab_test[key] for key in ("sample_percent", "wait_minutes", "metric", "tests")} == {
        "sample_percent": 30, "wait_minutes": 90, "metric": "opens", "tests": "subject"}
    assert [(v["label"], v["subject"], v["preheader"]) for v in ab_test["variants"]] == [
        ("A", "Hello {{ contact.name }}", ""), ("B", "Other subject", "Other")]
    assert changed.get_json()["utm"]["campaign"] == "spring"
    assert [(v.label, v.subject, v.preheader) for v in Variant.select().where(Variant.campaign == draft.id)
            .order_by(Variant.label)] == [("A", "Hello {{ contact.name }}", ""), ("B", "Other subject", "Other")]


# --- Sending --------------------------------------------------------------------------------------

def test_a_campaign_sent_through_the_api_goes_out_and_its_numbers_are_the_reports(api, ready_team, public, web):
    team, news = ready_team
    campaign = new_draft(api, news)
    sent = api.post(f"/api/v1/campaigns/{campaign['id']}/send")
    assert sent.status_code == 202, sent.get_data(as_text=True)
    assert sent.get_json()["state"] == "completed" and sent.get_json()["total"] == 4
    messages = list(CaughtMessage.select().order_by(CaughtMessage.id))
    assert sorted(m.recipients[0] for m in messages) == [f"reader{i}@example.com" for i in range(4)]
    first = email.message_from_bytes(bytes(messages[0].raw), policy=email.policy.default)
    assert first["Subject"].startswith("Hello Reader") and first["List-Unsubscribe"]
    html = first.get_body(("html",)).get_content()
    # Read two hours later: an open or click seconds after sending is a machine's (a scanner, a prefetch).
    Send.update(sent_at=utcnow() - datetime.timedelta(hours=2)).where(Send.campaign == campaign["id"]).execute()
    assert public.get(link_in(html, "/o/").split("loft.test", 1)[1], headers={"User-Agent": BROWSER}).status_code == 200
    clicked = public.get(link_in(html, "/c/").split("loft.test", 1)[1], headers={"User-Agent": BROWSER})
    assert clicked.status_code in (301, 302, 303, 307)

    body = api.get(f"/api/v1/campaigns/{campaign['id']}/stats").get_json()
    with web.client.application.app_context():
        rollup.run()
        totals = report_services.campaign_report(Campaign.get_by_id(campaign["id"]))["totals"]
    assert body["sent"] == body["delivered"] == body["total"] == 4
    assert (body["opened"], body["opened_unique"], body["clicked"], body["clicked_unique"]) == (1, 1, 1, 1)
    for ours, theirs in (("sent", "sent"), ("delivered", "delivered"), ("bounced", "bounced"),
                         ("opened", "opens_total"), ("clicked", "clicks_total"),
                         ("opened_unique", "opens_unique"), ("clicked_unique", "clicks_unique"),
                         ("unsubscribed", "unsubscribes"), ("complained", "complaints")):
        assert body[ours] == totals[theirs], ours
    assert body["rates"]["open"] == totals["open_rate"] == 0.25
    assert body["rates"]["click_to_open"] == totals["click_to_open"] == 1.0
    page = soup(web.get(f"/reports/campaigns/{campaign['id']}"))
    assert page.select_one('[data-metric="opens_unique"] dd').get_text(" ", strip=True).split(" ")[0] == "1"

    # What went out stays as it went: no more changes, deletes or second sends.
    assert refused(api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"subject": "Oops"}), 409) == {
        "state": "completed"}
    assert refused(api.delete(f"/api/v1/campaigns/{campaign['id']}"), 409) == {"state": "completed"}
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/send"), 409) == {"state": "completed"}
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/pause"), 409) == {"state": "completed"}
    assert CaughtMessage.select().count() == 4


def test_a_retried_send_with_its_idempotency_key_sends_once(api, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news)
    headers = {"Idempotency-Key": f"send-{campaign['id']}"}
    first = api.post(f"/api/v1/campaigns/{campaign['id']}/send", headers=headers)
    again = api.post(f"/api/v1/campaigns/{campaign['id']}/send", headers=headers)
    assert first.status_code == again.status_code == 202 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert CaughtMessage.select().count() == 4
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/send"), 409) == {"state": "completed"}


def test_send_is_refused_with_the_pages_reasons(api, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news, subject="", from_email="news@unverified.example")
    response = api.post(f"/api/v1/campaigns/{campaign['id']}/send")
    refused(response)
    detail = response.get_json()["detail"]
    assert "Write a subject line" in detail and "unverified.example is not verified" in detail
    assert Campaign.get_by_id(campaign["id"]).state == "draft" and CaughtMessage.select().count() == 0


def test_schedule_at_a_moment_with_its_offset_then_cancel(api, ready_team):
    team, news = ready_team
    team.time_zone = "America/New_York"
    team.save()
    campaign = new_draft(api, news)
    at = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2))) + datetime.timedelta(days=2)
          ).replace(microsecond=0)
    assert "at" in refused(api.post(f"/api/v1/campaigns/{campaign['id']}/schedule",
                                    json={"at": at.replace(tzinfo=None).isoformat()}))
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/schedule",
                            json={"at": "9999-12-31T23:00:00-05:00"})) == {"at": "out of range"}
    past = (at - datetime.timedelta(days=3)).isoformat()
    assert "has passed" in refused(api.post(f"/api/v1/campaigns/{campaign['id']}/schedule", json={"at": past}))["at"]
    scheduled = api.post(f"/api/v1/campaigns/{campaign['id']}/schedule", json={"at": at.isoformat()})
    assert scheduled.status_code == 200, scheduled.get_data(as_text=True)
    assert scheduled.get_json()["state"] == "scheduled"
    stored = Campaign.get_by_id(campaign["id"]).scheduled_at
    assert stored == at.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    assert scheduled.get_json()["scheduled_at"].startswith(stored.isoformat())
    again = api.post(f"/api/v1/campaigns/{campaign['id']}/schedule", json={"at": at.isoformat()})
    assert refused(again, 409) == {"state": "scheduled"}
    assert "scheduled campaign cannot schedule" in again.get_json()["detail"]
    assert refused(api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"name": "x"}), 409) == {"state": "scheduled"}
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/resume"), 409) == {"state": "scheduled"}
    cancelled = api.post(f"/api/v1/campaigns/{campaign['id']}/cancel")
    assert cancelled.get_json()["state"] == "cancelled" and "API key" in cancelled.get_json()["state_reason"]
    assert CaughtMessage.select().count() == 0
    assert api.delete(f"/api/v1/campaigns/{campaign['id']}").status_code == 204


def test_pause_then_resume_sends_the_rest(app, api, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news)
    with app.app_context():  # published without its run, as the minute tick finds a due scheduled campaign
        publishing.publish(Campaign.get_by_id(campaign["id"]))
    paused = api.post(f"/api/v1/campaigns/{campaign['id']}/pause")
    assert paused.status_code == 200, paused.get_data(as_text=True)
    assert paused.get_json()["state"] == "paused"
    assert paused.get_json()["state_reason"] == f"Paused by the API key “{api.key.name}”"
    again = api.post(f"/api/v1/campaigns/{campaign['id']}/pause")
    assert refused(again, 409) == {"state": "paused"} and "paused campaign cannot pause" in again.get_json()["detail"]
    assert CaughtMessage.select().count() == 0
    resumed = api.post(f"/api/v1/campaigns/{campaign['id']}/resume")
    assert resumed.status_code == 200 and resumed.get_json()["state"] == "completed"
    assert CaughtMessage.select().count() == 4
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/resume"), 409) == {"state": "completed"}


def test_a_test_send_goes_through_the_teams_account_with_the_pages_limits(api, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news)
    response = api.post(f"/api/v1/campaigns/{campaign['id']}/test",
                        json={"addresses": ["qa@example.com"], "contact": "reader1@example.com"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [(r["address"], r["ok"]) for r in response.get_json()["results"]] == [("qa@example.com", True)]
    caught = CaughtMessage.get()
    assert caught.recipients == ["qa@example.com"]
    parsed = email.message_from_bytes(bytes(caught.raw), policy=email.policy.default)
    assert parsed["Subject"] == "[Test] Hello Reader 1"
    six = [f"qa{i}@example.com" for i in range(6)]
    assert "addresses" in refused(api.post(f"/api/v1/campaigns/{campaign['id']}/test", json={"addresses": six}))
    assert "Not a valid email address: nope" in refused(api.post(f"/api/v1/campaigns/{campaign['id']}/test",
                                                                 json={"addresses": ["nope"]}))["addresses"]
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/test",
                            json={"addresses": ["qa@example.com"], "contact": "nobody@example.com"})) == {
        "contact": "no such contact"}
    assert refused(api.post(f"/api/v1/campaigns/{campaign['id']}/test",
                            json={"addresses": ["qa@example.com"], "variant": "B"})) == {"variant": "no such variant"}
    assert CaughtMessage.select().count() == 1
    assert Campaign.get_by_id(campaign["id"]).state == "draft"


# --- Roles and teams ------------------------------------------------------------------------------

def test_sending_needs_the_send_permission_like_on_the_page(api, api_key_for, ready_team):
    team, news = ready_team
    campaign = new_draft(api, news)
    author, guest = api_key_for("author"), api_key_for("guest")
    assert author.patch(f"/api/v1/campaigns/{campaign['id']}", json={"subject": "By the author"}).status_code == 200
    for action in ("send", "pause", "resume", "cancel"):
        assert "send" in author.post(f"/api/v1/campaigns/{campaign['id']}/{action}").get_json()["detail"]
        assert author.post(f"/api/v1/campaigns/{campaign['id']}/{action}").status_code == 403
    refused(author.post(f"/api/v1/campaigns/{campaign['id']}/test", json={"addresses": ["qa@example.com"]}), 403)
    refused(guest.patch(f"/api/v1/campaigns/{campaign['id']}", json={"subject": "By the guest"}), 403)
    assert guest.get(f"/api/v1/campaigns/{campaign['id']}/stats").status_code == 200
    assert Campaign.get_by_id(campaign["id"]).state == "draft" and CaughtMessage.select().count() == 0


def test_another_teams_campaign_is_not_found(api, api_key_for, ready_team):
    outsider = api_key_for("admin", Team.create(name="Other"))
    theirs = outsider.post("/api/v1/campaigns", json={"name": "Theirs"}).get_json()["id"]
    for method, path, json in (("GET", "", None), ("PATCH", "", {"name": "Mine"}), ("DELETE", "", None),
                               ("GET", "/stats", None), ("POST", "/send", None), ("POST", "/pause", None),
                               ("POST", "/resume", None), ("POST", "/cancel", None),
                               ("POST", "/schedule", {"at": "2999-01-01T09:00:00+00:00"}),
                               ("POST", "/test", {"addresses": ["qa@example.com"]})):
        refused(api.call(method, f"/api/v1/campaigns/{theirs}{path}", json=json), 404)
    assert api.get("/api/v1/campaigns").get_json()["data"] == []
    assert Campaign.get_by_id(theirs).name == "Theirs" and Campaign.get_by_id(theirs).state == "draft"


def test_pages_walk_every_campaign_once(api, ready_team):
    team, news = ready_team
    made = [new_draft(api, news, name=f"C{i}")["id"] for i in range(5)]
    seen, url = [], "/api/v1/campaigns?limit=2"
    while url:
        body = api.get(url).get_json()
        seen += [row["id"] for row in body["data"]]
        url = body["next"]
    assert seen == sorted(made, reverse=True)
