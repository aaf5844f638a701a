"""Automation triggers (app/automations/triggers.py): every kind starts a run through the real place it happens
(the hosted form, the confirmation link, a CSV import, the API, the contact pages), re-entry rules, paused and draft
automations ignored, exits on unsubscribe / deletion / goal, and POST /api/v1/events. Time is the clock file."""
import datetime
import time

import pytest

from app import clock
from app import tokens
from app.automations import runs
from app.automations import triggers
from app.consent import forms
from app.consent import gdpr
from app.consent import preferences
from app.models import Automation
from app.models import AutomationEvent
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import Contact
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Tag
from app.models import Team
from tests.imports_support import run_file
from tests.tracking_support import make_campaign
from tests.tracking_support import make_send

T0 = datetime.datetime(2026, 3, 2, 10, 0)  # a Monday, UTC
MONTH = 60 * 24 * 30


@pytest.fixture
def clocked(app, tmp_path):
    app.config["CLOCK_FILE"] = str(tmp_path / "clock.txt")
    clock.set_time(app.config["CLOCK_FILE"], T0)
    with app.app_context():  # services called directly read the clock file and the app's settings
        yield app.config["CLOCK_FILE"]


@pytest.fixture
def acme(admin, clocked):
    return Team.get(Team.name == "Acme")


@pytest.fixture
def news(acme):
    return MailingList.create(team=acme, visibility="public", name="News", double_opt_in=False)


def automation(team, trigger, state="live", reentry="never", goal=None, name="Welcome"):
    """A live automation whose one step is a month's wait, so an entered run stays visible as waiting."""
    made = Automation.create(team=team, name=name, state=state, trigger=trigger, goal=goal or {}, reentry=reentry)
    step = AutomationStep.create(automation=made, kind="wait", config={"mode": "duration", "minutes": MONTH})
    made.first_step_id = step.id
    made.save()
    return made


def runs_of(made, **where):
    query = AutomationRun.select().where(AutomationRun.automation == made.id).order_by(AutomationRun.id)
    return [run for run in query if all(getattr(run, k) == v for k, v in where.items())]


def person(team, email="ann@example.com", **extra):
    return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], status="active", **extra)


# --- list_join / confirmed, through the real routes ---------------------------------------------------------

