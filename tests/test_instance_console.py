"""The instance console (/admin/teams): every team with its members, usage, contacts and health; a team's page;
suspend (with a reason) and resume through app/teams/standing.py, the banner its members see, and the refusal of
their sends, end to end from the console."""
from app import usage
from app.models import AuditLog
from app.models import Campaign
from app.models import CampaignState
from app.models import ContactCount
from app.models import DomainHealth
from app.models import Membership
from app.models import SenderDomain
from app.models import Team
from app.models import utcnow
from tests.accounts_support import make_member
from tests.campaigns_support import create_draft
from tests.conftest import soup


def acme():
    return Team.get(Team.name == "Acme")


def members_of(row):
    return [li.get_text(" ", strip=True) for li in row.select("ul.members li")]


def test_the_console_lists_teams_members_usage_contacts_and_health(app, admin, web):
    team = acme()
    make_member(app, team, "manager", "manager@example.com")
    other = Team.create(name="Bravo")
    make_member(app, other, "author", "writer@example.com")
    with app.app_context():
        usage.count_sent(team.id, 1234, stream="marketing", domain="acme.example")
    ContactCount.create(team=other, total=4321, active=4000)
    domain = SenderDomain.create(team=other, domain="bravo.example")
    DomainHealth.create(team=other, sender_domain=domain, status="fail", gate_reason="SPF is missing.",
                        checked_at=utcnow())

    page = soup(web.get("/admin/teams"))
    acme_row, bravo_row = page.select_one(f"#team-{team.id}"), page.select_one(f"#team-{other.id}")
    assert [r["id"] for r in page.select("#console-teams tbody tr")] == [f"team-{team.id}", f"team-{other.id}"]
    assert members_of(acme_row) == ["Ada admin@example.com · Administrator", "manager@example.com · Manager"]
    assert members_of(bravo_row) == ["writer@example.com · Author"]
    assert acme_row.select_one("td[data-label='Emails this month']").get_text(strip=True) == "1,234"
    assert bravo_row.select_one("td[data-label='Contacts']").get_text(strip=True) == "4,321"
    assert "Needs attention" in bravo_row.select_one(".team-health").get_text(" ", strip=True)
    assert "1 failing domain" in bravo_row.select_one(".team-health").get_text(" ", strip=True)
    assert "Fine" in acme_row.select_one(".team-health").get_text(" ", strip=True)
    assert page.select_one("nav.tabs a[aria-current=page]").get_text() == "Teams"

    with app.app_context():
        usage.count_sent(team.id, 10, stream="transactional", domain="acme.example")
    assert soup(web.get(f"/admin/teams/{team.id}")).select_one("#team-streams").get_text() == "1,234 · 10"
    detail = soup(web.get(f"/admin/teams/{other.id}"))
    assert "SPF is missing." in detail.select_one("#team-domains").get_text(" ", strip=True)
    assert detail.select_one("#team-contacts").get_text() == "4,321"
    assert detail.select_one(f"#f-billing-cap-{other.id}")  # the cap form of app/billing


def test_the_console_filters_and_pages(app, admin, web):
    for number in range(30):
        Team.create(name=f"Team {number:02d}")
    writer_team = Team.get(Team.name == "Team 07")
    make_member(app, writer_team, "author", "writer@example.com")
    page = soup(web.get("/admin/teams"))
    assert len(page.select("#console-teams tbody tr")) == 25
    assert "31 teams, page 1 of 2" in page.select_one("#teams-count").get_text()
    second = soup(web.get(page.select_one("nav.pager a[rel=next]")["href"]))
    assert len(second.select("#console-teams tbody tr")) == 6
    found = soup(web.get("/admin/teams?q=WRITER@"))  # a member's address, any case
    assert [r["id"] for r in found.select("#console-teams tbody tr")] == [f"team-{writer_team.id}"]
    assert soup(web.get("/admin/teams?q=%25")).select_one("#teams-empty")  # % is a character, not a wildcard
    assert soup(web.get("/admin/teams?show=suspended")).select_one("#teams-empty")
    assert len(soup(web.get("/admin/teams?page=99")).select("#console-teams tbody tr")) == 6  # the last page


