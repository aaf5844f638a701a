"""Web hardening of issue 9 (point 7): downloads named in any language, HSTS over HTTPS."""
import csv
import io

import pytest

from app import create_app
from app import security
from app.cli import migrate
from tests.reports_support import build_campaign
from tests.reports_support import team_of


def test_a_report_csv_for_a_campaign_named_in_japanese(app, web, admin):
    campaign, _, _ = build_campaign(team_of(admin), ["x@example.org"], name="日本")
    response = web.get(f"/reports/campaigns/{campaign.id}.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition == (f'attachment; filename="report-{campaign.id}.csv"; '
                           f"filename*=UTF-8''report-{campaign.id}-%E6%97%A5%E6%9C%AC.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["section", "item", "metric", "value"]


@pytest.mark.parametrize("name, fallback", [
    ("report-2-spring-news.csv", None),
    ("report-3-café.csv", "report-3-cafe.csv"),
    ('x"; filename=evil.exe\r\nSet-Cookie: a=b.csv', "x-filename-evil.exe-Set-Cookie-a-b.csv"),
    ("日本.csv", "download.csv"),
    ("日本", "download"),
])
def test_attachment_names_are_safe_in_every_language(name, fallback):
    value = security.attachment(name)
    value.encode("latin-1")  # a header value must be Latin-1, or the response fails
    assert "\r" not in value and "\n" not in value
    if fallback is None:
        assert value == f'attachment; filename="{name}"'
    else:
        assert value.startswith(f'attachment; filename="{fallback}"; filename*=UTF-8\'\'')


def https_app(tmp_path, https):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "HTTPS": https,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"})
    with app.app_context():
        migrate()
    return app


def test_hsts_when_served_over_https(tmp_path):
    response = https_app(tmp_path, True).test_client().get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_no_hsts_over_plain_http(tmp_path):
    response = https_app(tmp_path, False).test_client().get("/login")
    assert "Strict-Transport-Security" not in response.headers


# --- /health keeps its detail for those who need it ---------------------------------------------

DETAIL = {"database", "queue", "queued_tasks", "version"}


def test_health_from_outside_says_only_the_status(client):
    response = client.get("/health", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_health_through_a_local_proxy_says_only_the_status(client):
    response = client.get("/health", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_health_on_this_machine_has_the_detail(client, address):
    body = client.get("/health", environ_base={"REMOTE_ADDR": address}).get_json()
    assert DETAIL <= set(body) and body["status"] == "ok"


def test_health_for_a_signed_in_user_has_the_detail(web, admin):
    body = web.get("/health", environ_base={"REMOTE_ADDR": "203.0.113.7"}).get_json()
    assert DETAIL <= set(body)


def test_health_degraded_is_503_for_everyone(client, monkeypatch):
    import sqlite3

    from tasks import huey

    def broken():
        raise sqlite3.OperationalError("unable to open database file")
    monkeypatch.setattr(huey, "pending_count", broken)
    response = client.get("/health", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 503 and response.get_json() == {"status": "degraded"}


def test_the_version_is_not_shown_to_visitors(app, client, admin):
    anonymous = app.test_client()
    assert app.config["VERSION"] not in anonymous.get("/login").get_data(as_text=True)
    assert f"Loft {app.config['VERSION']}" in client.get("/dashboard").get_data(as_text=True)
