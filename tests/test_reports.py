"""Campaign reports and the team dashboard (issue 5): real events, the real aggregator, real pages.

Events are made the way the product makes them: "sent" rows as the engine
writes them, opens, clicks and unsubscribes through the public tracking
endpoints over HTTP, bounces and complaints through app.bounces.outcomes.
Then the aggregator runs and the numbers are read back from the pages with
BeautifulSoup selectors.
"""
import csv
import datetime
import io
from pathlib import Path

import pytest
from peewee import fn

from app import tokens
from app.bounces import outcomes
from app.bounces.parse import report_for
from app.db import db
from app.models import Campaign
from app.models import CampaignStat
from app.models import Event
from app.models import Link
from app.models import Team
from app.models import TeamDay
from app.models import utcnow
from app.reports import rollup
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.reports_support import APPLE_MAIL
from tests.reports_support import build_campaign
from tests.reports_support import team_of

GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SCANNER = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"
GB_IP = "81.2.69.160"  # in the GeoLite2 test ranges: United Kingdom
US_IP = "8.8.8.8"


def sign(purpose, send_id):
    """A tracking token, signed inside a short app context (no context is kept around the
    requests: a pushed one would share flask.g, and so the signed-in user, between them)."""
    with _app.app_context():
        return tokens.sign(purpose, send_id)


def in_app(function, *args, **kwargs):
    with _app.app_context():
        return function(*args, **kwargs)