def test_hosted_form_sign_up_on_a_single_opt_in_list_starts_the_list_join(app, acme, news):
    welcome = automation(acme, {"kind": "list_join", "list_id": news.id})
    other = automation(acme, {"kind": "list_join", "list_id": news.id + 1000}, name="Other list")
    with app.app_context():
        ts = forms.form_stamp(news, at=time.time() - 5)
    response = app.test_client().post(f"/f/{news.public_id}", data={"email": "new@example.com", "ts": ts,
                                                                     "website": ""},
                                      environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 200, response.get_data(as_text=True)
    contact = Contact.get(Contact.email == "new@example.com")
    [run] = runs_of(welcome)
    assert run.contact_id == contact.id and run.state == "waiting"
    assert run.data["trigger"] == "list_join" and run.data["list_id"] == news.id
    assert run.entered_at == T0  # the clock file's time, not the wall clock
    assert runs_of(other) == []


def test_double_opt_in_starts_at_confirmation_not_at_sign_up(app, acme):
    careful = MailingList.create(team=acme, visibility="public", name="Careful", double_opt_in=True)
    joined = automation(acme, {"kind": "list_join", "list_id": careful.id})
    confirmed = automation(acme, {"kind": "confirmed", "list_id": careful.id}, name="Confirmed")
    with app.app_context():
        ts = forms.form_stamp(careful, at=time.time() - 5)
    visitor = app.test_client()
    visitor.post(f"/f/{careful.public_id}", data={"email": "slow@example.com", "ts": ts, "website": ""},
                 environ_base={"REMOTE_ADDR": "198.51.100.8"})
    sub = Subscription.get()
    assert sub.status == "unconfirmed"
    assert runs_of(joined) == [] and runs_of(confirmed) == []  # signing up is not joining yet
    with app.test_request_context():
        link = forms.confirmation_url(careful, sub, "slow@example.com")
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert visitor.post("/" + path).status_code == 200
    assert Subscription.get_by_id(sub.id).status == "subscribed"
    assert len(runs_of(joined)) == 1 and len(runs_of(confirmed)) == 1
    assert runs_of(confirmed)[0].data["trigger"] == "confirmed"
    visitor.post("/" + path)  # confirming twice starts nothing more
    assert len(runs_of(joined)) == 1 and len(runs_of(confirmed)) == 1


def test_api_create_with_lists_and_api_subscription_start_list_join(acme, news, api):
    welcome = automation(acme, {"kind": "list_join", "list_id": news.id})
    created = api.post("/api/v1/contacts", json={"email": "api@example.com", "lists": [news.id]})
    assert created.status_code == 201, created.get_data(as_text=True)
    later = person(acme, "later@example.com")
    subscribed = api.post(f"/api/v1/lists/{news.id}/subscriptions", json={"contact_id": later.id})
    assert subscribed.status_code == 201, subscribed.get_data(as_text=True)
    assert sorted(run.contact_id for run in runs_of(welcome)) == sorted([created.json["id"], later.id])


def test_adding_by_hand_on_the_contact_page_starts_list_join(acme, news, web):
    welcome = automation(acme, {"kind": "list_join", "list_id": news.id})
    ann = person(acme)
    response = web.post(f"/contacts/{ann.id}/lists", {"list_id": str(news.id)})
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert Subscription.get_or_none(Subscription.contact == ann.id) is not None
    assert [run.contact_id for run in runs_of(welcome)] == [ann.id]


def test_a_csv_import_enters_its_new_subscribers_in_bulk(acme, news, web):
    welcome = automation(acme, {"kind": "list_join", "list_id": news.id})
    already = person(acme, "old@example.com")
    Subscription.create(contact=already, list=news, status="subscribed")
    rows = "email,name\n" + "".join(f"reader{i}@example.com,Reader {i}\n" for i in range(40)) + "old@example.com,Old\n"
    job = run_file(web, rows, lists=[news])
    assert job.status == "done", job.error if hasattr(job, "error") else job
    entered = runs_of(welcome)
    assert len(entered) == 40  # the existing subscriber did not join now, so it does not enter
    assert already.id not in {run.contact_id for run in entered}
    assert {run.data["source"] for run in entered} == {"import"}


def test_an_import_moves_each_chunks_runs_before_the_next_chunk_is_read(acme, news, web, monkeypatch):
    """A long import must not hold its welcome emails back until its last row: after a chunk's commit the runs it
    started are moved (a tick is enqueued; in tests it runs inline), while the rest of the file still waits. The
    ticks asked for are spaced by tasks.automations.KICK_EVERY (0 here: one a chunk), and one more at the end."""
    import tasks.automations
    from app.imports import importer
    from app.models import AutomationVisit
    from app.models import ImportJob
    welcome = automation(acme, {"kind": "list_join", "list_id": news.id})
    monkeypatch.setattr(importer, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(tasks.automations, "KICK_EVERY", 0)
    seen = []  # at each tick asked for: (rows imported, job status, runs that had done their first step)
    real_advance = tasks.automations.advance

    def advance():
        job = ImportJob.select().order_by(ImportJob.id.desc()).get()
        real_advance()
        visited = AutomationVisit.select().join(AutomationRun).where(AutomationRun.automation == welcome.id).count()
        seen.append((job.processed_rows, job.status, visited))
    monkeypatch.setattr(tasks.automations, "advance", advance)
    rows = "email,name\n" + "".join(f"reader{i}@example.com,Reader {i}\n" for i in range(35))
    job = run_file(web, rows, lists=[news])
    assert job.status == "done"
    assert seen == [(10, "running", 10), (20, "running", 20), (30, "running", 30), (35, "running", 35),
                    (35, "done", 35)]
    assert len(runs_of(welcome, step_id=welcome.first_step_id)) == 35  # all in the month's wait


def test_ticks_asked_for_during_a_long_entry_are_spaced(monkeypatch):
    """advance_as_they_enter: the first chunk's runs move at once, then at most one tick a KICK_EVERY seconds."""
    import tasks.automations
    asked = []
    monkeypatch.setattr(tasks.automations, "advance", lambda: asked.append(time.monotonic()))
    kick = tasks.automations.advance_as_they_enter(every=3600)
    for _ in range(5):
        kick(500)
    assert len(asked) == 1
    again = tasks.automations.advance_as_they_enter(every=0)
    for _ in range(3):
        again(500)
    assert len(asked) == 4


def test_enter_many_tells_after_each_chunk_it_committed(acme):
    """runs.enter_many(on_entered=...) is called with each chunk's count, after that chunk's runs are stored."""
    made = automation(acme, {"kind": "manual"})
    people = [person(acme, f"p{i}@example.com") for i in range(7)]
    told = []
    entered = runs.enter_many(made, [p.id for p in people], chunk=3,
                              on_entered=lambda count: told.append((count, len(runs_of(made)))))
    assert entered == 7
    assert told == [(3, 3), (3, 6), (1, 7)]
    assert runs.enter_many(made, [p.id for p in people], chunk=3, on_entered=told.append) == 0
    assert len(told) == 3  # nobody entered again (re-entry "never"): nothing to tell


# --- rules every trigger shares ---------------------------------------------------------------------------

def test_paused_and_draft_automations_ignore_triggers(acme, news, api):
    paused = automation(acme, {"kind": "event", "name": "paid"}, state="paused")
    draft = automation(acme, {"kind": "event", "name": "paid"}, state="draft", name="Draft")
    ann = person(acme)
    answer = api.post("/api/v1/events", json={"contact_id": ann.id, "name": "paid"})
    assert answer.status_code == 200 and answer.json["entered"] == 0
    assert runs_of(paused) == [] and runs_of(draft) == []
    with pytest.raises(triggers.TriggerError):
        triggers.start_manually(draft, [ann.id])


@pytest.mark.parametrize("reentry, expected", [("never", 1), ("after_end", 1), ("always", 2)])
def test_reentry_rules(acme, reentry, expected):
    made = automation(acme, {"kind": "event", "name": "visit"}, reentry=reentry)
    ann = person(acme)
    triggers.record_event(acme, ann, "visit")
    triggers.record_event(acme, ann, "visit")  # the first run still waits
    assert len(runs_of(made)) == expected
    if reentry == "always":
        assert [run.exit_reason for run in runs_of(made)] == ["reentered", ""]
    first = runs_of(made)[-1]
    runs.end(first.id, "done", "", T0)
    triggers.record_event(acme, ann, "visit")
    assert len(runs_of(made)) == {"never": 1, "after_end": 2, "always": 3}[reentry]


def test_inactive_contacts_and_other_teams_contacts_never_enter(acme):
    made = automation(acme, {"kind": "manual"})
    other = Team.create(name="Other")
    stranger = person(other, "stranger@example.com")
    gone = person(acme, "gone@example.com")
    gone.status = "unsubscribed"
    gone.save()
    ann = person(acme)
    assert triggers.start_manually(made, [ann.id, gone.id, stranger.id]) == 1
    assert [run.contact_id for run in runs_of(made)] == [ann.id]


def test_enter_many_is_one_insert_for_newcomers_and_honours_reentry_for_the_rest(acme):
    made = automation(acme, {"kind": "manual"}, reentry="after_end")
    people = [person(acme, f"p{i}@example.com") for i in range(1200)]
    ids = [p.id for p in people]
    assert runs.enter_many(made, ids, {"x": 1}, T0) == 1200
    assert runs.enter_many(made, ids, {"x": 2}, T0) == 0  # all still running
    runs.end(runs_of(made)[0].id, "done", "", T0)
    assert runs.enter_many(made, ids[:3], {"x": 3}, T0) == 1
    assert AutomationRun.select().where(AutomationRun.automation == made.id).count() == 1201


# --- exits ------------------------------------------------------------------------------------------------

def test_unsubscribing_from_everything_exits_runs(acme):
    made = automation(acme, {"kind": "manual"})
    ann = person(acme)
    triggers.start_manually(made, [ann.id])
    preferences.unsubscribe_everything(Contact.get_by_id(ann.id))
    [run] = runs_of(made)
    assert run.state == "exited" and run.exit_reason == "unsubscribed"


def test_status_change_through_the_api_and_deleting_exit_runs(acme, api):
    made = automation(acme, {"kind": "manual"})
    ann, bob = person(acme), person(acme, "bob@example.com")
    triggers.start_manually(made, [ann.id, bob.id])
    assert api.patch(f"/api/v1/contacts/{ann.id}", json={"status": "bounced"}).status_code == 200
    assert api.delete(f"/api/v1/contacts/{bob.id}").status_code == 204
    reasons = {run.contact_id: (run.state, run.exit_reason) for run in runs_of(made)}
    assert reasons[ann.id] == ("exited", "bounced")
    assert [(run.state, run.exit_reason) for run in runs_of(made) if run.contact_id is None] == [("exited", "deleted")]


def test_leaving_the_trigger_list_exits_only_that_lists_runs(acme, news):
    other_list = MailingList.create(team=acme, name="Offers")
    on_news = automation(acme, {"kind": "list_join", "list_id": news.id})
    on_offers = automation(acme, {"kind": "list_join", "list_id": other_list.id}, name="Offers")
    ann = person(acme)
    for lst in (news, other_list):
        Subscription.create(contact=ann, list=lst, status="subscribed")
        triggers.list_joined(acme, [ann.id], lst.id)
    preferences.save(Contact.get_by_id(ann.id), [], "198.51.100.1")  # untick every public list: News
    assert [(run.state, run.exit_reason) for run in runs_of(on_news)] == [("exited", "left_list")]
    assert [run.state for run in runs_of(on_offers)] == ["waiting"]  # Offers is private: the page leaves it be


# --- events -----------------------------------------------------------------------------------------------

def test_events_api_starts_wakes_and_ends_runs(acme, api):
    starts = automation(acme, {"kind": "event", "name": "trial.started"})
    converts = automation(acme, {"kind": "manual"}, goal={"kind": "event", "name": "order.paid"}, name="Convert")
    waits = automation(acme, {"kind": "manual"}, name="Waits")
    ann = person(acme)
    triggers.start_manually(converts, [ann.id])
    triggers.start_manually(waits, [ann.id])
    waiting = runs_of(waits)[0]
    AutomationRun.update(waiting_for="order.paid", next_at=T0 + datetime.timedelta(days=3)).where(
        AutomationRun.id == waiting.id).execute()

    answer = api.post("/api/v1/events", json={"email": "ANN@example.com", "name": "trial.started",
                                               "data": {"plan": "pro"}})
    # 200, not 201: an event is not a resource with an address (no Location), the answer is what it did
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json == {"name": "trial.started", "contact_id": ann.id, "entered": 1, "woken": 0, "goal": 0}
    assert runs_of(starts)[0].data["event_data"] == {"plan": "pro"}

    answer = api.post("/api/v1/events", json={"contact_id": ann.id, "name": "order.paid"})
    assert answer.json["goal"] == 1 and answer.json["woken"] == 1
    assert [(run.state, run.exit_reason) for run in runs_of(converts)] == [("exited", "goal")]
    woken = AutomationRun.get_by_id(waiting.id)
    assert woken.data["last_wait"] == "event"
    assert AutomationEvent.select().where(AutomationEvent.contact == ann.id).count() == 2


def test_events_api_refuses_bad_input_and_changes_nothing(acme, api):
    made = automation(acme, {"kind": "event", "name": "paid"})
    ann = person(acme)
    cases = [
        ({"contact_id": ann.id, "name": "no spaces please"}, "name"),
        ({"contact_id": ann.id, "email": "ann@example.com", "name": "paid"}, None),
        ({"name": "paid"}, None),
        ({"email": "nobody@example.com", "name": "paid"}, "email"),
        ({"email": "not an address", "name": "paid"}, "email"),
        ({"contact_id": ann.id, "name": "paid", "data": {"k": "x" * 8001}}, "data"),
        ({"contact_id": ann.id, "name": "paid", "data": {"nested": {"a": 1}}}, None),
    ]
    for body, field in cases:
        answer = api.post("/api/v1/events", json=body)
        assert answer.status_code == 422, (body, answer.get_data(as_text=True))
        if field:
            assert field in (answer.json.get("errors") or {}), (body, answer.json)
    assert runs_of(made) == [] and AutomationEvent.select().count() == 0


def test_events_api_needs_a_key_an_edit_role_and_the_same_team(acme, api_key_for):
    made = automation(acme, {"kind": "event", "name": "paid"})
    ann = person(acme)
    guest = api_key_for("guest")
    assert guest.post("/api/v1/events", json={"contact_id": ann.id, "name": "paid"}).status_code == 403
    nobody = api_key_for("admin")
    nobody.raw_key = ""
    assert nobody.post("/api/v1/events", json={"contact_id": ann.id, "name": "paid"}).status_code == 401
    other = Team.create(name="Other")
    outsider = api_key_for("admin", team=other)
    answer = outsider.post("/api/v1/events", json={"contact_id": ann.id, "name": "paid"})
    assert answer.status_code == 422  # another team's contact is not found
    answer = outsider.post("/api/v1/events", json={"email": "ann@example.com", "name": "paid"})
    assert answer.status_code == 422
    assert runs_of(made) == [] and AutomationEvent.select().count() == 0
    big = api_key_for("admin").post("/api/v1/events", data=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                                    headers={"Content-Type": "application/json"})
    assert big.status_code == 413


# --- segment entry ----------------------------------------------------------------------------------------

def test_segment_members_at_go_live_are_the_baseline_newcomers_enter(acme, news, api):
    vip = Segment.create(team=acme, name="VIPs", rules={"op": "and", "rules": [
        {"field": "list", "operator": "in_list", "value": news.id}]})
    early = person(acme, "early@example.com")
    Subscription.create(contact=early, list=news, status="subscribed")
    made = automation(acme, {"kind": "segment_entry", "segment_id": vip.id})
    assert triggers.check_segments(T0) == 0  # the first look is the baseline
    assert runs_of(made) == []
    late = person(acme, "late@example.com")
    # A contact change (here: added to the list through the API) checks the segment for that contact at once.
    assert api.post(f"/api/v1/lists/{news.id}/subscriptions", json={"contact_id": late.id}).status_code == 201
    assert [run.contact_id for run in runs_of(made)] == [late.id]
    # Someone who joined some other way is found by the periodic check.
    third = person(acme, "third@example.com")
    Subscription.create(contact=third, list=news, status="subscribed")
    assert triggers.check_segments(T0) == 1
    assert sorted(run.contact_id for run in runs_of(made)) == sorted([late.id, third.id])
    assert triggers.check_segments(T0) == 0


# --- manual start: the contacts page's bulk action ----------------------------------------------------------

def test_bulk_start_an_automation_for_ticked_contacts_and_for_a_filter(acme, web):
    made = automation(acme, {"kind": "manual"})
    ann, bob = person(acme), person(acme, "bob@example.com")
    page = web.get("/contacts/")
    assert f'<option value="{made.id}">Welcome</option>' in page.get_data(as_text=True)
    response = web.post("/contacts/bulk", {"action": "start_automation", "scope": "selected",
                                           "ids": [str(ann.id), str(bob.id)], "automation_id": str(made.id)})
    assert response.status_code == 302, response.get_data(as_text=True)
    status = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "Done. 2 contacts entered" in status and "Welcome" in status
    assert sorted(run.contact_id for run in runs_of(made)) == sorted([ann.id, bob.id])
    assert {run.data["trigger"] for run in runs_of(made)} == {"manual"}
    # The whole filter asks first, saying how many, then enters those the re-entry rule allows (nobody new).
    carl = person(acme, "carl@example.com")
    form = {"action": "start_automation", "scope": "filter", "automation_id": str(made.id)}
    confirm = web.post("/contacts/bulk", form).get_data(as_text=True)
    assert "Start “Welcome” for 3 contacts?" in confirm
    response = web.post("/contacts/bulk", dict(form, confirmed="1"))
    assert "Done. 1 contact entered" in web.get(response.headers["Location"]).get_data(as_text=True)
    assert carl.id in {run.contact_id for run in runs_of(made)}


def test_a_bulk_start_moves_each_batchs_runs_before_the_next_batch(acme, web, monkeypatch):
    """A bulk "start an automation" over many contacts asks for a tick after each batch's commit (KICK_EVERY 0 here),
    so the first batch's runs move while the others still enter; and one more at the end."""
    import tasks.automations
    from app.contacts import query
    from app.models import AutomationVisit
    made = automation(acme, {"kind": "manual"})
    people = [person(acme, f"p{i}@example.com") for i in range(5)]
    monkeypatch.setattr(query, "BATCH_SIZE", 2)
    monkeypatch.setattr(tasks.automations, "KICK_EVERY", 0)
    seen = []  # at each tick asked for: (runs entered, runs that had done their first step after it)
    real_advance = tasks.automations.advance

    def advance():
        entered = len(runs_of(made))
        real_advance()
        seen.append((entered, AutomationVisit.select().join(AutomationRun)
                     .where(AutomationRun.automation == made.id).count()))
    monkeypatch.setattr(tasks.automations, "advance", advance)
    response = web.post("/contacts/bulk", {"action": "start_automation", "scope": "selected",
                                           "ids": [str(p.id) for p in people], "automation_id": str(made.id)})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert seen == [(2, 2), (4, 4), (5, 5), (5, 5)]


def test_bulk_start_refuses_another_teams_or_a_paused_automation(acme, web):
    ann = person(acme)
    theirs = automation(Team.create(name="Other"), {"kind": "manual"})
    paused = automation(acme, {"kind": "manual"}, state="paused", name="Paused")
    for target in (theirs, paused):
        response = web.post("/contacts/bulk", {"action": "start_automation", "scope": "selected",
                                               "ids": [str(ann.id)], "automation_id": str(target.id)},
                            follow_redirects=True)
        assert "Choose a live automation" in response.get_data(as_text=True)
        assert runs_of(target) == []


def test_suppressing_an_address_through_the_api_exits_its_runs(acme, api):
    made = automation(acme, {"kind": "manual"})
    ann, bob = person(acme), person(acme, "bob@example.com")
    triggers.start_manually(made, [ann.id, bob.id])
    assert api.post("/api/v1/suppressions", json={"value": "ann@example.com"}).status_code == 201
    states = {run.contact_id: (run.state, run.exit_reason) for run in runs_of(made)}
    assert states == {ann.id: ("exited", "suppressed"), bob.id: ("waiting", "")}


def test_bulk_status_change_and_bulk_delete_exit_runs(acme, web):
    made = automation(acme, {"kind": "manual"})
    ann, bob, carl = person(acme), person(acme, "bob@example.com"), person(acme, "carl@example.com")
    triggers.start_manually(made, [ann.id, bob.id, carl.id])
    web.post("/contacts/bulk", {"action": "change_status", "scope": "selected", "ids": [str(ann.id)],
                                "new_status": "complained"})
    web.post("/contacts/bulk", {"action": "delete", "scope": "selected", "ids": [str(bob.id)], "confirmed": "1"})
    assert Contact.get_or_none(Contact.id == bob.id) is None
    states = sorted((run.contact_id or 0, run.state, run.exit_reason) for run in runs_of(made))
    assert states == sorted([(0, "exited", "deleted"), (ann.id, "exited", "complained"), (carl.id, "waiting", "")])


def test_gdpr_erasure_ends_runs_and_forgets_their_data_and_events(acme, admin):
    made = automation(acme, {"kind": "event", "name": "paid"})
    ann = person(acme)
    triggers.record_event(acme, ann, "paid", {"card": "1234"})
    gdpr.erase(acme, admin, Contact.get_by_id(ann.id), "ann@example.com")
    [run] = runs_of(made)
    assert (run.state, run.exit_reason, run.data, run.contact_id) == ("exited", "deleted", {}, None)
    assert AutomationEvent.select().count() == 0


def test_the_unsubscribe_link_ends_the_lists_runs_and_leaving_everything_ends_all(acme, news, app):
    offers = MailingList.create(team=acme, name="Offers")
    on_news = automation(acme, {"kind": "list_join", "list_id": news.id})
    on_offers = automation(acme, {"kind": "list_join", "list_id": offers.id}, name="Offers")
    other = automation(acme, {"kind": "manual"}, name="Other")
    ann = person(acme)
    for lst in (news, offers):
        Subscription.create(contact=ann, list=lst, status="subscribed")
        triggers.list_joined(acme, [ann.id], lst.id)
    triggers.start_manually(other, [ann.id])
    campaign = make_campaign(acme, audience={"lists": [news.id], "segments": []})
    send = make_send(campaign, Contact.get_by_id(ann.id))
    visitor = app.test_client()
    link = f"/u/{tokens.sign('unsubscribe', send.id)}"
    assert visitor.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    # News only: its automation stops, Offers' and the manual one go on (the contact is still subscribed to Offers).
    assert [(r.state, r.exit_reason) for r in runs_of(on_news)] == [("exited", "left_list")]
    assert [r.state for r in runs_of(on_offers) + runs_of(other)] == ["waiting", "waiting"]
    # Leaving the last list makes the contact unsubscribed: every run ends.
    Subscription.update(status="unsubscribed").where(Subscription.list == offers.id).execute()
    send_two = make_send(make_campaign(acme, name="Offers mail", audience={"lists": [news.id, offers.id],
                                                                           "segments": []}), Contact.get_by_id(ann.id))
    Subscription.update(status="subscribed").where(Subscription.list == news.id).execute()
    assert visitor.post(f"/u/{tokens.sign('unsubscribe', send_two.id)}",
                        data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Contact.get_by_id(ann.id).status == "unsubscribed"
    assert {(r.state, r.exit_reason) for r in runs_of(on_offers) + runs_of(other)} == {("exited", "unsubscribed")}


def test_tagging_on_the_contact_page_enters_a_tag_segment_at_once(acme, web):
    ann, early = person(acme), person(acme, "early@example.com")
    web.post(f"/contacts/{early.id}/tags", {"tags": "vip"})
    vip_tag = Tag.get(Tag.name == "vip")
    vips = Segment.create(team=acme, name="VIPs", rules={"op": "and", "rules": [
        {"field": "tag", "operator": "has_tag", "value": vip_tag.id}]})
    made = automation(acme, {"kind": "segment_entry", "segment_id": vips.id})
    triggers.went_live(made)  # the builder calls it when the automation goes live: the baseline
    response = web.post(f"/contacts/{ann.id}/tags", {"tags": "vip"})
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert [run.contact_id for run in runs_of(made)] == [ann.id]  # the baseline member did not enter


def test_the_events_endpoint_is_in_the_openapi_document(app):
    document = app.test_client().get("/api/v1/openapi.json").json
    operation = document["paths"]["/api/v1/events"]["post"]
    assert "200" in operation["responses"] and "422" in operation["responses"]


def test_bulk_remove_from_the_trigger_list_ends_that_lists_runs(acme, news, web):
    made = automation(acme, {"kind": "list_join", "list_id": news.id})
    ann, bob = person(acme), person(acme, "bob@example.com")
    web.post("/contacts/bulk", {"action": "add_to_list", "scope": "selected", "ids": [str(ann.id), str(bob.id)],
                                "list_id": str(news.id)})
    assert sorted(run.contact_id for run in runs_of(made)) == sorted([ann.id, bob.id])  # bulk add is a join
    web.post("/contacts/bulk", {"action": "remove_from_list", "scope": "selected", "ids": [str(ann.id)],
                                "list_id": str(news.id)})
    states = {run.contact_id: (run.state, run.exit_reason) for run in runs_of(made)}
    assert states == {ann.id: ("exited", "left_list"), bob.id: ("waiting", "")}
