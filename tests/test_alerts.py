"""Alerts: in-app notices (the bell, /notices, dismiss) and their email to the team's Administrators
through Loft's own mail pipeline (the real mail catcher)."""
import email
import email.policy

import pytest

from app.notices import alerts
from app.bounces import outcomes
from app.models import CaughtMessage
from app.models import Notice
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup


def acme():
    return Team.get(Team.name == "Acme")


def test_outcomes_wrapper_stores_a_notice_and_the_admins_get_one_email(app, admin, catcher):
    team = acme()
    make_member(app, team, "manager", "manager@example.com")
    make_member(app, team, "admin", "second-admin@example.com")
    with app.app_context():
        assert outcomes.notify(team.id, "Campaign “X” paused: our email failed authentication", "DMARC failed.")
        [notice] = Notice.select()
        assert (notice.team_id, notice.kind, notice.campaign_id, notice.emailed_at) == (team.id, "alert", None, None)
        assert alerts.email_pending() == 2
        assert alerts.email_pending() == 0  # once
    messages = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in CaughtMessage.select()]
    assert sorted(m["To"] for m in messages) == ["admin@example.com", "second-admin@example.com"]  # not the manager
    assert all(m["Subject"] == "[Loft] Campaign “X” paused: our email failed authentication" for m in messages)
    assert "DMARC failed." in messages[0].get_body(("plain",)).get_content()
    assert messages[0]["Auto-Submitted"] == "auto-generated"


def test_a_failed_email_is_tried_again_later(app, admin):
    """No catcher listens: the SMTP connection fails, the notice stays pending for the next run."""
    with app.app_context():
        alerts.notify(acme().id, "Subject", "Text")
        assert alerts.email_pending() == 0
        assert Notice.get().emailed_at is None


def test_bell_notices_page_read_and_dismiss(app, admin, web):
    page = soup(web.get("/campaigns/"))
    assert page.select_one(".notices-bell")["aria-label"] == "Notices"
    assert page.select_one(".notices-bell .badge") is None
    assert soup(web.get("/notices/")).select_one("#notices-empty")

    with app.app_context():
        first = alerts.notify(acme().id, "First", "One", campaign_id=None)
        second = alerts.notify(acme(), "Second", "Two <b>not bold</b>", kind="autopause")
    page = soup(web.get("/campaigns/"))
    assert page.select_one(".notices-bell .badge").get_text() == "2"

    page = soup(web.get("/notices/"))
    items = page.select("#notices li.notice")
    assert [i["id"] for i in items] == [f"notice-{second.id}", f"notice-{first.id}"]  # newest first
    assert items[0].select_one(".notice-text").get_text() == "Two <b>not bold</b>"  # escaped
    assert items[0].select_one(".notice-text b") is None
    assert all(i.select_one(".badge").get_text() == "New" for i in items)
    assert soup(web.get("/campaigns/")).select_one(".notices-bell .badge") is None  # read

    response = web.post(f"/notices/{first.id}/dismiss", htmx=True)
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    assert [i["id"] for i in soup(web.get("/notices/")).select("#notices li.notice")] == [f"notice-{second.id}"]
    response = web.post("/notices/dismiss-all", follow_redirects=True)
    assert soup(response).select_one("#notices-empty")
    assert Notice.select().where(Notice.dismissed_at.is_null()).count() == 0


def test_another_teams_notice_is_not_found(app, admin, web):
    other = Team.create(name="Other")
    with app.app_context():
        theirs = alerts.notify(other.id, "Theirs", "Secret")
    assert web.post(f"/notices/{theirs.id}/dismiss").status_code == 404
    assert Notice.get_by_id(theirs.id).dismissed_at is None
    assert "Theirs" not in web.get("/notices/").get_data(as_text=True)
    web.post("/notices/dismiss-all")
    assert Notice.get_by_id(theirs.id).dismissed_at is None


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_every_member_sees_the_notices(app, admin, role):
    team = acme()
    with app.app_context():
        alerts.notify(team.id, "For everyone", "Text")
    _, member = make_member(app, team, role)
    page = soup(member.get("/notices/"))
    assert page.select_one("#notices .notice h2").get_text(" ", strip=True) == "New For everyone"
