"""The campaign list (state, audience, sent, the report's rates, date; filters, search, keyset pages) and
duplicating a campaign in one click."""
import datetime

from peewee import BooleanField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField

from app.campaigns import duplicate
from app.db import JSONField
from app.models import Campaign
from app.models import Event
from app.models import MailingList
from app.models import Segment
from app.models import Template
from app.models import Team
from app.models import Variant
from app.models import utcnow
from app.reports import rollup
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.reports_support import build_campaign
from tests.reports_support import team_of


def rows(response):
    return {int(tr["data-campaign"]): tr for tr in soup(response).select("#campaign-results tbody tr")}


def cell(row, label):
    found = row.select_one(f'td[data-label="{label}"]')
    assert found is not None, f"no {label} cell"
    return found.get_text(" ", strip=True)


def opened(team, send, machine=False):
    Event.create(team=team, contact=send.contact_id, campaign_id=send.campaign_id, type="opened",
                 data={"send": send.id, "machine": machine})


def clicked(team, send, link, bot=False):
    Event.create(team=team, contact=send.contact_id, campaign_id=send.campaign_id, type="clicked",
                 data={"send": send.id, "link_id": link.id, "bot": bot})


def test_rates_are_the_reports(app, web, admin):
    team = team_of(admin)
    campaign, sends, links = build_campaign(team, [f"r{i}@example.org" for i in range(8)])
    opened(team, sends[0])
    opened(team, sends[0])  # a repeat open counts once
    opened(team, sends[1])
    opened(team, sends[2], machine=True)  # a privacy proxy: not a person
    clicked(team, sends[3], links[0])  # a click proves an open
    clicked(team, sends[4], links[1], bot=True)  # a scanner
    with app.app_context():
        rollup.run()
    row = rows(web.get("/campaigns/"))[campaign.id]
    report = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    report_open = report.select_one('[data-metric="opens_unique"] small').get_text(strip=True)
    report_click = report.select_one('[data-metric="clicks_unique"] small').get_text(strip=True).removeprefix("CTR ")
    assert cell(row, "Open rate") == report_open == "37.5%"  # 3 people of 8 delivered
    assert cell(row, "Click rate") == report_click == "12.5%"
    assert cell(row, "Sent") == "8"
    assert row.select_one(".badge").get_text(strip=True) == "Completed"


def test_a_draft_shows_no_rates_and_its_audience_in_names(app, web, admin):
    team = team_of(admin)
    news = MailingList.create(team=team, name="Newsletter")
    vips = Segment.create(team=team, name="VIPs", rules={})
    extra = [MailingList.create(team=team, name=f"List {i}") for i in range(2)]
    draft = Campaign.create(team=team, name="Draft", audience={
        "lists": [news.id] + [x.id for x in extra], "segments": [vips.id], "exclude_lists": [], "exclude_segments": []})
    row = rows(web.get("/campaigns/"))[draft.id]
    assert cell(row, "Audience") == "Newsletter, List 0 +2 more"
    assert cell(row, "Open rate") == cell(row, "Click rate") == cell(row, "Sent") == "—"
    assert row.select_one(".badge").get_text(strip=True) == "Draft"


def test_the_date_is_in_the_teams_time_zone(app, web, admin):
    team = team_of(admin)
    Team.update(time_zone="Europe/Berlin").where(Team.id == team.id).execute()
    scheduled = Campaign.create(team=team, name="Later", state="scheduled",
                                scheduled_at=datetime.datetime(2030, 1, 15, 23, 30))
    row = rows(web.get("/campaigns/"))[scheduled.id]
    assert cell(row, "Scheduled for") == "Scheduled for 2030-01-16 00:30 CET"