def test_suspend_shows_the_banner_refuses_launching_and_resume_allows_it(app, admin, web, ready_team):
    team, news = ready_team
    _, member = make_member(app, team, "manager", "manager@example.com")
    draft = create_draft(web, news)

    refused = web.post(f"/admin/teams/{team.id}/suspend", {"reason": "  "})
    assert refused.status_code == 422
    assert "Say why the team is suspended" in soup(refused).select_one("#e-reason").get_text()
    assert acme().suspended_at is None

    reason = "Complaints about <b>bought lists</b>"
    response = web.post(f"/admin/teams/{team.id}/suspend", {"reason": reason})
    assert response.status_code == 302
    assert (acme().suspended_reason, acme().suspended_by_id) == (reason, admin.id)

    page = soup(member.get("/campaigns/"))
    banner = page.select_one("#suspended-banner")
    assert banner.get_text(" ", strip=True).startswith(
        "Sending is suspended by the instance administrator: Complaints about <b>bought lists</b>.")
    assert banner.select_one("b") is None  # the reason is text, escaped
    assert "bought lists" in soup(web.get(f"/admin/teams/{team.id}")).select_one("#team-suspension").get_text()
    assert soup(web.get("/admin/teams?show=suspended")).select_one(f"#team-{team.id}")

    launch = member.post(f"/campaigns/{draft.id}/publish", {"when": "now"})
    assert launch.status_code == 422
    assert "bought lists" in soup(launch).select_one(".flash-error").get_text()
    assert Campaign.get_by_id(draft.id).state == CampaignState.DRAFT

    assert web.post(f"/admin/teams/{team.id}/resume").status_code == 302
    assert acme().suspended_at is None
    history = [li.get_text(" ", strip=True) for li in
               soup(web.get(f"/admin/teams/{team.id}")).select("#team-standing-history li")]
    assert len(history) == 2  # newest first, each with who and (for a suspension) why, escaped
    assert history[0].endswith("resumed by admin@example.com")
    assert history[1].endswith("suspended by admin@example.com: Complaints about <b>bought lists</b>")
    assert [(a.action, a.user_id) for a in AuditLog.select().where(AuditLog.action.startswith("team."))
            .order_by(AuditLog.id)] == [("team.suspend", admin.id), ("team.resume", admin.id)]
    assert soup(member.get("/campaigns/")).select_one("#suspended-banner") is None
    launched = member.post(f"/campaigns/{draft.id}/publish", {"when": "now"})
    assert launched.status_code == 302
    assert Campaign.get_by_id(draft.id).state in (CampaignState.SENDING, CampaignState.COMPLETED)


def test_a_suspension_touches_only_its_team_and_an_unknown_team_is_404(app, admin, web):
    team, other = acme(), Team.create(name="Bravo")
    assert web.post(f"/admin/teams/{other.id}/suspend", {"reason": "Spam"}).status_code == 302
    assert Team.get_by_id(other.id).suspended_at is not None and acme().suspended_at is None
    assert soup(web.get("/campaigns/")).select_one("#suspended-banner") is None  # Acme is the admin's team
    missing = other.id + 100
    assert web.get(f"/admin/teams/{missing}").status_code == 404
    assert web.post(f"/admin/teams/{missing}/suspend", {"reason": "Spam"}).status_code == 404
    assert web.post(f"/admin/teams/{missing}/resume").status_code == 404
    assert team.id != other.id and acme().suspended_at is None


def test_suspend_and_resume_need_the_csrf_token(app, admin, web):
    team = acme()
    assert web.client.post(f"/admin/teams/{team.id}/suspend", data={"reason": "Spam"}).status_code == 400
    assert acme().suspended_at is None
    web.post(f"/admin/teams/{team.id}/suspend", {"reason": "Spam"})
    assert web.client.post(f"/admin/teams/{team.id}/resume").status_code == 400
    assert acme().suspended_at is not None


def test_a_team_administrator_cannot_use_the_console(app, admin):
    team = acme()
    _, team_admin = make_member(app, team, "admin", "team-admin@example.com")
    assert Membership.get(Membership.team == team, Membership.role == "admin").user_id == admin.id
    assert team_admin.get("/admin/teams").status_code == 403
    assert team_admin.get(f"/admin/teams/{team.id}").status_code == 403
    assert team_admin.post(f"/admin/teams/{team.id}/suspend", {"reason": "Mine"}).status_code == 403
    assert acme().suspended_at is None


def test_needing_attention_shows_failing_paused_and_suspended_teams(app, admin, web):
    failing, paused, suspended = Team.create(name="Failing"), Team.create(name="Paused"), Team.create(name="Gone")
    domain = SenderDomain.create(team=failing, domain="failing.example")
    DomainHealth.create(team=failing, sender_domain=domain, status="fail", checked_at=utcnow())
    Campaign.create(team=paused, name="Spring", state=CampaignState.PAUSED, state_reason="Paused by Loft: bounces")
    Campaign.create(team=acme(), name="Mine", state=CampaignState.PAUSED, state_reason="")  # a person's pause
    web.post(f"/admin/teams/{suspended.id}/suspend", {"reason": "Spam"})
    page = soup(web.get("/admin/teams?show=attention"))
    assert [r["id"] for r in page.select("#console-teams tbody tr")] == [
        f"team-{failing.id}", f"team-{suspended.id}", f"team-{paused.id}"]  # by name; Acme is fine
    assert "Suspended" in page.select_one(f"#team-{suspended.id} .team-health").get_text()
    detail = soup(web.get(f"/admin/teams/{paused.id}"))
    assert detail.select_one("#team-paused").get_text(" ", strip=True) == "Spring : Paused by Loft: bounces"
    active = soup(web.get("/admin/teams?show=active"))
    assert f"team-{suspended.id}" not in [r["id"] for r in active.select("#console-teams tbody tr")]