def pixel(public, send, agent, ip):
    response = public.get(f"/o/{sign('open', send.id)}.gif", headers={"User-Agent": agent},
                          environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 200


def click(public, send, link, agent, ip, method="GET"):
    url = f"/c/{sign('click', send.id)}/{link.id}"
    response = (public.head if method == "HEAD" else public.get)(url, headers={"User-Agent": agent},
                                                                 environ_base={"REMOTE_ADDR": ip})
    assert response.status_code in (301, 302, 303, 307), response.status_code


def metric(page, name):
    """The number shown for a metric of the summary (first number in the cell)."""
    cell = page.select_one(f'[data-metric="{name}"] dd') or page.select_one(f'[data-metric="{name}"] td')
    assert cell is not None, f"no metric {name}"
    return cell.get_text(" ", strip=True).split(" ")[0]


_app = None


@pytest.fixture(autouse=True)
def remember_app(app):
    global _app
    _app = app
    yield
    _app = None


@pytest.fixture
def story(app, admin, public):
    """Four recipients, two links, and what happened to them through the real endpoints."""
    team = team_of(admin)
    campaign, sends, links = build_campaign(
        team, ["ann@gmail.com", "bob@example.org", "cy@example.org", "dee@yahoo.com"])
    ann, bob, cy, dee = sends
    pixel(public, ann, APPLE_MAIL, GB_IP)  # a person, twice
    pixel(public, ann, APPLE_MAIL, GB_IP)
    pixel(public, ann, "Mozilla/5.0", GB_IP)  # Apple Mail Privacy Protection prefetch: a machine
    pixel(public, bob, GMAIL_PROXY, "66.249.84.1")  # Gmail's proxy: a person, country unknown
    pixel(public, cy, APPLE_MAIL, "17.58.101.4")  # from Apple's network: a machine
    click(public, ann, links[0], APPLE_MAIL, GB_IP)
    click(public, ann, links[0], APPLE_MAIL, GB_IP)
    click(public, ann, links[1], APPLE_MAIL, GB_IP)
    click(public, bob, links[1], BROWSER, US_IP)
    click(public, cy, links[0], SCANNER, US_IP)  # a link scanner
    response = public.post(f"/u/{sign('unsubscribe', bob.id)}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code < 400
    in_app(outcomes.apply_smtp_reply, dee.id, 550, "5.1.1 <dee@yahoo.com>: Recipient address rejected: User unknown")
    in_app(outcomes.apply, team.id, report_for("cy@example.org", feedback_type="abuse", message_id=cy.message_id), "webhook")
    return dict(team=team, campaign=campaign, sends=sends, links=links)


def test_campaign_report_shows_the_numbers(web, story):
    in_app(rollup.run)
    page = soup(web.get(f"/reports/campaigns/{story['campaign'].id}"))
    assert metric(page, "sent") == "4"
    assert metric(page, "bounced") == "1"
    assert metric(page, "delivered") == "3"
    assert metric(page, "opens_unique") == "2"  # ann and bob; cy's only open was a machine
    assert metric(page, "opens_total") == "3"  # ann twice, bob once
    assert metric(page, "opens_machine") == "2"
    assert metric(page, "clicks_unique") == "2"
    assert metric(page, "clicks_total") == "4"
    assert metric(page, "clicks_bot") == "1"
    assert metric(page, "bounced_hard") == "1"
    assert metric(page, "unsubscribes") == "1"
    assert metric(page, "complaints") == "1"
    assert page.select_one('[data-metric="clicks_unique"] small').get_text(strip=True) == "CTR 66.7%"  # 2 of 3
    assert metric(page, "click_to_open") == "100.0%"

    links = {row.select("td")[0].get_text(strip=True): [td.get_text(strip=True) for td in row.select("td")[1:4]]
             for row in page.select("#links tbody tr")}  # unique, all, share of unique clicks
    assert links == {"https://example.org/read": ["1", "2", "33.3%"], "https://example.org/buy": ["2", "2", "66.7%"]}

    domains = {row.th.get_text(strip=True): [td.get_text(strip=True) for td in row.select("td")]
               for row in page.select("#domains tbody tr")}
    assert domains["example.org"] == ["2", "0", "1", "1"]  # sent, bounced, opened, clicked
    assert domains["yahoo.com"] == ["1", "1", "0", "0"]
    assert domains["gmail.com"] == ["1", "0", "1", "1"]

    countries = {row["data-country"]: [td.get_text(strip=True) for td in row.select("td")]
                 for row in page.select("#countries tbody tr")}
    assert countries["GB"] == ["1", "1"]  # ann opened and clicked from the UK
    assert countries[""] == ["1", "0"]  # bob's open came through Gmail's proxy
    assert countries["US"] == ["0", "1"]  # bob's click from a US address

    clients = {(row.th.get_text(strip=True), row.select("td")[0].get_text(strip=True)):
               row.select("td")[1].get_text(strip=True) for row in page.select("#clients tbody tr")}
    assert clients == {("Apple Mail", "Desktop"): "1", ("Gmail", "Webmail"): "1"}

    chart = page.select_one("svg.chart")
    assert chart["role"] == "img" and chart.title.get_text().startswith("Opens and clicks")
    assert chart.select("polyline, circle")
    assert not page.select("[style]")  # the CSP forbids style attributes
    table = page.select_one("details.chart-data table")
    assert sum(int(tr.select("td")[0].get_text()) for tr in table.select("tbody tr")) == 3  # human opens


def test_aggregating_twice_or_in_small_batches_counts_each_event_once(app, web, story):
    in_app(rollup.run, batch=3)  # many small batches
    in_app(rollup.run)  # nothing new: nothing changes
    first = list(CampaignStat.select().dicts())
    stats = first[0]
    assert (stats["sent"], stats["opens_unique"], stats["clicks_unique"], stats["opens_total"]) == (4, 2, 2, 3)

    # A batch that failed half-way leaves no trace: the cursor moves in the same transaction.
    before = rollup.position()[0]
    Event.create(team=story["team"], contact=story["sends"][0].contact_id, campaign_id=story["campaign"].id,
                 type="opened", data={"send": story["sends"][0].id, "machine": False, "ua": APPLE_MAIL})
    with pytest.raises(RuntimeError):
        with db.atomic():
            rollup.run_batch()
            raise RuntimeError("crash after the upserts, before the commit")
    assert rollup.position()[0] == before
    assert list(CampaignStat.select().dicts()) == first
    in_app(rollup.run)
    after = CampaignStat.get()
    assert after.opens_total == 4 and after.opens_unique == 2  # a repeat open: total only


def test_unique_opens_hold_across_batches(app, web, story, public):
    in_app(rollup.run)
    ann = story["sends"][0]
    pixel(public, ann, IPHONE_MAIL, GB_IP)  # ann opens again, later, on her phone
    in_app(rollup.run)
    stats = CampaignStat.get()
    assert stats.opens_total == 4 and stats.opens_unique == 2


def test_ab_variants_side_by_side_with_the_winner_marked(app, web, admin, public):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, [f"p{i}@example.org" for i in range(6)], ab=True)
    for send in sends[1::2]:  # variant B: every other send
        pixel(public, send, APPLE_MAIL, GB_IP)
        click(public, send, links[0], APPLE_MAIL, GB_IP)
    pixel(public, sends[0], APPLE_MAIL, GB_IP)  # one open for A
    in_app(rollup.run)
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    winner = page.select("#variants th.winner")
    assert [th["data-variant"] for th in winner] == ["B"]
    assert winner[0].select_one(".badge").get_text(strip=True) == "Winner"
    # The sample (20% of 6, at least 2: the first two sends) is the test; the other four are the
    # rest of the audience, counted apart so the winner's test result is not mixed with them (issue 9).
    cells = {td["data-variant"]: td.get_text(strip=True) for td in page.select('#variants tr[data-metric="opens_unique"] td')}
    assert cells == {"A": "1", "B": "1", "rest": "2"}
    clicks = {td["data-variant"]: td.get_text(strip=True) for td in page.select('#variants tr[data-metric="clicks_unique"] td')}
    assert clicks == {"A": "0", "B": "1", "rest": "2"}


def test_csv_export_is_formula_safe(app, web, admin, public):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, ["x@example.org"], name="=HYPERLINK(\"http://evil\")")
    link = Link.create(campaign=campaign, url="https://example.org/?q=1")
    click(public, sends[0], link, APPLE_MAIL, GB_IP)
    in_app(rollup.run)
    response = web.get(f"/reports/campaigns/{campaign.id}.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["section", "item", "metric", "value"]
    summary = {r[2]: r[3] for r in rows if r[0] == "summary"}
    assert summary["sent"] == "1" and summary["clicks_unique"] == "1"
    assert all(r[1].startswith("'=") for r in rows if r[0] == "summary")
    assert ["link", "https://example.org/?q=1", "clicks_unique", "1"] in rows
    assert ["domain", "example.org", "sent", "1"] in rows


def test_dashboard_rates_and_warnings(app, web, admin, public):
    team = team_of(admin)
    page = soup(web.get("/reports/"))
    assert page.select_one("#dashboard-empty h2").get_text(strip=True) == "No campaign sent yet"

    emails = [f"r{i}@example.org" for i in range(200)]
    campaign, sends, links = build_campaign(team, emails)
    # 1 complaint in 200 delivered = 0.5%: above Gmail's 0.3% limit. 6 bounces = 3%: a warning.
    for send in sends[:6]:
        in_app(outcomes.apply_smtp_reply, send.id, 550, "5.1.1 User unknown")
    in_app(outcomes.apply, team.id, report_for(sends[10].email, feedback_type="abuse", message_id=sends[10].message_id),
                   "webhook")
    in_app(rollup.run)
    page = soup(web.get("/reports/"))
    assert page.select_one("#dashboard-empty") is None
    assert metric(page, "sent") == "200"
    assert page.select_one("#complaint-warning.flash-error") is not None
    assert page.select_one('[data-metric="complaint_rate"] dd').get_text(strip=True) == "0.52%"  # 1 / 194
    assert page.select_one("#bounce-warning.flash-warning") is not None
    assert page.select_one('[data-metric="bounce_rate"] dd').get_text(strip=True) == "3.00%"
    assert page.select_one("#recent a")["href"] == f"/reports/campaigns/{campaign.id}"
    assert metric(page, "new_contacts") == "200"
    assert page.select("svg.chart")


def test_retention_deletes_counted_raw_events_and_keeps_daily_totals(app, web, admin, public):
    team = team_of(admin)
    old = datetime.timedelta(days=500)
    campaign, sends, links = build_campaign(team, ["old@example.org"], name="Old", sent_ago=old)
    fresh, fresh_sends, _ = build_campaign(team, ["new@example.org"], name="New")
    uncounted_at = utcnow() - datetime.timedelta(days=450)
    in_app(rollup.run)
    late = Event.create(team=team, contact=fresh_sends[0].contact_id, campaign_id=fresh.id, type="sent",
                        at=uncounted_at, data={"send": fresh_sends[0].id})  # not counted yet
    day = (utcnow() - old).date().isoformat()
    assert TeamDay.get((TeamDay.team == team) & (TeamDay.day == day)).sent == 1

    deleted = rollup.retention(400)
    assert deleted == 1
    assert not Event.select().where((Event.campaign_id == campaign.id) & (Event.type == "sent")).exists()
    assert Event.get_or_none(Event.id == late.id) is not None  # past the cursor: kept until counted
    assert Event.select().where(Event.campaign_id == fresh.id).count() == 2
    assert TeamDay.get((TeamDay.team == team) & (TeamDay.day == day)).sent == 1  # the daily total stays
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert metric(page, "sent") == "1"  # the report of the old campaign still reads its aggregates


def test_report_of_a_sending_campaign_refreshes_itself(app, web, admin):
    team = team_of(admin)
    campaign, _, _ = build_campaign(team, ["live@example.org"])
    live = soup(web.get(f"/reports/campaigns/{campaign.id}")).select_one("#report-live")
    assert live is not None and not live.has_attr("hx-trigger")  # finished: nothing to refresh
    Campaign.update(state="sending").where(Campaign.id == campaign.id).execute()
    live = soup(web.get(f"/reports/campaigns/{campaign.id}")).select_one("#report-live")
    assert (live["hx-get"], live["hx-trigger"], live["hx-select"]) == (
        f"/reports/campaigns/{campaign.id}", "every 15s", "#report-live")
    assert live.select_one("[data-metric=sent] dd").get_text(strip=True) == "1"


def test_campaign_report_empty_state_and_link_from_the_campaign(app, web, admin):
    team = team_of(admin)
    draft = Campaign.create(team=team, name="Draft", subject="Hi")
    page = soup(web.get(f"/reports/campaigns/{draft.id}"))
    assert page.select_one("#report-empty h2").get_text(strip=True) == "No messages sent for this campaign yet"
    done, _, _ = build_campaign(team, ["z@example.org"])
    progress = soup(web.get(f"/campaigns/{done.id}/progress"))
    assert progress.select_one("#report-link")["href"] == f"/reports/campaigns/{done.id}"


def test_roles_and_other_teams(app, web, admin):
    team = team_of(admin)
    campaign, _, _ = build_campaign(team, ["g@example.org"])
    other = Team.create(name="Other")
    theirs = Campaign.create(team=other, name="Theirs", state="completed")
    for role in ("guest", "author", "manager"):
        _, member = make_member(app, team, role)
        assert member.get("/reports/").status_code == 200
        assert member.get(f"/reports/campaigns/{campaign.id}").status_code == 200
        assert member.get(f"/reports/campaigns/{campaign.id}.csv").status_code == 200
    assert web.get(f"/reports/campaigns/{theirs.id}").status_code == 404
    assert web.get(f"/reports/campaigns/{theirs.id}.csv").status_code == 404
    assert web.get("/reports/campaigns/999999").status_code == 404
    anonymous = app.test_client()
    assert anonymous.get("/reports/").status_code in (302, 401)


def test_events_of_other_teams_stay_in_their_reports(app, web, admin):
    team = team_of(admin)
    other = Team.create(name="Other")
    mine, _, _ = build_campaign(team, ["a@example.org", "b@example.org"])
    theirs, _, _ = build_campaign(other, ["c@example.org"], name="Theirs")
    in_app(rollup.run)
    page = soup(web.get("/reports/"))
    assert metric(page, "sent") == "2"
    # Summed over the other team's days: two hours ago is yesterday between midnight and two (UTC), a second day row.
    assert sum(day.sent for day in TeamDay.select().where(TeamDay.team == other)) == 1


def test_the_report_page_counts_new_events_itself(app, web, admin, public):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, ["fresh@example.org", "late@example.org"])
    pixel(public, sends[0], APPLE_MAIL, GB_IP)
    # No aggregator run: the page gives it a short time budget before reading the numbers.
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert metric(page, "sent") == "2"
    assert metric(page, "opens_unique") == "1"
    assert rollup.position()[0] == rollup.position()[1]