def test_filter_by_state_and_search_by_name(app, web, admin):
    team = team_of(admin)
    spring = Campaign.create(team=team, name="Spring sale")
    autumn = Campaign.create(team=team, name="Autumn sale", state="completed", started_at=utcnow())
    other = Campaign.create(team=team, name="Welcome 100%")
    assert set(rows(web.get("/campaigns/"))) == {spring.id, autumn.id, other.id}
    assert set(rows(web.get("/campaigns/?state=completed"))) == {autumn.id}
    assert set(rows(web.get("/campaigns/?q=SALE"))) == {spring.id, autumn.id}
    assert set(rows(web.get("/campaigns/?q=sale&state=draft"))) == {spring.id}
    assert set(rows(web.get("/campaigns/?q=100%25"))) == {other.id}  # a % is a character, not a wildcard
    assert set(rows(web.get("/campaigns/?q=1_0"))) == set()
    # The filters' htmx request gets the results alone.
    fragment = web.get("/campaigns/?q=spring", headers={"HX-Request": "true"})
    assert set(rows(fragment)) == {spring.id} and soup(fragment).select_one("#new-campaign") is None
    nothing = soup(web.get("/campaigns/?q=winter"))
    assert nothing.select_one("#no-match") is not None and nothing.select_one("#no-campaigns") is None
    # A state that does not exist is no filter.
    assert set(rows(web.get("/campaigns/?state=bogus"))) == {spring.id, autumn.id, other.id}


def test_keyset_pages_newest_first(app, web, admin):
    team = team_of(admin)
    Campaign.insert_many([{"team": team.id, "name": f"Weekly {i:03d}"} for i in range(120)]).execute()
    Campaign.create(team=team, name="Monthly")
    first = web.get("/campaigns/?q=weekly")
    names = [tr.select_one("a").get_text() for tr in soup(first).select("#campaign-results tbody tr")]
    assert names[0] == "Weekly 119" and len(names) == 50
    pager = soup(first).select_one("nav.pager")
    assert [a.get_text() for a in pager.select("a")] == ["Older campaigns"]
    second = web.get(pager.select_one("a")["href"])
    assert [tr.select_one("a").get_text() for tr in soup(second).select("tbody tr")][0] == "Weekly 069"
    third = web.get(soup(second).find("a", string="Older campaigns")["href"])
    last_names = [tr.select_one("a").get_text() for tr in soup(third).select("tbody tr")]
    assert last_names[0] == "Weekly 019" and last_names[-1] == "Weekly 000" and len(last_names) == 20
    assert soup(third).find("a", string="Older campaigns") is None
    back = web.get(soup(third).find("a", string="Newer campaigns")["href"])
    assert [tr.select_one("a").get_text() for tr in soup(back).select("tbody tr")][0] == "Weekly 069"


def test_the_empty_state_says_what_to_do(web, admin):
    page = soup(web.get("/campaigns/"))
    assert "Create a draft above" in page.select_one("#no-campaigns").get_text()


# --- Duplicate -----------------------------------------------------------------------------

def test_every_campaign_column_is_decided_on():
    """A new Campaign column fails here until app/campaigns/duplicate.py copies it or says why not."""
    columns = set(Campaign._meta.fields)
    undecided = columns - duplicate.COPIED - set(duplicate.NOT_COPIED)
    assert not undecided, f"decide in app/campaigns/duplicate.py whether a duplicate copies {sorted(undecided)}"
    assert not (duplicate.COPIED & set(duplicate.NOT_COPIED))


