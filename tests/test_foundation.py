"""App factory, settings documentation, migrations, /health, logging, security headers."""
import json
import logging
import re
import sqlite3

import pytest

from app import config
from app.cli import migrate
from app.config import ROOT
from app.db import db
from tests.stack_support import sqlite_only


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*(LOFT_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    for name in config.settings():
        assert f"LOFT_{name}" in documented, f"LOFT_{name} is missing from .env.example"


def test_every_setting_is_read_from_the_environment():
    source = (ROOT / "app" / "config.py").read_text()
    for name in config.settings():
        assert f'"LOFT_{name}"' in source


def test_every_procfile_process_is_in_the_architecture_doc():
    processes = [line.split(":")[0] for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert processes == ["web", "worker", "sender", "mail", "tx", "submission"]
    for process in processes:
        assert f"`{process}`" in architecture


@sqlite_only("the SQLite connection's pragmas")
def test_sqlite_is_wal_with_foreign_keys_and_immediate_transactions(app):
    with app.app_context():
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.obj._lock_type == "IMMEDIATE"


def test_migrations_are_recorded_and_a_second_run_does_nothing(app, tmp_path):
    with app.app_context():
        assert migrate() == []
        applied = [row[0] for row in db.execute_sql("SELECT name FROM schema_migration ORDER BY name")]
    assert applied[:2] == ["0001_initial", "0002_contacts"]


@sqlite_only("compares SQLite files; tests/test_stack.py checks the PostgreSQL template copy")
def test_each_tests_database_copy_matches_a_fresh_migration(app, tmp_path):
    """conftest.py migrates once into a template file and copies it per test: the copy must hold exactly
    what running every migration on an empty file gives (schema, recorded migrations, seeded rows)."""
    def contents(path):
        connection = sqlite3.connect(path)
        try:
            schema = sorted(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())
            migrations = connection.execute("SELECT name FROM schema_migration ORDER BY name").fetchall()
            tables = [name for kind, name, _, _ in schema if kind == "table" and name != "schema_migration"]
            rows = {table: sorted(map(repr, connection.execute(f'SELECT * FROM "{table}"'))) for table in tables}
            return schema, migrations, rows, connection.execute("PRAGMA journal_mode").fetchone()
        finally:
            connection.close()

    from app import create_app
    fresh = tmp_path / "fresh.db"
    other = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{fresh}"})
    with other.app_context():
        assert migrate()[:1] == ["0001_initial"]
    db.close()
    assert contents(tmp_path / "loft.db") == contents(fresh)


def test_flask_db_upgrade_command_builds_a_fresh_database(app, tmp_path):
    fresh = tmp_path / "fresh.db"
    from app import create_app
    other = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{fresh}"})
    result = other.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "0001_initial" in result.output
    again = other.test_cli_runner().invoke(args=["db", "upgrade"])
    assert "up to date" in again.output
    tables = {row[0] for row in sqlite3.connect(fresh).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"user", "team", "membership", "invite", "caught_message", "contact"} <= tables
    from app.db import init_db
    init_db(app.config["DATABASE_URL"])  # the database proxy is process-wide: give it back


def test_app_code_never_creates_tables():
    for path in (ROOT / "app").rglob("*.py"):
        assert "create_tables" not in path.read_text(), f"{path} creates tables; write a migration instead"


def test_health_reports_ok_with_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok" and body["queue"] == "ok"
    assert body["version"]
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_503_when_the_database_does_not_answer(app, client, tmp_path):
    with app.app_context():
        db.close()
    # Point the app at a path that cannot be opened: a directory.
    broken = tmp_path / "not-a-db"
    broken.mkdir()
    from app.db import init_db
    init_db(f"sqlite:///{broken}")
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["database"].startswith("error")


def test_health_is_503_when_the_queue_does_not_answer(client, monkeypatch):
    from tasks import huey

    def broken():
        raise sqlite3.OperationalError("unable to open database file")
    # The queue storage itself is replaced by one that fails, as a vanished huey.db would.
    monkeypatch.setattr(huey, "pending_count", broken)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["queue"].startswith("error")


def test_request_id_is_honoured_and_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])