def test_periodic_tasks_count_and_apply_retention(app, web, admin):
    from tasks import reports as report_tasks
    team = team_of(admin)
    campaign, sends, _ = build_campaign(team, ["t@example.org", "u@example.org"],
                                        sent_ago=datetime.timedelta(days=800))
    with app.app_context():
        report_tasks.rollup()
        assert CampaignStat.get().sent == 2
        report_tasks.retention()
    # Only the newest event is left (see test_retention_keeps_the_newest_event...).
    assert Event.select().where(Event.campaign_id == campaign.id).count() == 1
    assert CampaignStat.get().sent == 2


def test_retention_keeps_the_newest_event_so_its_id_is_never_handed_out_again(app, web, admin):
    team = team_of(admin)
    campaign, sends, _ = build_campaign(team, ["a@example.org", "b@example.org"],
                                        sent_ago=datetime.timedelta(days=800))
    Event.update(at=utcnow() - datetime.timedelta(days=900)).execute()  # every event is old
    in_app(rollup.run)
    newest, before = Event.select(fn.MAX(Event.id)).scalar(), Event.select().count()
    assert rollup.retention(400) == before - 1
    assert [e.id for e in Event.select(Event.id)] == [newest]
    later = Event.create(team=team, contact=sends[0].contact_id, campaign_id=campaign.id, type="opened",
                         data={"send": sends[0].id, "machine": False})
    assert later.id > newest  # past every cursor: it will be counted
    in_app(rollup.run)
    stat = CampaignStat.get(CampaignStat.campaign == campaign.id)
    assert stat.opens_total + stat.opens_machine == 1


