"""POST /api/v1/tx, GET /api/v1/tx/{id} and GET /api/v1/tx over real HTTP requests through the app, into a real
SMTP server on loopback (the queue runs inline in the tests; tests/test_transactional_lane.py has real consumers).
tests/test_api.py's role matrix and schemathesis run cover these operations too."""
import email
import email.policy

import pytest

from app.models import Contact
from app.models import SenderDomain
from app.models import Team
from app.models import TxMessage
from app.models import utcnow
from app.senders import domains
from tests.sending_support import make_account

RECEIPT = {"to": "buyer@example.com", "subject": "Order {{ data.number }}", "html": "<p>Order {{ data.number }}</p>",
           "data": {"number": 7}, "tags": ["receipt"]}


@pytest.fixture
def sink(ctx, admin, smtp):
    team = Team.get(Team.name == "Acme")
    team.default_from_email, team.default_from_name = "news@acme.test", "Acme"
    team.save()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    server = smtp()
    make_account(team, server.port)
    return server


def test_a_message_posted_is_sent_and_its_history_can_be_read(api, sink):
    response = api.post("/api/v1/tx", json=dict(RECEIPT, **{"from": "orders@acme.test", "from_name": "Acme Shop"}))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "sent" and body["to"] == "buyer@example.com" and body["from"] == "orders@acme.test"
    assert body["subject"] == "Order 7" and body["tags"] == ["receipt"]
    assert [event["status"] for event in body["history"]] == ["queued", "sent"]
    [(_from, rcpt, raw)] = sink.handler.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpt == "buyer@example.com" and message["Message-ID"] == f"<{body['message_id']}>"
    assert message["List-Unsubscribe"] is None
    assert TxMessage.get_by_id(body["id"]).api_key_id == api.key.id

    again = api.get(f"/api/v1/tx/{body['id']}").get_json()
    assert again["status"] == "sent" and [e["status"] for e in again["history"]] == ["queued", "sent"]


def test_the_list_pages_newest_first_and_filters_by_status(api, sink):
    ids = [api.post("/api/v1/tx", json=RECEIPT).get_json()["id"] for _ in range(3)]
    first = api.get("/api/v1/tx?limit=2").get_json()
    assert [item["id"] for item in first["data"]] == ids[::-1][:2] and first["data"][0]["history"] is None
    second = api.get(first["next"]).get_json()
    assert [item["id"] for item in second["data"]] == ids[:1] and second["next"] is None
    assert len(api.get("/api/v1/tx?status=sent").get_json()["data"]) == 3
    assert api.get("/api/v1/tx?status=failed").get_json()["data"] == []
    assert api.get("/api/v1/tx?status=lost").status_code == 422


def test_refusals_are_problems_with_each_field(api, sink):
    response = api.post("/api/v1/tx", json={"to": "not an address", "subject": "", "html": "<p>x</p>",
                                            "headers": {"Bcc": "spy@example.com"}})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert {"to", "subject", "headers.Bcc"} <= set(errors)
    assert api.post("/api/v1/tx", json=dict(RECEIPT, colour="red")).status_code == 422  # unknown field

    Contact.create(team=api.key.team, email="bounced@example.com", domain="example.com", status="bounced")
    refused = api.post("/api/v1/tx", json=dict(RECEIPT, to="bounced@example.com")).get_json()
    assert refused["status"] == 422 and "hard-bounced" in refused["errors"]["to"]
    assert TxMessage.select().count() == 0 and sink.handler.messages == []


def test_roles_and_other_teams(api, api_key_for, sink):
    tx_id = api.post("/api/v1/tx", json=RECEIPT).get_json()["id"]
    assert api_key_for("author").post("/api/v1/tx", json=RECEIPT).status_code == 403  # authors do not send
    assert api_key_for("guest").get(f"/api/v1/tx/{tx_id}").status_code == 200
    outsider = api_key_for("admin", Team.create(name="Other"))
    assert outsider.get(f"/api/v1/tx/{tx_id}").status_code == 404
    assert outsider.get("/api/v1/tx").get_json()["data"] == []


def test_a_suspended_or_capped_team_is_refused_with_409_and_the_reason_and_usage_counts_transactional(api, sink):
    from app import usage
    from app.teams import standing
    team = api.key.team
    assert api.post("/api/v1/tx", json=RECEIPT).status_code == 201
    assert usage.month_breakdown(team, usage.month_key(team))["domains"] == [("acme.test", 0, 1)]
    standing.suspend(team, "Spam complaints", by_user=None)
    refused = api.post("/api/v1/tx", json=RECEIPT)
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    assert "suspended by the instance administrator: Spam complaints" in refused.get_json()["detail"]
    standing.resume(team)
    standing.set_cap(team, 1)
    refused = api.post("/api/v1/tx", json=RECEIPT).get_json()
    assert refused["status"] == 409 and "monthly limit of 1 emails" in refused["detail"]
    assert TxMessage.select().count() == 1 and len(sink.handler.messages) == 1