def test_log_lines_are_json_with_the_request_id(client, caplog):
    from app.logs import JsonFormatter
    with caplog.at_level(logging.INFO, logger="loft.request"):
        client.get("/login", headers={"X-Request-ID": "req-42"})
    records = [r for r in caplog.records if r.name == "loft.request"]
    assert records
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["msg"] == "request"
    assert line["path"] == "/login"
    assert line["status"] in (200, 302)
    assert line["request_id"] == "req-42"


def test_security_headers_on_pages(client):
    response = client.get("/setup")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_htmx_is_vendored_and_pinned_to_2_0():
    vendored = list((ROOT / "static" / "vendor").glob("htmx-2.0.*.min.js"))
    assert len(vendored) == 1
    assert vendored[0].stat().st_size > 40_000


def test_dashboard_counts_and_next_steps(web, admin):
    from app.models import Contact
    from app.models import Team
    from tests.conftest import soup
    page = soup(web.get("/dashboard"))
    steps = page.select("ol.steps li")
    assert len(steps) == 7 and all("todo" in li["class"] for li in steps)
    team = Team.get(Team.name == "Acme")
    team.postal_address = "1 Main St"
    team.save()
    Contact.create(team=team, email="a@example.com", domain="example.com")
    page = soup(web.get("/dashboard"))
    done = [li.text.strip() for li in page.select("ol.steps li.done")]
    assert any("postal address" in text for text in done) and any("contacts" in text for text in done)
    counts = {div.select_one("dt").text: div.select_one("dd").text for div in page.select("dl.stats div")}
    assert counts["Active contacts"] == "1"


def test_sending_settings_read_lists_and_per_domain_limits(monkeypatch):
    from app.sending.engine import Settings
    monkeypatch.setenv("LOFT_SEND_RETRY_DELAYS", "30, 120,600")
    monkeypatch.setenv("LOFT_SEND_DOMAIN_LIMITS", "Gmail.com=3, yahoo.com=4")
    assert config._ints("LOFT_SEND_RETRY_DELAYS", "60") == (30, 120, 600)
    assert config._limits("LOFT_SEND_DOMAIN_LIMITS", "") == {"gmail.com": 3, "yahoo.com": 4}
    settings = Settings.from_config({"SEND_RETRY_DELAYS": (30, 120, 600), "SEND_DOMAIN_LIMITS": {"gmail.com": 3},
                                     "SEND_DOMAIN_CONCURRENCY": 7, "SEND_ACCOUNT_FAILURE_LIMIT": 4,
                                     "SEND_ACCOUNT_PAUSE_SECONDS": 60, "SEND_SMTP_TIMEOUT": 20})
    assert (settings.retry_delays, settings.max_attempts, settings.domain_limits, settings.domain_concurrency) == (
        (30, 120, 600), 4, {"gmail.com": 3}, 7)


@pytest.mark.parametrize("proxies, seen", [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_behind_a_proxy_loft_sees_the_visitors_address_only_when_told_to(tmp_path, proxies, seen):
    from flask import request

    from app import create_app
    from app.tracking.fastpath import FastPath
    app = create_app({"TESTING": True, "SECRET_KEY": "k", "PROXIES": proxies,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'loft.db'}"})

    def address():
        return f"{request.remote_addr} {request.scheme}"
    address.public = True
    app.add_url_rule("/_address", "address", address)
    answer = app.test_client().get("/_address", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                   headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert answer.get_data(as_text=True) == f"{seen} {'https' if proxies else 'http'}"
    # The tracking fast path sits inside the proxy fix, so opens and clicks get the visitor's address too.
    inner = app.wsgi_app.app if proxies else app.wsgi_app
    assert isinstance(inner, FastPath)
