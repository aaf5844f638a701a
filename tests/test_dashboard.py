"""The home dashboard: latest campaigns with the report's rates, list growth over 30/90 days, the best and
worst campaign, what needs attention, and the first-steps checklist."""
import datetime

from app.dashboard import services
from app.models import BounceMailbox
from app.models import Campaign
from app.models import Contact
from app.models import ContactCount
from app.models import Event
from app.models import MailingList
from app.models import Notice
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.models import TeamDay
from app.models import utcnow
from app.reports import rollup
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.reports_support import build_campaign
from tests.reports_support import team_of


def clicked(team, send, link):
    Event.create(team=team, contact=send.contact_id, campaign_id=send.campaign_id, type="clicked",
                 data={"send": send.id, "link_id": link.id, "bot": False})


def attention(response):
    return {li["data-kind"]: li.get_text(" ", strip=True) for li in soup(response).select("#attention li")}


def test_latest_campaigns_show_the_reports_rates(app, web, admin):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, [f"r{i}@example.org" for i in range(4)])
    clicked(team, sends[0], links[0])
    with app.app_context():
        rollup.run()
    page = soup(web.get("/dashboard"))
    row = page.select_one(f'#recent tr[data-campaign="{campaign.id}"]')
    report = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert row.select_one('[data-label="Click rate"]').get_text(strip=True) == \
        report.select_one('[data-metric="clicks_unique"] small').get_text(strip=True).removeprefix("CTR ") == "25.0%"
    assert row.select_one('[data-label="Open rate"]').get_text(strip=True) == \
        report.select_one('[data-metric="opens_unique"] small').get_text(strip=True) == "25.0%"  # a click is an open


def test_only_the_last_five_campaigns(app, web, admin):
    team = team_of(admin)
    for i in range(7):
        Campaign.create(team=team, name=f"Weekly {i}", state="completed",
                        started_at=utcnow() - datetime.timedelta(days=10 - i))
    names = [a.get_text() for a in soup(web.get("/dashboard")).select("#recent tbody a")]
    assert names == ["Weekly 6", "Weekly 5", "Weekly 4", "Weekly 3", "Weekly 2"]


def test_a_new_team_is_told_what_to_do_next(web, admin):
    page = soup(web.get("/dashboard"))
    assert "No campaign has gone out yet" in page.select_one("#recent").get_text()
    assert "Once two campaigns" in page.select_one("#best-worst").get_text()
    assert "Nobody joined or left" in page.select_one("#growth").get_text()
    assert page.select_one("#attention") is None


def test_list_growth_over_30_and_90_days(app, web, admin):
    team = team_of(admin)
    today = utcnow().date()
    for days_ago, new, left in ((0, 5, 1), (29, 10, 0), (30, 100, 7), (89, 1000, 2), (90, 9999, 9999)):
        TeamDay.create(team=team, day=(today - datetime.timedelta(days=days_ago)).isoformat(), new_contacts=new,
                       unsubscribes=left)
    TeamDay.create(team=Team.create(name="Other"), day=today.isoformat(), new_contacts=777)
    Contact.create(team=team, email="a@example.com", domain="example.com")
    Contact.create(team=team, email="b@example.com", domain="example.com", status="unsubscribed")
    page = soup(web.get("/dashboard"))
    summary = page.select_one("#growth-summary").get_text(" ", strip=True)
    assert summary == "1 active contacts. In the last 30 days 15 joined and 1 unsubscribed: net growth +14 ."
    assert page.select_one('.period-toggle a[aria-current="true"]').get_text() == "30 days"
    chart = page.select_one("#growth svg.chart")
    assert chart["role"] == "img" and "running totals" in chart.title.get_text()
    assert chart.desc.get_text().endswith("15 joined and 1 unsubscribed, net growth +14.")
    table = page.select("#growth details.chart-data tbody tr")
    assert len(table) == 30 and table[-1].select("td")[0].get_text() == "5"
    assert not page.select("[style]")  # the CSP forbids style attributes
    longer = soup(web.get("/dashboard?days=90"))
    assert "In the last 90 days 1,115 joined and 10 unsubscribed: net growth +1,105" in \
        longer.select_one("#growth-summary").get_text(" ", strip=True)
    assert len(longer.select("#growth details.chart-data tbody tr")) == 90
    assert soup(web.get("/dashboard?days=7")).select_one('.period-toggle a[aria-current="true"]').get_text() == "30 days"


def test_best_and_worst_leave_out_small_sends(app, admin):
    team = team_of(admin)
    good, good_sends, good_links = build_campaign(team, [f"g{i}@example.org" for i in range(4)], name="Good")
    poor, poor_sends, poor_links = build_campaign(team, [f"p{i}@example.org" for i in range(4)], name="Poor")
    tiny, tiny_sends, tiny_links = build_campaign(team, ["t0@example.org", "t1@example.org"], name="Tiny")
    for send in good_sends[:3]:
        clicked(team, send, good_links[0])
    clicked(team, poor_sends[0], poor_links[0])
    for send in tiny_sends:
        clicked(team, send, tiny_links[0])  # 100 %, but only two people
    with app.app_context():
        rollup.run()
        latest, best, worst = services.campaign_results(team, min_delivered=3)
        assert (best["campaign"].name, worst["campaign"].name) == ("Good", "Poor")
        assert [row["campaign"].name for row in latest] == ["Tiny", "Poor", "Good"]
        assert services.campaign_results(team, min_delivered=5)[1:] == (None, None)


