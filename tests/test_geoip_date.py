"""The campaign report says which GeoIP database its countries come from, and warns when it is more than a
year old (issue 9, point 21): the bundled GeoLite2 data is from 2018."""
import datetime
from pathlib import Path

import _maxminddb_geolite2

from app.reports import geo
from tests.conftest import soup
from tests.reports_support import build_campaign
from tests.reports_support import team_of

BUNDLED_FILE = str(Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb")
BUILT = datetime.date(2018, 7, 3)


def report_page(web, admin):
    campaign, _, _ = build_campaign(team_of(admin), ["x@example.org"])
    response = web.get(f"/reports/campaigns/{campaign.id}")
    assert response.status_code == 200
    return soup(response)


def test_database_info_reads_the_build_date_from_the_file():
    info = geo.database_info("", today=datetime.date(2018, 9, 1))
    assert info == {"type": "GeoLite2-City", "built": BUILT, "age_days": 60, "stale": False, "bundled": True}
    assert geo.database_info("", today=datetime.date(2019, 7, 4))["stale"] is True
    assert geo.database_info(BUNDLED_FILE, today=BUILT)["bundled"] is False
    assert geo.database_info("/nonexistent/GeoLite2-Country.mmdb") is None


def test_the_report_names_the_bundled_database_and_warns_it_is_old(app, web, admin):
    page = report_page(web, admin)
    assert page.select_one("#geoip-date").get_text(" ", strip=True) == (
        "Countries from the GeoLite2-City database built on 3 July 2018 (the copy bundled with Loft).")
    warning = page.select_one("#geoip-stale").get_text(" ", strip=True)
    assert "years old" in warning and "LOFT_GEOIP_DB" in warning


def test_a_current_database_set_with_loft_geoip_db_gets_no_warning(app, web, admin, monkeypatch):
    app.config["GEOIP_DB"] = BUNDLED_FILE  # standing in for a fresh download: only its age is faked
    monkeypatch.setattr(geo, "STALE_AFTER", datetime.date.today() - BUILT + datetime.timedelta(days=1))
    page = report_page(web, admin)
    assert page.select_one("#geoip-date").get_text(" ", strip=True) == (
        "Countries from the GeoLite2-City database built on 3 July 2018.")
    assert page.select_one("#geoip-stale") is None


def test_a_database_that_cannot_be_opened_is_said_plainly(app, web, admin):
    app.config["GEOIP_DB"] = "/nonexistent/GeoLite2-Country.mmdb"
    page = report_page(web, admin)
    assert "No GeoIP database could be opened" in page.select_one("#geoip-date").text
