"""schemathesis against the served OpenAPI document, over real HTTP (a werkzeug server on 127.0.0.1), one
pytest item per operation through schemathesis' own pytest integration.

Every operation gets schemathesis' default checks: no 5xx, a documented status code, the documented media
type, the documented response headers (a create's Location), the body matching its schema, schema-valid
requests accepted, schema-violating requests (negative data: wrong types, missing fields, values past
their bounds) refused, and methods a path does not have refused with 405. Examples come from its phases
(the schema's examples, its coverage cases, then hypothesis' fuzzing with EXAMPLES_PER_OPERATION
examples), derandomized so a run is repeatable.

The document is loaded once, when the module is collected, from an app made for that: schemathesis'
lazy loader (`from_fixture`) does not run under this pytest. Each item gets its own migrated database,
an Administrator key of a team with some rows (so ids such as 1 are found) whose mail goes to the
loopback mail catcher, and its own server.
"""
import threading

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from schemathesis.config import SchemathesisConfig
from werkzeug.serving import make_server

from app import create_app
from app.api import keys

EXAMPLES_PER_OPERATION = 10
# A schema-valid request may still be refused by a rule the schema cannot state: a name the team already
# uses, an id that is no row of the team's, an address that is not one, a cursor Loft did not give out.
# Those refusals are problem+json answers naming the field (400, 422), so they count as accepted answers.
ACCEPTED_STATUSES = ["2xx", "400", "401", "403", "404", "409", "422", "429"]


def served_document():
    app = create_app({"TESTING": True, "SECRET_KEY": "schema-only", "DATABASE_URL": "sqlite:///:memory:"})
    with app.test_client() as client:
        return client.get("/api/v1/openapi.json").get_json()


# Path ids the fixture makes exist (each kind's first row is id 1): half the generated requests use them,
# so reads, changes and deletes reach real rows; the other half keep generated ids (missing rows, bounds).
ROW_ID_PARAMETERS = ("campaign_id", "contact_id", "field_id", "list_id", "segment_id", "template_id", "entry_id",
                     "endpoint_id", "job_id", "tx_id")
config = SchemathesisConfig.from_dict({
    "seed": 14,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES}},
    "dictionaries": {"row-ids": {"values": [1]}, "addresses": {"values": ["reader0@example.com"]}},
    "parameters": {**{f"path.{name}": {"dictionary": "row-ids", "probability": 0.5} for name in ROW_ID_PARAMETERS},
                   "path.email": {"dictionary": "addresses", "probability": 0.5}},
})
schema = schemathesis.openapi.from_dict(served_document(), config=config)


@pytest.fixture
def admin_key(app, ready_team):
    """An Administrator key of a team that can send (its SMTP account is the test's loopback mail catcher)
    and has one row of each kind, so generated ids such as 1 find something; no request limit."""
    app.config["API_RATE_PER_MINUTE"] = 1_000_000
    team, news = ready_team
    with app.app_context():
        _, raw = keys.create_key(team, name="schemathesis", role="admin")
    client = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {raw}"}
    for path, body in (("/api/v1/fields", {"label": "Plan"}),
                       ("/api/v1/templates", {"name": "Frame", "body": "<div>{{ content }}</div>"}),
                       ("/api/v1/segments", {"name": "Active", "rules": {"op": "and", "rules": [
                           {"field": "status", "operator": "is", "value": "active"}]}}),
                       ("/api/v1/campaigns", {"name": "Spring", "subject": "Hello", "from_email": "news@acme.example",
                                              "body": "<p>Hi</p>", "audience": {"lists": [news.id]}}),
                       ("/api/v1/suppressions", {"value": "gone@example.net"}),
                       ("/api/v1/webhooks", {"url": "https://93.184.216.34/hooks"}),  # public: no DNS needed
                       ("/api/v1/contacts/bulk", {"contacts": [{"email": "bulk@example.com"}]}),
                       ("/api/v1/tx", {"to": "buyer@example.com", "from": "orders@acme.example", "subject": "Order",
                                       "html": "<p>Order</p>"})):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code in (201, 202), response.get_data(as_text=True)
    return raw


@pytest.fixture
def served(app):
    """The app on a real HTTP server on 127.0.0.1: its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, served, admin_key):
    case.call_and_validate(base_url=served, headers={"Authorization": f"Bearer {admin_key}"})


def test_every_operation_is_covered():
    """The loop above takes every operation the document has (a new one joins it without a change here)."""
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 60
    assert {"POST /api/v1/contacts", "GET /api/v1/campaigns/{campaign_id}/stats", "POST /api/v1/tx"} \
        <= {operation.label for operation in operations}
