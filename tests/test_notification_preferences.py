"""Notification preferences: the registry's defaults per role, a person's page (event x {email, in the app}, one
POST), and delivery honouring the choices: the notices email job, the in-app list and bell, the DMARC digest."""
import datetime
import email
import email.policy

import pytest

from app.campaigns import finished
from app.deliverability.dmarc import store
from app.deliverability.dmarc import weekly
from app.imports import importer
from app.models import CaughtMessage
from app.models import ImportJob
from app.models import Membership
from app.models import Notice
from app.models import NotificationPreference
from app.models import Team
from app.models import User
from app.notices import alerts
from app.notices import preferences
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.dmarc_support import report_xml
from tests.imports_support import run_file
from tests.imports_support import start
from tests.imports_support import uploaded_job
from tests.sending_support import launched
from tests.sending_support import make_team
from tests.sending_support import run


def acme():
    return Team.get(Team.name == "Acme")


def recipients():
    return sorted(email.message_from_bytes(m.raw, policy=email.policy.default)["To"] for m in CaughtMessage.select())


def form_from(page, **changes):
    """The preferences form as the page renders it (ticked boxes), with `changes` {field: bool} applied."""
    ticked = {box["name"]: "1" for box in page.select("#notification-preferences input[type=checkbox]")
              if box.has_attr("checked")}
    for name, on in changes.items():
        ticked.pop(name, None)
        if on:
            ticked[name] = "1"
    return ticked


def test_defaults_per_role():
    admin, manager = preferences.defaults("admin"), preferences.defaults("manager")
    author, guest = preferences.defaults("author"), preferences.defaults("guest")
    assert all(choice["email"] for key, choice in admin.items())  # every event reaches Administrators by email
    assert all(choice["app"] for key, choice in admin.items() if key != "dmarc_digest")  # an email-only event
    assert [key for key, c in manager.items() if c["email"]] == ["campaign_paused"]
    assert {"campaign_finished", "import_finished", "campaign_paused"} <= {k for k, c in manager.items() if c["app"]}
    assert author["campaign_finished"]["app"] and not author["worker_down"]["app"]
    assert not any(choice["email"] for choice in guest.values())
    assert not any(choice["email"] for choice in author.values())
    assert set(preferences.EVENTS) >= {"campaign_finished", "import_finished", "campaign_paused", "domain_failing",
                                       "worker_down", "usage_80", "usage_100", "dmarc_digest"}


def test_every_kind_in_the_code_belongs_to_an_event():
    from app.backup import restored
    from app.bounces import autopause
    from app.deliverability import gate
    assert preferences.event_of(autopause.KIND) == "campaign_paused"
    assert preferences.event_of(autopause.FINISHED_KIND) == "campaign_finished"
    assert preferences.event_of(gate.KIND) == "domain_failing"
    assert preferences.event_of("blocklist") == "domain_failing"
    assert preferences.event_of(restored.KIND) == preferences.event_of("mailbox") == "other"
    assert preferences.event_of("worker_down") == "worker_down"


def test_the_page_saves_only_differences_and_shows_the_choices(app, admin, web):
    page = soup(web.get("/notices/preferences"))
    boxes = page.select("#notification-preferences input[type=checkbox]")
    assert len(boxes) == 2 * len(preferences.EVENTS) - 1  # the DMARC digest is email-only
    for box in boxes:  # each box has a label naming the event and the channel
        label = page.select_one(f"label[for={box['id']}]").get_text(" ", strip=True)
        event, channel = box["name"].split(".")
        assert preferences.EVENTS[event].label in label and ("email" in label if channel == "email" else "app" in label)
    assert all(box.has_attr("checked") for box in boxes)  # an Administrator gets everything
    assert page.select_one("#notification-preferences input[name=csrf_token]")

    response = web.post("/notices/preferences", form_from(page, **{"worker_down.email": False,
                                                                 "campaign_finished.app": False}))
    assert response.status_code == 302
    rows = {(r.event, r.by_email, r.in_app) for r in NotificationPreference.select()}
    assert rows == {("worker_down", False, True), ("campaign_finished", True, False)}
    page = soup(web.get("/notices/preferences"))
    assert not page.select_one("#f-worker_down-email").has_attr("checked")
    assert page.select_one("#f-worker_down-app").has_attr("checked")
    assert page.select_one("#event-worker_down .badge").get_text() == "changed"

    web.post("/notices/preferences", form_from(page, **{"worker_down.email": True, "campaign_finished.app": True}))
    assert NotificationPreference.select().count() == 0  # back at the defaults: nothing stored


def test_saving_without_the_csrf_token_is_refused(app, admin, web):
    response = web.client.post("/notices/preferences", data={"worker_down.app": "1"})
    assert response.status_code == 400
    assert NotificationPreference.select().count() == 0


def test_the_account_menu_links_the_page(app, admin, web):
    page = soup(web.get("/campaigns/"))
    assert page.select_one(".account-menu a[href='/notices/preferences']")


