"""What the schemathesis run found, each kept as a regression test: a value in another JSON type than the
documented one is refused at its field (it was quietly converted), and a forged huge id is a 404 with
every method (it was a 405 with all but the first)."""
import pytest

PROBLEM = "application/problem+json"


def refused_at(response, field):
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert field in response.get_json()["errors"], response.get_json()
    return response.get_json()


@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/contacts/bulk", {"contacts": [{"email": "a@example.com"}], "update_existing": 0}, "update_existing"),
    ("/api/v1/lists", {"name": "News", "double_opt_in": "yes"}, "double_opt_in"),
    ("/api/v1/campaigns", {"name": "Spring", "track_opens": 1}, "track_opens"),
    ("/api/v1/campaigns", {"name": "Spring", "audience": {"lists": ["1"]}}, "audience.lists.0"),
    ("/api/v1/contacts", {"email": 5}, "email"),
])
def test_a_value_of_another_json_type_is_refused_at_its_field(api, path, body, field):
    refused_at(api.post(path, json=body), field)


def test_query_strings_still_take_numbers_and_an_rfc3339_time_still_parses(api):
    assert api.get("/api/v1/contacts?limit=5").status_code == 200
    refused_at(api.get("/api/v1/contacts?limit=five"), "limit")
    campaign = api.post("/api/v1/campaigns", json={"name": "Later"}).get_json()
    response = api.post(f"/api/v1/campaigns/{campaign['id']}/schedule", json={"at": "2001-01-01T09:30:00+01:00"})
    refused_at(response, "at")  # parsed, then refused as past: not a type error
    assert "passed" in response.get_json()["errors"]["at"]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_a_huge_id_is_404_with_every_method(api, method):
    for path in ("/api/v1/campaigns/2147483648", "/api/v1/contacts/99999999999", "/api/v1/lists/2147483648"):
        response = api.client.open(path, method=method, json={} if method == "PATCH" else None,
                                   headers={"Authorization": f"Bearer {api.raw_key}"})
        assert response.status_code == 404, (method, path, response.get_data(as_text=True))
        assert response.mimetype == PROBLEM


def test_a_method_a_path_does_not_have_is_still_405(api):
    response = api.client.put("/api/v1/campaigns/1", headers={"Authorization": f"Bearer {api.raw_key}"})
    assert response.status_code == 405 and response.mimetype == PROBLEM
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}
