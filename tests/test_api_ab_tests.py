"""A/B tests through /api/v1/campaigns: what the campaign page's A/B section sets (what is tested, the
sample, the wait, the metric, variants B to D) is set and read through POST and PATCH, saved by the same
service with the same rules (a refusal is a 422 at the API's name of the field), and the statistics give
each variant's figures as the report's A/B table counts them."""
from app.campaigns import ab_testing
from app.campaigns import drafts
from app.models import Campaign
from app.models import Team
from app.models import Variant
from app.reports import services as report_services

PROBLEM = "application/problem+json"


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()["errors"]


def draft_body(news, **overrides):
    body = {"name": "Launch", "subject": "Hello", "from_name": "Acme", "from_email": "news@acme.example",
            "body": "<p>Hi <a href=\"https://acme.example/post\">read</a></p>", "audience": {"lists": [news.id]}}
    body.update(overrides)
    return body


def stored_variants(campaign_id):
    return [(v.label, v.subject, v.preheader, v.from_name) for v in
            Variant.select().where(Variant.campaign == campaign_id).order_by(Variant.label)]


def test_a_subject_test_is_created_read_and_shown_on_the_page_as_given(api, web, ready_team):
    team, news = ready_team
    ab_test = {"tests": "subject", "sample_percent": 30, "wait_minutes": 90, "metric": "opens",
               "variants": [{"subject": "Second", "preheader": "Two"}, {"subject": "Third"}]}
    created = api.post("/api/v1/campaigns", json=draft_body(news, ab_test=ab_test))
    assert created.status_code == 201, created.get_data(as_text=True)
    answer = created.get_json()["ab_test"]
    assert {key: answer[key] for key in ("tests", "sample_percent", "wait_minutes", "metric", "decided_at")} == {
        "tests": "subject", "sample_percent": 30, "wait_minutes": 90, "metric": "opens", "decided_at": None}
    assert [(v["label"], v["subject"], v["preheader"], v["is_winner"]) for v in answer["variants"]] == [
        ("A", "Hello", "", False), ("B", "Second", "Two", False), ("C", "Third", "", False)]
    campaign_id = created.get_json()["id"]
    assert stored_variants(campaign_id) == [("A", "Hello", "", ""), ("B", "Second", "Two", ""),
                                            ("C", "Third", "", "")]
    assert api.get(f"/api/v1/campaigns/{campaign_id}").get_json()["ab_test"] == answer
    # The builder form shows what the API set: the same stored settings and variants.
    form = drafts.form_of(Campaign.get_by_id(campaign_id))
    assert (form["ab_enabled"], form["ab_sample_percent"], form["ab_metric"], form["b_subject"],
            form["c_subject"]) == ("1", "30", "opens", "Second", "Third")


def test_a_patch_replaces_the_test_and_enabled_false_removes_it(api, ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news, ab_test={
        "tests": "subject", "variants": [{"subject": "B"}, {"subject": "C"}]})).get_json()
    changed = api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"ab_test": {
        "tests": "from_name", "metric": "clicks", "variants": [{"from_name": "Ann at Acme"}]}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["ab_test"]["tests"] == "from_name"
    assert stored_variants(campaign["id"]) == [("A", "", "", "Acme"), ("B", "", "", "Ann at Acme")]
    # A PATCH without ab_test keeps it (the variants are saved again with the draft: new ids, same values).
    kept = api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"name": "Renamed"}).get_json()["ab_test"]

    def without_ids(test):
        return dict(test, variants=[{k: v for k, v in variant.items() if k != "id"} for variant in test["variants"]])
    assert without_ids(kept) == without_ids(changed.get_json()["ab_test"])
    removed = api.patch(f"/api/v1/campaigns/{campaign['id']}", json={"ab_test": {"enabled": False}})
    assert removed.status_code == 200 and removed.get_json()["ab_test"] is None
    assert stored_variants(campaign["id"]) == [] and Campaign.get_by_id(campaign["id"]).ab_test == {}


def test_a_content_and_a_send_time_test(api, ready_team):
    team, news = ready_team
    content = api.post("/api/v1/campaigns", json=draft_body(news, ab_test={
        "tests": "content", "variants": [{"body": "<p>Other <a href=\"https://acme.example/b\">b</a></p>"}]}))
    assert content.status_code == 201, content.get_data(as_text=True)
    assert "Other" in content.get_json()["ab_test"]["variants"][1]["body"]
    timed = api.post("/api/v1/campaigns", json=draft_body(news, ab_test={
        "tests": "send_time", "variants": [{"send_at": "2099-03-01T09:30:00+01:00"}]}))
    assert timed.status_code == 201, timed.get_data(as_text=True)
    assert timed.get_json()["ab_test"]["variants"][1]["send_at"] == "2099-03-01T08:30:00Z"