def _full_campaign(team, admin):
    news = MailingList.create(team=team, name="Newsletter")
    parent = Campaign.create(team=team, name="Earlier")
    values = {}
    for name, column in Campaign._meta.fields.items():
        if name in ("id", "team", "created_by", "parent") or isinstance(column, ForeignKeyField):
            continue
        if name == "audience":
            values[name] = {"lists": [news.id], "segments": [], "exclude_lists": [], "exclude_segments": []}
        elif name == "state":
            values[name] = "completed"
        elif name == "kind":
            values[name] = "markdown"
        elif isinstance(column, JSONField):
            values[name] = {"set": name}
        elif isinstance(column, DateTimeField):
            values[name] = datetime.datetime(2026, 5, 1, 10, 0)
        elif isinstance(column, BooleanField):
            values[name] = not column.default if isinstance(column.default, bool) else True
        elif isinstance(column, IntegerField):
            values[name] = 7
        else:
            values[name] = f"the {name}"
    template = Template.create(team=team, name="Layout", body="<div>{{ content }}</div>")
    values["template"] = template.id
    original = Campaign.create(team=team, created_by=admin, parent=parent, **values)
    Variant.create(campaign=original, label="A", subject="Subject A", body="Body A", is_winner=True)
    Variant.create(campaign=original, label="B", subject="Subject B", body="Body B")
    return Campaign.get_by_id(original.id)


def test_duplicate_copies_every_content_column_and_no_history(app, admin):
    team = team_of(admin)
    original = _full_campaign(team, admin)
    copy = duplicate.duplicate_campaign(team, original, admin.id)
    copy = Campaign.get_by_id(copy.id)
    for name in duplicate.COPIED & set(Campaign._meta.fields):
        assert copy.__data__.get(name) == original.__data__.get(name), name
    assert copy.name == "Copy of the name"
    assert copy.state == "draft" and copy.team_id == team.id and copy.id != original.id
    for name in ("scheduled_at", "started_at", "finished_at", "frozen_at", "ab_decided_at"):
        assert getattr(copy, name) is None, name
    assert (copy.total, copy.sent, copy.failed, copy.cursor, copy.state_reason) == (0, 0, 0, 0, "")
    variants = [(v.label, v.subject, v.body, v.is_winner) for v in copy.variants.order_by(Variant.label)]
    assert variants == [("A", "Subject A", "Body A", False), ("B", "Subject B", "Body B", False)]
    # The copy's JSON is its own: changing it leaves the original alone.
    assert Campaign.get_by_id(original.id).state == "completed"


def test_duplicate_in_one_click_from_the_list_and_the_campaign_page(app, web, admin):
    team = team_of(admin)
    sent = Campaign.create(team=team, name="Launch", subject="We launched", state="completed", started_at=utcnow(),
                           body="<p>Hi</p>", total=3, sent=3)
    form = soup(web.get("/campaigns/")).select_one(f'tr[data-campaign="{sent.id}"] form')
    assert form["action"] == f"/campaigns/{sent.id}/duplicate"
    assert form.select_one("button")["aria-label"] == "Duplicate “Launch”"
    response = web.post(form["action"])
    copy = Campaign.select().order_by(Campaign.id.desc()).first()
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/campaigns/{copy.id}")
    assert (copy.name, copy.subject, copy.state, copy.sent, copy.body) == ("Copy of Launch", "We launched", "draft",
                                                                           0, "<p>Hi</p>")
    assert soup(web.get(f"/campaigns/{sent.id}/progress")).select_one("form#duplicate") is not None
    assert soup(web.get(f"/campaigns/{copy.id}")).select_one("form#duplicate") is not None


def test_another_teams_campaign_cannot_be_duplicated(app, web, admin):
    other = Team.create(name="Other")
    theirs = Campaign.create(team=other, name="Theirs")
    before = Campaign.select().count()
    assert web.post(f"/campaigns/{theirs.id}/duplicate").status_code == 404
    assert Campaign.select().count() == before


def test_a_guest_cannot_duplicate(app, admin):
    team = team_of(admin)
    campaign = Campaign.create(team=team, name="Ours")
    _, guest = make_member(app, team, "guest")
    before = Campaign.select().count()
    assert guest.post(f"/campaigns/{campaign.id}/duplicate").status_code == 403
    assert Campaign.select().count() == before
    page = soup(guest.get("/campaigns/"))
    assert page.select_one(f'tr[data-campaign="{campaign.id}"]') and not page.select("#campaign-results form")
