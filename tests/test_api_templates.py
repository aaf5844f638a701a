"""/api/v1/templates through the template services the pages call: what the editor refuses the API refuses,
at its field; pages walk by id; another team's templates are not found."""
from app.models import Team
from app.models import Template

PROBLEM = "application/problem+json"
LAYOUT = "<html><body><header>Acme</header>{{ content }}<footer>Bye</footer></body></html>"


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()["errors"]


def test_create_get_update_delete_a_template(api):
    created = api.post("/api/v1/templates", json={"name": "  Monthly   letter ", "kind": "markdown",
                                                  "body": "# Hello {{ contact.name }}"})
    assert created.status_code == 201, created.get_data(as_text=True)
    template = created.get_json()
    assert template["name"] == "Monthly letter" and template["kind"] == "markdown"
    assert template["body"] == "# Hello {{ contact.name }}" and template["is_layout"] is False
    assert template["blocks"] is None and template["created_at"].endswith("Z")
    assert api.get(f"/api/v1/templates/{template['id']}").get_json() == template

    changed = api.patch(f"/api/v1/templates/{template['id']}", json={"name": "Monthly news"})
    assert changed.status_code == 200
    assert changed.get_json()["name"] == "Monthly news"
    assert changed.get_json()["body"] == template["body"] and changed.get_json()["kind"] == "markdown"
    changed = api.patch(f"/api/v1/templates/{template['id']}", json={"kind": "html", "body": LAYOUT})
    assert changed.get_json()["kind"] == "html" and changed.get_json()["is_layout"] is True
    assert Template.get_by_id(template["id"]).name == "Monthly news"

    assert api.delete(f"/api/v1/templates/{template['id']}").status_code == 204
    assert Template.get_or_none(Template.id == template["id"]) is None
    refused(api.get(f"/api/v1/templates/{template['id']}"), 404)


def test_a_template_is_refused_like_in_the_editor(api):
    api.post("/api/v1/templates", json={"name": "Taken", "body": "<p>Hi</p>"})
    assert "already has this name" in refused(api.post("/api/v1/templates", json={"name": "Taken",
                                                                                  "body": "<p>Hi</p>"}))["name"]
    assert "Write the body" in refused(api.post("/api/v1/templates", json={"name": "Empty", "body": "  "}))["body"]
    errors = refused(api.post("/api/v1/templates", json={"name": "Broken", "body": "<p>{% if %}</p>"}))
    assert set(errors) == {"body"}
    assert set(refused(api.post("/api/v1/templates", json={"name": "X", "kind": "pdf", "colour": 1}))) == {
        "kind", "colour"}
    assert refused(api.post("/api/v1/templates", json={"name": "X", "kind": "blocks", "body": "<p>Hi</p>"})) == {
        "body": "not used by a blocks template"}
    assert refused(api.post("/api/v1/templates", json={"name": "X", "kind": "blocks", "starter": "nope"})) == {
        "starter": "no such block template"}
    taken = Template.get(Template.name == "Taken")
    assert api.post("/api/v1/templates", json={"name": "Other", "body": "<p>x</p>"}).status_code == 201
    assert "already has this name" in refused(api.patch(f"/api/v1/templates/{taken.id}", json={"name": "Other"}))[
        "name"]
    assert Template.get_by_id(taken.id).name == "Taken"
    assert sorted(t.name for t in Template.select()) == ["Other", "Taken"]


def test_a_blocks_template_changes_only_its_name_here(api):
    created = api.post("/api/v1/templates", json={"name": "Blocks", "kind": "blocks"})
    assert created.status_code == 201, created.get_data(as_text=True)
    template = created.get_json()
    assert template["kind"] == "blocks" and isinstance(template["blocks"], dict)
    assert refused(api.patch(f"/api/v1/templates/{template['id']}", json={"body": "<p>Hi</p>"})) == {
        "body": "a blocks template keeps its blocks"}
    renamed = api.patch(f"/api/v1/templates/{template['id']}", json={"name": "Block letter"}).get_json()
    assert renamed["name"] == "Block letter" and renamed["kind"] == "blocks"
    assert renamed["blocks"] == template["blocks"]


def test_pages_walk_every_template_once(api):
    made = [api.post("/api/v1/templates", json={"name": f"T{i}", "body": f"<p>{i}</p>"}).get_json()["id"]
            for i in range(7)]
    seen, url, pages = [], "/api/v1/templates?limit=3", 0
    while url:
        body = api.get(url).get_json()
        assert len(body["data"]) <= 3
        seen += [template["id"] for template in body["data"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(made, reverse=True)
    assert "cursor" in refused(api.get("/api/v1/templates?cursor=bm9wZQ"), 400)


def test_another_teams_template_is_not_found_and_roles_apply(api, api_key_for):
    outsider = api_key_for("admin", Team.create(name="Other"))
    theirs = outsider.post("/api/v1/templates", json={"name": "Theirs", "body": "<p>x</p>"}).get_json()["id"]
    for method, json in (("GET", None), ("PATCH", {"name": "Mine"}), ("DELETE", None)):
        refused(api.call(method, f"/api/v1/templates/{theirs}", json=json), 404)
    assert api.get("/api/v1/templates").get_json()["data"] == []
    assert Template.get_by_id(theirs).name == "Theirs"
    guest, author = api_key_for("guest"), api_key_for("author")
    refused(guest.post("/api/v1/templates", json={"name": "G", "body": "<p>x</p>"}), 403)
    assert author.post("/api/v1/templates", json={"name": "A", "body": "<p>x</p>"}).status_code == 201
    assert [t["name"] for t in guest.get("/api/v1/templates").get_json()["data"]] == ["A"]