@pytest.mark.parametrize("agent, expected", [
    (APPLE_MAIL, ("Apple Mail", "Desktop")),
    (IPHONE_MAIL, ("Apple Mail", "iOS")),
    (GMAIL_PROXY, ("Gmail", "Webmail")),
    ("Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; ms-office; MSOffice 16)", ("Outlook", "Desktop")),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0", ("Thunderbird", "Desktop")),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", ("Yahoo Mail", "Webmail")),
    ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile",
     ("Android mail app", "Android")),
    (BROWSER, ("Web browser", "Webmail")),
    ("", ("Unknown", "Unknown")),
])
def test_mail_client_classifier(agent, expected):
    from app.reports import clients
    assert clients.classify(agent) == expected


def test_countries_from_the_packaged_geolite2_database():
    from app.reports import geo
    assert geo.country(GB_IP) == "GB"
    assert geo.country(US_IP) == "US"
    assert geo.country("10.0.0.1") == "" and geo.country("not an ip") == "" and geo.country("") == ""


def test_a_newer_mmdb_path_is_used_when_configured(tmp_path):
    from app.reports import geo
    missing = tmp_path / "GeoLite2-Country.mmdb"
    assert geo.country(GB_IP, str(missing)) == ""  # a bad path: unknown countries, never a crash
    import _maxminddb_geolite2
    mmdb = Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb"  # stands in for a newer file
    copy = tmp_path / "newer.mmdb"
    copy.write_bytes(mmdb.read_bytes())
    assert geo.country(GB_IP, str(copy)) == "GB"