def test_an_admin_who_opts_out_of_worker_down_by_email_does_not_get_it(app, admin, web, catcher):
    team = acme()
    make_member(app, team, "admin", "second-admin@example.com")
    page = soup(web.get("/notices/preferences"))
    web.post("/notices/preferences", form_from(page, **{"worker_down.email": False}))
    with app.app_context():
        alerts.notify(team.id, "The worker is not running", "Start it.", kind="worker_down")
        assert alerts.email_pending() == 1
    assert recipients() == ["second-admin@example.com"]


def test_a_manager_gets_campaign_paused_by_email_and_can_opt_in_and_out(app, admin, catcher):
    team = acme()
    _, manager = make_member(app, team, "manager", "manager@example.com")
    with app.app_context():
        alerts.notify(team.id, "Campaign paused", "Bounces.", kind="autopause")  # the legacy kind maps to it
        assert alerts.email_pending() == 2
    assert recipients() == ["admin@example.com", "manager@example.com"]

    CaughtMessage.delete().execute()
    page = soup(manager.get("/notices/preferences"))
    assert not page.select_one("#f-domain_failing-email").has_attr("checked")  # not a Manager's default
    manager.post("/notices/preferences", form_from(page, **{"domain_failing.email": True,
                                                           "campaign_paused.email": False}))
    with app.app_context():
        alerts.notify(team.id, "Domain failing", "SPF.", kind="domain_health")
        alerts.notify(team.id, "Campaign paused again", "Bounces.", kind="campaign_paused")
        assert alerts.email_pending() == 3
    messages = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in CaughtMessage.select()]
    assert sorted((m["To"], m["Subject"]) for m in messages) == [
        ("admin@example.com", "[Loft] Campaign paused again"), ("admin@example.com", "[Loft] Domain failing"),
        ("manager@example.com", "[Loft] Domain failing")]


def test_preferences_are_per_team(app, admin, web, catcher):
    other = Team.create(name="Other")
    Membership.create(user=admin, team=other, role="admin")
    page = soup(web.get("/notices/preferences"))
    web.post("/notices/preferences", form_from(page, **{"usage_80.email": False}))
    with app.app_context():
        alerts.notify(other.id, "80 % used", "Other team.", kind="usage_80")
        alerts.notify(acme().id, "80 % used", "Acme.", kind="usage_80")
        assert alerts.email_pending() == 1  # Acme's choice does not silence the other team
    assert NotificationPreference.get().team_id == acme().id


@pytest.mark.parametrize("role", ["author", "guest"])
def test_in_app_list_and_bell_show_only_wanted_kinds(app, admin, role):
    team = acme()
    with app.app_context():
        alerts.notify(team.id, "Campaign done", "Sent.", kind="campaign_finished")
        alerts.notify(team.id, "Worker down", "Start it.", kind="worker_down")
        alerts.notify(team.id, "Something else", "Text.")  # "alert": other, everyone sees it
    _, member = make_member(app, team, role)
    assert soup(member.get("/campaigns/")).select_one(".notices-bell .badge").get_text() == "2"
    page = soup(member.get("/notices/"))
    titles = [h.get_text(" ", strip=True) for h in page.select("#notices .notice h2")]
    assert titles == ["New Something else", "New Campaign done"]
    # Opening the page marked only what they saw as read: the Administrator's bell still counts the worker.
    assert Notice.get(Notice.kind == "worker_down").read_at is None

    user = User.get(User.email == f"{role}-{team.id}@example.com")
    page = soup(member.get("/notices/preferences"))
    member.post("/notices/preferences", form_from(page, **{"worker_down.app": True, "other.app": False,
                                                          "campaign_finished.app": False}))
    titles = [h.get_text(" ", strip=True) for h in soup(member.get("/notices/")).select("#notices .notice h2")]
    assert titles == ["New Worker down"]
    assert {r.event for r in NotificationPreference.select().where(NotificationPreference.user == user.id)} == {
        "worker_down", "other", "campaign_finished"}


def test_nothing_wanted_in_the_app_shows_the_empty_page(app, admin, web):
    with app.app_context():
        alerts.notify(acme().id, "Campaign done", "Sent.", kind="campaign_finished")
    page = soup(web.get("/notices/preferences"))
    web.post("/notices/preferences", {name: "1" for name in form_from(page) if name.endswith(".email")})
    assert soup(web.get("/notices/")).select_one("#notices-empty")
    assert soup(web.get("/campaigns/")).select_one(".notices-bell .badge") is None


def test_the_dmarc_digest_goes_to_those_who_want_it(app, admin, web, catcher):
    today = datetime.date(2026, 11, 30)
    team = acme()
    make_member(app, team, "admin", "second-admin@example.com")
    _, manager = make_member(app, team, "manager", "manager@example.com")
    page = soup(manager.get("/notices/preferences"))
    manager.post("/notices/preferences", form_from(page, **{"dmarc_digest.email": True}))
    page = soup(web.get("/notices/preferences"))
    web.post("/notices/preferences", form_from(page, **{"dmarc_digest.email": False}))
    with app.app_context():
        begin = int(datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc).timestamp())
        store.store_report(team, report_xml(records=2, count=5, begin=begin, end=begin + 86399))
        assert weekly.send_weekly(today=today) == 2
    assert recipients() == ["manager@example.com", "second-admin@example.com"]