def test_attention_items_appear_and_disappear(app, web, admin):
    team = team_of(admin)
    domain = SenderDomain.create(team=team, domain="news.example", dns_status={})
    paused = Campaign.create(team=team, name="Autumn", state="paused", state_reason="Bounce rate over 5%")
    account = SmtpAccount.create(team=team, name="Relay", host="127.0.0.1", connection_state="failing",
                                 last_error="Connection refused", failing_since=utcnow())
    mailbox = BounceMailbox.create(team=team, name="Bounces", host="127.0.0.1", last_error="Login failed")
    notice = Notice.create(team=team, subject="Campaign paused", data={})
    items = attention(web.get("/dashboard"))
    assert items == {
        "campaign": "“Autumn” is paused: Bounce rate over 5%",
        "account": "The SMTP account “Relay” cannot connect: Connection refused",
        "mailbox": "The bounce mailbox “Bounces” failed its last check: Login failed",
        "domain": "The sender domain news.example is not verified yet: campaigns cannot send from it.",
        "notices": "1 unread alert",
    }
    links = {li["data-kind"]: li.select_one("a")["href"] for li in soup(web.get("/dashboard")).select("#attention li")}
    assert links["campaign"] == f"/campaigns/{paused.id}/progress"
    assert links["domain"] == f"/sending/domains/{domain.id}"
    # A guest sees what is wrong, without links to pages their role cannot open.
    _, guest = make_member(app, team, "guest")
    guest_links = {li["data-kind"]: li.select_one("a") for li in soup(guest.get("/dashboard")).select("#attention li")}
    assert guest_links["account"] is None and guest_links["campaign"] is not None

    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
    Campaign.update(state_reason="").where(Campaign.id == paused.id).execute()
    Campaign.delete().where(Campaign.id == paused.id).execute()
    SmtpAccount.update(connection_state="ok", last_error="", failing_since=None).where(
        SmtpAccount.id == account.id).execute()
    BounceMailbox.update(last_error="").where(BounceMailbox.id == mailbox.id).execute()
    Notice.update(read_at=utcnow()).where(Notice.id == notice.id).execute()
    assert attention(web.get("/dashboard")) == {}
    assert soup(web.get("/dashboard")).select_one("#attention") is None


def test_a_failed_campaign_and_a_paused_account_need_attention(app, web, admin):
    team = team_of(admin)
    failed = Campaign.create(team=team, name="Broken", state="failed", state_reason="The template failed to render")
    SmtpAccount.create(team=team, name="Paused one", host="127.0.0.1", status="paused", paused_reason="Paused by you")
    page = soup(web.get("/dashboard"))
    items = {li["data-kind"]: li for li in page.select("#attention li")}
    assert items["campaign"].get_text(strip=True) == "“Broken” failed: The template failed to render"
    assert items["campaign"].select_one("a")["href"] == f"/campaigns/{failed.id}"
    assert items["account"].get_text(strip=True) == "The SMTP account “Paused one” is paused: Paused by you"


def test_the_checklist_shows_progress_and_goes_once_complete(app, web, admin):
    team = team_of(admin)
    page = soup(web.get("/dashboard"))
    assert page.select_one("#first-steps-progress").get_text() == "0 of 7 steps done."
    assert page.select_one("progress")["value"] == "0"
    assert [li["data-step"] for li in page.select("#first-steps li.todo")] == [
        "postal_address", "smtp", "domain", "contacts", "list", "draft", "campaign"]
    Team.update(postal_address="1 Main Street").where(Team.id == team.id).execute()
    SmtpAccount.create(team=team, name="Relay", host="127.0.0.1")
    SenderDomain.create(team=team, domain="news.example", dns_status={}, verified_at=utcnow())
    Contact.create(team=team, email="a@example.com", domain="example.com")
    MailingList.create(team=team, name="News")
    Campaign.create(team=team, name="Draft")
    page = soup(web.get("/dashboard"))
    assert page.select_one("#first-steps-progress").get_text() == "6 of 7 steps done."
    assert [li["data-step"] for li in page.select("#first-steps li.todo")] == ["campaign"]
    Campaign.create(team=team, name="Sent", state="completed", started_at=utcnow())
    assert soup(web.get("/dashboard")).select_one("#first-steps") is None


def test_the_active_count_comes_from_the_minute_task_while_fresh(app, web, admin):
    team = team_of(admin)
    other = Team.create(name="Other")
    for i in range(3):
        Contact.create(team=team, email=f"a{i}@example.com", domain="example.com")
    Contact.create(team=team, email="gone@example.com", domain="example.com", status="unsubscribed")
    Contact.create(team=other, email="x@example.com", domain="example.com")
    with app.app_context():
        assert rollup.count_contacts() == 2
    counted = ContactCount.get(ContactCount.team == team)
    assert (counted.total, counted.active) == (4, 3)
    Contact.create(team=team, email="late@example.com", domain="example.com")  # after the count
    summary = soup(web.get("/dashboard")).select_one("#growth-summary").get_text(" ", strip=True)
    assert summary.startswith("3 active contacts (counted ")
    # A count older than ten minutes (the worker stopped) is not shown: the page counts itself.
    ContactCount.update(counted_at=utcnow() - datetime.timedelta(minutes=11)).execute()
    assert soup(web.get("/dashboard")).select_one("#growth-summary").get_text(" ", strip=True).startswith(
        "4 active contacts.")
    # Contacts all deleted: the next count says 0 rather than keeping the old number.
    Contact.delete().where(Contact.team == other).execute()
    with app.app_context():
        rollup.count_contacts()
    assert ContactCount.get(ContactCount.team == other).active == 0