def test_charts_are_svg_with_text_alternatives():
    from app.reports import charts
    svg = soup_of(charts.line_chart("Opens per hour", ["09:00", "10:00", "11:00"], [("Opens", [1, 5, 2])]))
    assert svg.svg["role"] == "img"
    assert svg.title.get_text() == "Opens per hour"
    assert "8 in total" in svg.desc.get_text()
    assert len(svg.polyline["points"].split()) == 3
    assert not svg.select("[style]")
    bars = soup_of(charts.bar_chart("Growth", ["d1", "d2"], [("New", [0, 3]), ("Gone", [1, 0])]))
    assert len(bars.select("rect.chart-bar")) == 2
    empty = soup_of(charts.line_chart("Nothing", [], [("Opens", [])]))
    assert empty.desc.get_text() == "No data yet."


def soup_of(markup):
    from bs4 import BeautifulSoup
    return BeautifulSoup(str(markup), "html.parser")


def test_timeline_is_in_the_teams_time_zone_across_a_dst_change_and_a_half_hour_zone():
    from app.reports.services import timeline
    hours = [("2026-03-29 00:00:00", 0, 0, 1, 0), ("2026-03-29 01:00:00", 0, 0, 2, 1),
             ("2026-03-29 03:00:00", 0, 0, 4, 0)]  # UTC; Europe/Berlin moves from +1 to +2 at 01:00 UTC
    berlin = timeline(hours, "Europe/Berlin")
    assert berlin["labels"] == ["2026-03-29 01:00", "2026-03-29 03:00", "2026-03-29 04:00", "2026-03-29 05:00"]
    assert (berlin["opens"], berlin["clicks"], berlin["zone"]) == ([1, 2, 0, 4], [0, 1, 0, 0], "Europe/Berlin")
    kolkata = timeline(hours[:1], "Asia/Kolkata")
    assert kolkata["labels"] == ["2026-03-29 05:30"]
    days = timeline([("2026-03-01 23:00:00", 0, 0, 1, 0), ("2026-03-05 12:00:00", 0, 0, 1, 1)], "Asia/Tokyo")
    assert (days["unit"], days["labels"][0], days["labels"][-1]) == ("day", "2026-03-02", "2026-03-05")
    assert sum(days["opens"]) == 2 and len(days["labels"]) == 4
    assert timeline(hours, "Not/AZone")["labels"][0] == "2026-03-29 00:00"  # an unknown zone falls back to UTC


