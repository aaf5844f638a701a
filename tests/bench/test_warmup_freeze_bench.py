"""Benchmark: freezing a 200,000-contact audience in engagement order (a warm-up plan active) against the
plain contact-id ranges (issue 15, point 4). No figure is set by the issue; this shows what the order costs.

Run with `make bench` (or `.venv/bin/python -m pytest -q -s tests/bench/test_warmup_freeze_bench.py`).
SQLite; the contacts are written straight through the connection (executemany). Prints the figures; nothing
asserts on time."""
import datetime
import time

import pytest

from app import create_app
from app.cli import migrate
from app.db import db
from app.models import Campaign
from app.models import MailingList
from app.models import Send
from app.models import Team
from app.sending import ledger

CONTACTS = 200_000


@pytest.fixture(scope="module")
def audience(tmp_path_factory):
    path = tmp_path_factory.mktemp("warmupfreeze") / "loft.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        migrate()
        team = Team.create(name="Bench")
        newsletter = MailingList.create(team=team, name="Newsletter")
        now = datetime.datetime(2026, 12, 1)
        connection = db.connection()
        with db.atomic():
            connection.executemany(
                "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source,"
                " consent_ip, consent_text, created_at, updated_at, last_activity_at)"
                " VALUES (?, ?, 'example.com', '', 'active', '{}', '', '', '', '', ?, ?, ?)",
                ((team.id, f"reader{i}@example.com", now, now,
                  None if i % 3 == 0 else now - datetime.timedelta(minutes=(i * 7919) % 500_000))
                 for i in range(CONTACTS)))
            connection.execute("INSERT INTO subscription (contact_id, list_id, status, created_at)"
                               " SELECT id, ?, 'subscribed', ? FROM contact", (newsletter.id, now))
        yield app, team, newsletter
    db.close()


def test_freeze_in_engagement_order_against_id_ranges(audience, monkeypatch):
    app, team, newsletter = audience
    figures = {}
    with app.app_context():
        for engaged in (False, True, False, True):
            monkeypatch.setattr(ledger, "engaged_first", lambda campaign, on=engaged: on)
            campaign = Campaign.create(team=team, name=f"Freeze {engaged}", from_email="news@acme.example",
                                       audience={"lists": [newsletter.id]})
            started = time.perf_counter()
            assert ledger.freeze_audience(campaign) == CONTACTS
            figures.setdefault(engaged, []).append(time.perf_counter() - started)
            Send.delete().where(Send.campaign == campaign).execute()
    for engaged, seconds in figures.items():
        label = "engagement order" if engaged else "contact-id ranges"
        print(f"\nfreeze {CONTACTS:,} contacts in {label}: best {min(seconds):.2f} s of {len(seconds)}")
