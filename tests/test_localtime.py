"""Times on pages are in the team's time zone and say which (issue 9, point 19).

The database keeps naive UTC; pages used to print it raw, some marked UTC and some
not, beside scheduling in the team's zone. The local_time / local_date filters
(app/localtime.py) convert and label every one.
"""
import datetime
import pathlib
import re
import zoneinfo

from app import localtime
from app import security
from app.models import Segment
from app.models import SmtpAccount
from app.models import Team
from tests.conftest import soup

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_local_time_converts_and_labels_winter_summer_and_odd_zones():
    winter = datetime.datetime(2026, 1, 15, 12, 0)
    summer = datetime.datetime(2026, 7, 15, 12, 0)
    assert localtime.local_time(winter, zone=BERLIN) == "2026-01-15 13:00 CET"
    assert localtime.local_time(summer, zone=BERLIN) == "2026-07-15 14:00 CEST"
    assert localtime.local_time(winter, zone=zoneinfo.ZoneInfo("Asia/Kolkata")) == "2026-01-15 17:30 IST"
    # A zone without an abbreviation still says what it is.
    assert localtime.local_time(winter, zone=zoneinfo.ZoneInfo("America/Sao_Paulo")) == "2026-01-15 09:00 UTC-03"
    assert localtime.local_time(winter, "%H:%M:%S", zone=localtime.UTC) == "12:00:00 UTC"
    # Stored text such as a DNS check's "2026-01-15 12:00 UTC" is converted too; other text is left alone.
    assert localtime.local_time("2026-01-15 12:00 UTC", zone=BERLIN) == "2026-01-15 13:00 CET"
    assert localtime.local_time("never", zone=BERLIN) == "never"
    assert localtime.local_time(None) == ""
    # The date in the team's zone: 23:30 UTC is already the next day in Berlin.
    assert localtime.local_date(datetime.datetime(2026, 1, 15, 23, 30), zone=BERLIN) == "2026-01-16"
    assert localtime.iso_utc(winter) == "2026-01-15T12:00:00Z"


def test_without_a_team_times_are_utc_and_say_so(app):
    with app.test_request_context("/"):
        assert localtime.local_time(datetime.datetime(2026, 1, 15, 12, 0)) == "2026-01-15 12:00 UTC"


def test_pages_show_times_in_the_teams_zone(app, admin, web):
    team = Team.get(Team.name == "Acme")
    Team.update(time_zone="Europe/Berlin").where(Team.id == team.id).execute()
    with app.app_context():
        password = security.encrypt("secret")
    account = SmtpAccount.create(team=team, name="Relay", host="smtp.example.com", port=587, tls_mode="starttls",
                                 username="ada@example.com", password=password, per_day=1000,
                                 last_test_at=datetime.datetime(2026, 7, 1, 8, 15),
                                 last_test_result={"ok": True, "summary": "Connected."})
    line = soup(web.get("/sending/accounts")).select_one(f"#last-test-{account.id}").get_text(" ", strip=True)
    assert "2026-07-01 10:15 CEST" in line and "UTC" not in line
    Segment.create(team=team, name="Late", updated_at=datetime.datetime(2026, 1, 15, 23, 30))
    assert "2026-01-16" in soup(web.get("/segments/")).select_one("table").get_text()


def test_no_template_prints_a_stored_time_raw():
    """A sweep: every stored time goes through the filters (Loft's own mail, templates/system_mail, and the campaign
    scheduler, which already works in the team's zone, aside)."""
    root = pathlib.Path(__file__).parent.parent / "templates"
    # `errors.scheduled_at` is the message about a field, not a time.
    raw = re.compile(r"_at\.strftime|_until\.strftime|_at\.isoformat\(\)|(?<!errors)\.\w*_at \}\}|\{\{ \w*_at \}\}")
    offenders = [f"{path.relative_to(root)}: {line.strip()}"
                 for path in root.rglob("*.html") if path.parts[-2] != "system_mail"
                 for line in path.read_text().splitlines() if raw.search(line)]
    assert offenders == []