def test_report_chart_names_the_teams_time_zone(app, web, admin):
    team = team_of(admin)
    Team.update(time_zone="America/New_York").where(Team.id == team.id).execute()
    campaign, sends, _ = build_campaign(team, ["tz@example.org"])
    assert web.get(f"/o/{sign('open', sends[0].id)}.gif", headers={"User-Agent": APPLE_MAIL}).status_code == 200
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert "America/New_York" in page.select_one("svg.chart").title.get_text()


def test_a_click_with_images_blocked_counts_as_the_open(app, web, admin, public):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, ["blocked@example.org", "both@example.org"])
    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    click(public, sends[0], links[0], browser, "203.0.113.7")  # images blocked: no pixel, only a click
    pixel(public, sends[1], APPLE_MAIL, "203.0.113.8")
    click(public, sends[1], links[1], browser, "203.0.113.8")
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert (metric(page, "opens_unique"), metric(page, "clicks_unique"), metric(page, "click_to_open")) == (
        "2", "2", "100.0%")
    pixel(public, sends[0], APPLE_MAIL, "203.0.113.7")  # its images load later: still one open for that send
    in_app(rollup.run)
    stat = in_app(lambda: CampaignStat.get(CampaignStat.campaign == campaign.id))
    assert (stat.opens_total, stat.opens_unique, stat.clicks_unique) == (2, 2, 2)  # pixel loads as they came