def test_the_forms_rules_refuse_at_the_apis_field_names_and_store_nothing(api, ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news)).get_json()
    path = f"/api/v1/campaigns/{campaign['id']}"
    cases = [
        ({"tests": "subject", "variants": []}, "ab_test.variants.0.subject", "variant B"),
        ({"tests": "subject", "variants": [{"subject": ""}, {"subject": "C"}]}, "ab_test.variants.0.subject",
         "Fill in variant B"),
        ({"tests": "subject", "variants": [{"subject": "{% if %}"}]}, "ab_test.variants.0.subject", "cannot be used"),
        ({"tests": "from_name", "variants": [{"from_name": "Two\nlines"}]}, "ab_test.variants.0.from_name",
         "one line"),
        ({"tests": "send_time", "variants": [{"send_at": "2001-01-01T09:00:00+00:00"}]},
         "ab_test.variants.0.send_at", "passed"),
        ({"tests": "subject", "sample_percent": 60, "variants": [{"subject": "B"}]}, "ab_test.sample_percent", ""),
        ({"tests": "subject", "wait_minutes": 1, "variants": [{"subject": "B"}]}, "ab_test.wait_minutes", ""),
        ({"tests": "colour", "variants": [{"subject": "B"}]}, "ab_test.tests", ""),
        ({"tests": "subject", "variants": [{"subject": "B", "colour": "red"}]}, "ab_test.variants.0.colour", ""),
        ({"tests": "subject", "variants": [{"subject": "B"}] * 4}, "ab_test.variants", ""),
    ]
    for ab_test, field, words in cases:
        errors = refused(api.patch(path, json={"ab_test": ab_test}))
        assert field in errors and words in errors[field], (ab_test, errors)
    assert stored_variants(campaign["id"]) == [] and Campaign.get_by_id(campaign["id"]).ab_test == {}
    # A refused create leaves no campaign behind.
    before = Campaign.select().count()
    refused(api.post("/api/v1/campaigns", json=draft_body(news, ab_test={"tests": "subject", "variants": []})))
    assert Campaign.select().count() == before


def test_only_roles_that_edit_content_set_a_test_and_other_teams_campaigns_are_not_found(api, api_key_for,
                                                                                         ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news)).get_json()
    body = {"ab_test": {"tests": "subject", "variants": [{"subject": "B"}]}}
    viewer = api_key_for("guest")
    assert refused(viewer.patch(f"/api/v1/campaigns/{campaign['id']}", json=body), 403) == {}
    assert viewer.get(f"/api/v1/campaigns/{campaign['id']}").get_json()["ab_test"] is None
    outsider = api_key_for("admin", Team.create(name="Other team"))
    refused(outsider.patch(f"/api/v1/campaigns/{campaign['id']}", json=body), 404)
    assert stored_variants(campaign["id"]) == []


def test_statistics_give_each_variants_figures_as_the_report(api, web, ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news, ab_test={
        "tests": "subject", "sample_percent": 50, "variants": [{"subject": "Other"}]})).get_json()
    sent = api.post(f"/api/v1/campaigns/{campaign['id']}/send")
    assert sent.status_code == 202, sent.get_data(as_text=True)
    stats = api.get(f"/api/v1/campaigns/{campaign['id']}/stats").get_json()
    rows = stats["variants"]
    assert [(row["variant"], row["part"]) for row in rows] == [("A", "test"), ("B", "test")]
    assert sum(row["sent"] for row in rows) == 2  # half of the four recipients: the sample
    with web.client.application.app_context():
        report = report_services.campaign_report(Campaign.get_by_id(campaign["id"]))
    columns = report["ab_table"]["columns"]
    assert [(c["variant"].label, c["sent"], c["delivered"], c["opens"], c["clicks"]) for c in columns] == [
        (row["variant"], row["sent"], row["delivered"], row["opened_unique"], row["clicked_unique"]) for row in rows]
    # The winner picked through the API: the rest of the audience gets it, and is its own row.
    winner_path = f"/api/v1/campaigns/{campaign['id']}/ab/winner"
    assert refused(api.post(winner_path, json={"variant": "C"})) == {"variant": "no such variant"}
    picked = api.post(winner_path, json={"variant": "B"})
    assert picked.status_code == 200, picked.get_data(as_text=True)
    assert picked.get_json()["ab_test"]["variants"][1]["is_winner"] is True
    assert picked.get_json()["ab_test"]["decided_at"] is not None
    rows = api.get(f"/api/v1/campaigns/{campaign['id']}/stats").get_json()["variants"]
    assert [(row["variant"], row["part"]) for row in rows] == [("A", "test"), ("B", "test"), ("B", "rest")]
    assert sum(row["sent"] for row in rows) == 4  # the held half went out with the winner
    assert "already picked" in api.post(winner_path, json={"variant": "A"}).get_json()["detail"]
    assert ab_testing.variant_of(Campaign.get_by_id(campaign["id"]), label="B").is_winner


def test_a_winner_is_picked_only_while_the_campaign_sends_and_only_by_roles_that_send(api, api_key_for, ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news, ab_test={
        "tests": "subject", "variants": [{"subject": "Other"}]})).get_json()
    winner_path = f"/api/v1/campaigns/{campaign['id']}/ab/winner"
    assert refused(api.post(winner_path, json={"variant": "B"}), 409) == {"state": "draft"}
    assert refused(api_key_for("author").post(winner_path, json={"variant": "B"}), 403) == {}
    outsider = api_key_for("admin", Team.create(name="Other team"))
    refused(outsider.post(winner_path, json={"variant": "B"}), 404)
    assert not any(variant.is_winner for variant in Variant.select())


def test_a_campaign_without_a_test_has_no_variant_figures(api, ready_team):
    team, news = ready_team
    campaign = api.post("/api/v1/campaigns", json=draft_body(news)).get_json()
    assert api.get(f"/api/v1/campaigns/{campaign['id']}/stats").get_json()["variants"] is None
