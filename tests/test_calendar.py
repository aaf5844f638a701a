"""The campaign calendar: scheduled and sent campaigns on their days in the team's time zone."""
import datetime

from app.models import Campaign
from app.models import Team
from app.models import utcnow
from tests.conftest import soup
from tests.reports_support import team_of


def day_cell(page, day):
    found = page.select_one(f'table.calendar td[data-day="{day}"]')
    assert found is not None, f"no cell for {day}"
    return found


def names_in(element):
    return [a.get_text(strip=True) for a in element.select(".calendar-entries a")]


def test_campaigns_on_their_local_day(app, web, admin):
    team = team_of(admin)
    Team.update(time_zone="Europe/Berlin").where(Team.id == team.id).execute()
    # 23:30 UTC on 14 January is 00:30 on the 15th in Berlin.
    late = Campaign.create(team=team, name="Late night", state="completed",
                           started_at=datetime.datetime(2031, 1, 14, 23, 30))
    due = Campaign.create(team=team, name="Due", state="scheduled", scheduled_at=datetime.datetime(2031, 1, 20, 8, 0))
    Campaign.create(team=team, name="Draft with an old time", state="draft",
                    scheduled_at=datetime.datetime(2031, 1, 21, 8, 0))  # unscheduled: not on the calendar
    # 31 January 23:15 UTC is 1 February in Berlin: next month's.
    Campaign.create(team=team, name="Next month", state="completed", started_at=datetime.datetime(2031, 1, 31, 23, 15))
    Campaign.create(team=Team.create(name="Other"), name="Theirs", state="completed",
                    started_at=datetime.datetime(2031, 1, 10, 9, 0))
    response = web.get("/campaigns/calendar?month=2031-01")
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("h1").get_text(strip=True) == "Calendar: January 2031"
    assert names_in(day_cell(page, "2031-01-14")) == []
    assert names_in(day_cell(page, "2031-01-15")) == ["Late night"]
    assert day_cell(page, "2031-01-15").select_one("a")["href"] == f"/campaigns/{late.id}"
    assert "00:30" in day_cell(page, "2031-01-15").get_text()
    assert names_in(day_cell(page, "2031-01-20")) == ["Due"]
    assert "Scheduled" in day_cell(page, "2031-01-20").get_text()
    assert day_cell(page, "2031-01-20").select_one("a")["href"] == f"/campaigns/{due.id}"
    every = names_in(page.select_one("table.calendar"))
    assert sorted(every) == ["Due", "Late night"]
    # The agenda (what a phone shows) has the same campaigns under a heading per day.
    agenda = page.select_one(".calendar-agenda")
    assert [h.get_text(strip=True) for h in agenda.select("h2")] == ["Wednesday 15 January", "Monday 20 January"]
    assert names_in(agenda) == ["Late night", "Due"]
    february = soup(web.get("/campaigns/calendar?month=2031-02"))
    assert names_in(day_cell(february, "2031-02-01")) == ["Next month"]


def test_a_real_table_with_weekday_headers_and_month_navigation(web, admin):
    page = soup(web.get("/campaigns/calendar?month=2031-03"))
    table = page.select_one("table.calendar")
    assert [th.get_text(strip=True) for th in table.select("thead th")] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
                                                                           "Sun"]
    assert all(len(tr.select("td")) == 7 for tr in table.select("tbody tr"))
    assert table.select_one("tbody td")["data-day"] == "2031-02-24"  # the week holding 1 March starts on Monday
    nav = page.select_one("nav.calendar-nav")
    assert nav.select_one('a[rel="prev"]')["href"] == "/campaigns/calendar?month=2031-02"
    assert nav.select_one('a[rel="next"]')["href"] == "/campaigns/calendar?month=2031-04"
    assert page.select_one("#calendar-empty") is not None
    assert soup(web.get("/campaigns/calendar?month=2031-12")).select_one('a[rel="next"]')["href"].endswith("2032-01")


def test_today_is_marked_in_the_teams_zone(web, admin):
    team = team_of(admin)
    Team.update(time_zone="Pacific/Kiritimati").where(Team.id == team.id).execute()  # UTC+14
    today = (utcnow() + datetime.timedelta(hours=14)).date()
    page = soup(web.get("/campaigns/calendar"))
    marked = page.select('table.calendar td[aria-current="date"]')
    assert [td["data-day"] for td in marked] == [today.isoformat()]
    assert "(today)" in marked[0].get_text()


def test_a_bad_month_is_refused_clearly(web, admin):
    for value, message in (("2031-13", "such as 2026-12"), ("January", "such as 2026-12"),
                           ("1899-01", "between 2000 and 2100")):
        response = web.get(f"/campaigns/calendar?month={value}")
        assert response.status_code == 400
        page = soup(response)
        assert message in page.select_one("#e-month").get_text()
        assert page.select_one("#f-month")["aria-invalid"] == "true"
        assert page.select_one("table.calendar") is not None  # this month instead