def test_an_import_tells_the_team_once_when_it_finishes_or_stops(app, admin, web, catcher):
    team = acme()
    _, author = make_member(app, team, "author", "author@example.com")
    _, guest = make_member(app, team, "guest", "guest@example.com")
    job = run_file(web, "email,name\nann@example.com,Ann\nbob@example.com,Bob\nnot-an-address,X\n")
    assert job.status == "done"
    [notice] = Notice.select()
    assert (notice.kind, notice.subject, notice.data) == ("import_finished", "Import of contacts.csv finished",
                                                          {"import": job.id})
    assert notice.text == ("3 rows read: 2 contacts added, 0 updated, 1 rejected "
                           "(the rejects file is on the import's page).")
    assert importer.run_import(job.id).status == "done" and Notice.select().count() == 1  # not twice
    assert "Import of contacts.csv finished" in author.get("/notices/").get_data(as_text=True)
    assert "Import of contacts.csv finished" not in guest.get("/notices/").get_data(as_text=True)  # not a Guest's
    with app.app_context():
        assert alerts.email_pending() == 1  # the Administrator; the Author sees it in the app only
    assert recipients() == ["admin@example.com"]

    broken = uploaded_job(web, "email,name,city\n" + "".join(f"x{i}@example.com;N\n" for i in range(40)))
    start(web, broken, **{"column-2": "new:city"})
    assert ImportJob.get_by_id(broken.id).status == "failed"
    stopped = Notice.select().where(Notice.id != notice.id).get()
    assert (stopped.kind, stopped.subject) == ("import_finished", "Import of contacts.csv stopped")
    assert stopped.text.startswith("Most rows of this file cannot be read as CSV")


def test_a_campaign_that_completes_tells_the_team_once(ctx, smtp):
    server = smtp()
    team = make_team("Sender")
    campaign, _contacts, _account = launched(team, 3, server.port)
    assert run(campaign.id).outcome == "completed"
    [notice] = Notice.select().where(Notice.team == team.id)
    assert (notice.kind, notice.campaign_id, notice.subject) == ("campaign_finished", campaign.id,
                                                                 f"Campaign “{campaign.name}” has finished")
    assert notice.text.startswith("3 messages sent.")
    assert finished.announce(campaign.id) is None and Notice.select().count() == 1  # once per completion



def test_instance_wide_mail_asks_every_team_of_the_person(app, admin, web):
    other = Team.create(name="Other")
    Membership.create(user=admin, team=other, role="guest")  # a Guest gets nothing by email by default
    assert preferences.wants_email_anywhere(admin.id, "worker_down")  # Acme's Administrator default
    page = soup(web.get("/notices/preferences"))
    web.post("/notices/preferences", form_from(page, **{"worker_down.email": False}))
    assert not preferences.wants_email_anywhere(admin.id, "worker_down")
    NotificationPreference.create(user=admin, team=other, event="worker_down", by_email=True, in_app=False)
    assert preferences.wants_email_anywhere(admin.id, "worker_down")
    Membership.delete().where(Membership.user == admin.id).execute()
    assert preferences.wants_email_anywhere(admin.id, "worker_down")  # in no team: told, by default


def test_the_email_links_the_preferences_of_its_team_which_any_of_its_members_can_open(app, admin, web, catcher):
    other, foreign = Team.create(name="Other"), Team.create(name="Foreign")
    Membership.create(user=admin, team=other, role="manager")
    with app.app_context():
        alerts.notify(other.id, "Paused", "Bounces.", kind="campaign_paused")
        assert alerts.email_pending() == 1
    message = email.message_from_bytes(CaughtMessage.get().raw, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "send “Campaign paused by Loft” by email" in text
    assert f"http://loft.test/notices/preferences?team={other.id}" in text

    page = soup(web.get(f"/notices/preferences?team={other.id}"))  # not the current team (Acme): no switch needed
    assert page.select_one("#preferences-team").get_text() == "Other"
    assert page.select_one("#notification-preferences")["action"] == f"/notices/preferences?team={other.id}"
    assert not page.select_one("#f-worker_down-email").has_attr("checked")  # a Manager's defaults there
    response = web.post(f"/notices/preferences?team={other.id}", form_from(page, **{"campaign_paused.email": False}))
    assert response.headers["Location"].endswith(f"/notices/preferences?team={other.id}")
    assert [(r.team_id, r.event) for r in NotificationPreference.select()] == [(other.id, "campaign_paused")]
    assert soup(web.get("/notices/preferences")).select_one("#preferences-team").get_text() == "Acme"

    assert web.get(f"/notices/preferences?team={foreign.id}").status_code == 404  # not a member
    assert web.post(f"/notices/preferences?team={foreign.id}", {"worker_down.app": "1"}).status_code == 404
    assert NotificationPreference.select().where(NotificationPreference.team == foreign.id).count() == 0
