"""The automation pages (app/automations/views.py): each route through the real app, HTMX fragments, the role matrix
of the routes with URL parameters, another team's ids (404, nothing changed), CSRF, and the per-step counts."""
import pytest

from app.automations import flow
from app.automations import report
from app.events import record
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import Contact
from app.models import MailingList
from app.models import Membership
from app.models import Team
from app.models import utcnow
from tests.conftest import soup
from tests.accounts_support import make_member


@pytest.fixture
def series(app, admin):
    team = Team.get(Team.name == "Acme")
    with app.app_context():
        return flow.create_automation(team, admin, "", starter="welcome")


def steps_of(automation):
    with_ids = flow.ordered_steps(Automation.get_by_id(automation.id))
    return with_ids


def test_empty_list_says_what_to_do_next(web, admin):
    page = soup(web.get("/automations/"))
    assert "No automations yet" in page.text
    assert page.select_one("#new-automation").text.strip() == "Create a welcome series"
    assert page.select_one("#f-starter option[selected]")["value"] == "welcome"


def test_create_welcome_series_and_builder_shows_three_steps(web, admin):
    response = web.post("/automations/new", {"starter": "welcome", "name": ""})
    assert response.status_code == 302
    automation = Automation.get()
    page = soup(web.get(response.headers["Location"]))
    cards = page.select("#flow article.flow-step")
    assert [c.select_one(".flow-summary").text.strip() for c in cards] == [
        "Send “Welcome!”", "Wait 2 days", "Send “Getting started”"]
    assert "Enter the From address in the settings." in page.select_one(".problems").text
    assert page.select_one("a[aria-current=page]").text.strip() == "Automations"
    assert automation.name == "Welcome series"


def test_create_refusal_is_shown_at_its_field(web, admin):
    response = web.post("/automations/new", {"starter": "", "name": " "})
    assert response.status_code == 422
    assert "Give the automation a name" in soup(response).select_one("#e-name").text
    assert Automation.select().count() == 0


def test_edit_in_place_with_htmx_and_a_refusal(web, series):
    email = steps_of(series)[0]
    form = web.get(f"/automations/{series.id}/steps/{email.id}/edit", headers={"HX-Request": "true"})
    fragment = soup(form)
    assert fragment.select_one(f"form#step-form-{email.id}")["hx-target"] == f"#step-{email.id}"
    assert fragment.select_one("[autofocus]")["name"] == "subject"  # the focus moves into the form
    refused = web.post(f"/automations/{series.id}/steps/{email.id}", {"subject": "{{ nope", "body": "x"}, htmx=True)
    assert refused.status_code == 422
    assert soup(refused).select_one(f"#e-s{email.id}-subject").text.strip().startswith("This subject cannot be used")
    saved = web.post(f"/automations/{series.id}/steps/{email.id}",
                     {"subject": "Hello there", "body_kind": "html", "body": "<p>Hi</p>"}, htmx=True)
    assert saved.status_code == 200
    card = soup(saved)
    assert card.select_one(".flow-summary").text.strip() == "Send “Hello there”"
    assert card.select_one("[autofocus]")["id"] == f"edit-step-{email.id}"  # and back to the step's Edit
    assert AutomationStep.get_by_id(email.id).config["subject"] == "Hello there"


def test_add_condition_and_branch_steps_then_remove(web, series):
    first = steps_of(series)[0]
    added = web.post(f"/automations/{series.id}/steps", {"position": f"after:{first.id}", "kind": "condition"},
                     htmx=True)
    assert added.status_code == 200
    condition = AutomationStep.select().where(AutomationStep.kind == "condition").get()
    page = soup(added)
    assert page.select_one(f"#step-form-{condition.id}")  # the new step opens in its form
    assert len(page.select(".flow-branches")) == 1
    web.post(f"/automations/{series.id}/steps", {"position": f"no:{condition.id}", "kind": "exit"}, htmx=True)
    removed = web.post(f"/automations/{series.id}/steps/{condition.id}/remove", htmx=True)
    assert removed.status_code == 200
    assert not soup(removed).select(".flow-branches")
    assert [s.kind for s in steps_of(series)] == ["email", "wait", "email"]
    refused = web.post(f"/automations/{series.id}/steps", {"position": "after:999999", "kind": "email"}, htmx=True)
    assert refused.status_code == 422 and "no longer there" in refused.get_data(as_text=True)


def test_settings_and_state_buttons(web, series):
    news = MailingList.create(team=series.team, name="News")
    bad = web.post(f"/automations/{series.id}/settings", {"name": "W", "trigger_kind": "list_join",
                                                          "trigger_list_id": "", "reentry": "never"})
    assert bad.status_code == 422 and soup(bad).select_one("#e-trigger_list_id")
    ok = web.post(f"/automations/{series.id}/settings", {"name": "W", "trigger_kind": "list_join",
                                                         "trigger_list_id": str(news.id), "reentry": "never",
                                                         "from_email": "hi@example.com"})
    assert ok.status_code == 302
    refused = web.post(f"/automations/{series.id}/state", {"action": "live"})
    assert refused.status_code == 422 and "Fix these first" in soup(refused).select_one(".flash-error").text
    assert Automation.get_by_id(series.id).state == "draft"


def test_report_page_and_counts(web, series, app):
    email = steps_of(series)[0]
    contact = Contact.create(team=series.team, email="r@example.com", domain="example.com")
    campaign = Campaign.create(team=series.team, name="hidden", state="sending")
    AutomationStep.update(campaign=campaign.id).where(AutomationStep.id == email.id).execute()
    now = utcnow()
    run = AutomationRun.create(automation=series.id, team=series.team_id, contact=contact.id, step_id=email.id,
                               state="exited", exit_reason="unsubscribed", data={}, entered_at=now)
    AutomationVisit.create(run=run.id, step=email.id, outcome="queued", done_at=now)
    with app.app_context():
        record(series.team_id, contact.id, "opened", campaign_id=campaign.id)
        record(series.team_id, contact.id, "opened", campaign_id=campaign.id)
        counts = report.step_counts(Automation.get_by_id(series.id))
    assert counts[email.id] == {"entered": 1, "waiting": 0, "sent": 1, "opened": 1, "clicked": 0, "exited": 1}
    page = soup(web.get(f"/automations/{series.id}/report"))
    assert page.select_one("svg[role=img]")
    assert "Unsubscribed" in page.text
    row = page.select_one("#email-rates tbody tr").text
    assert "100.0%" in row and "Welcome!" in row
    builder = soup(web.get(f"/automations/{series.id}"))
    assert "1 opened" in builder.select_one(f"#step-{email.id} .flow-counts").text


def test_another_teams_automation_is_not_found_and_unchanged(app, web, series):
    other = Team.create(name="Globex")
    user, stranger = make_member(app, other, "admin", "boss@globex.example")
    Membership.delete().where((Membership.user == user) & (Membership.team != other)).execute()
    step = steps_of(series)[0]
    before = dict(step.config)
    base = f"/automations/{series.id}"
    for path in (base, f"{base}/report", f"{base}/simulate", f"{base}/steps/{step.id}", f"{base}/steps/{step.id}/edit"):
        assert stranger.get(path).status_code == 404, path
    for path, data in ((f"{base}/settings", {"name": "x", "trigger_kind": "manual", "reentry": "never"}),
                       (f"{base}/steps", {"position": "top", "kind": "exit"}),
                       (f"{base}/steps/{step.id}", {"subject": "hacked", "body": "x"}),
                       (f"{base}/steps/{step.id}/remove", {}), (f"{base}/state", {"action": "live"}),
                       (f"{base}/test", {"test_email": "a@example.com"}), (f"{base}/start", {"list_id": "1"})):
        assert stranger.post(path, data).status_code == 404, path
    assert AutomationStep.get_by_id(step.id).config == before
    assert AutomationStep.get_by_id(step.id).removed_at is None
    assert Automation.get_by_id(series.id).name == "Welcome series"
    assert AutomationStep.select().count() == 3
    # Another automation's step under this automation's URL is not found either.
    own = flow.create_automation(other, user, "Theirs", starter="welcome")
    theirs = steps_of(own)[0]
    assert web.get(f"{base}/steps/{theirs.id}/edit").status_code == 404


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_role_matrix_of_routes_with_ids(app, series, role):
    _, member = make_member(app, series.team, role)
    step = steps_of(series)[0]
    base = f"/automations/{series.id}"
    can_edit, can_send = role in ("manager", "author"), role == "manager"
    for path, allowed in ((base, True), (f"{base}/report", True), (f"{base}/simulate", True),
                          (f"{base}/steps/{step.id}", True),
                          (f"{base}/steps/{step.id}/edit", can_edit)):
        assert (member.get(path).status_code == 403) != allowed, (role, path)
    for path, data, allowed in ((f"{base}/settings", {"name": "Same"}, can_edit),
                                (f"{base}/steps/{step.id}", {"subject": ""}, can_edit),
                                (f"{base}/steps", {"position": "top", "kind": "nope"}, can_edit),
                                (f"{base}/state", {"action": "nope"}, can_send),
                                (f"{base}/test", {"test_email": ""}, can_send),
                                (f"{base}/start", {"list_id": ""}, can_send)):
        assert (member.post(path, data).status_code == 403) != allowed, (role, path)
    if can_edit:
        assert member.post(f"{base}/steps/{step.id}/remove").status_code == 302
    else:
        assert member.post(f"{base}/steps/{step.id}/remove").status_code == 403
        assert AutomationStep.get_by_id(step.id).removed_at is None


def test_posts_without_the_csrf_token_are_refused(client, series):
    step = steps_of(series)[0]
    for path in ("/automations/new", f"/automations/{series.id}/steps/{step.id}/remove",
                 f"/automations/{series.id}/state"):
        assert client.post(path, data={"name": "x", "action": "live"}).status_code in (400, 403), path
    assert AutomationStep.get_by_id(step.id).removed_at is None
    assert Automation.select().count() == 1


def test_simulate_the_next_7_days_lists_each_email_time(web, series):
    response = web.get(f"/automations/{series.id}/simulate", headers={"HX-Request": "true"})
    assert response.status_code == 200
    rows = [row.select_one("th").text.strip() for row in soup(response).select("tbody tr")]
    assert rows == ["Step 1: Welcome!", "Step 3: Getting started"]
    assert "Nobody enters until someone starts it" in response.get_data(as_text=True)
    assert soup(web.get(f"/automations/{series.id}")).select_one("[hx-target='#simulation']")


def test_send_test_sends_every_email_step_to_one_address(web, ready_team, app):
    from app.models import CaughtMessage
    team, _news = ready_team
    with app.app_context():
        automation = flow.create_automation(team, None, "", starter="welcome")
    Automation.update(from_email="hi@acme.example").where(Automation.id == automation.id).execute()
    refused = web.post(f"/automations/{automation.id}/test", {"test_email": "a@example.com, b@example.com"},
                       htmx=True)
    assert refused.status_code == 422 and CaughtMessage.select().count() == 0
    unknown = web.post(f"/automations/{automation.id}/test", {"test_email": "me@example.com",
                                                              "test_contact": "nobody@example.com"}, htmx=True)
    assert unknown.status_code == 422 and "No contact of this team" in unknown.get_data(as_text=True)
    response = web.post(f"/automations/{automation.id}/test", {"test_email": "me@example.com",
                                                               "test_contact": "Reader1@example.com"}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Sent 2 test emails" in soup(response).select_one("#automation-test").text
    subjects = sorted(m.subject for m in CaughtMessage.select())
    assert len(subjects) == 2 and all("Test" in s for s in subjects)
    import email
    from email import policy
    welcome = next(m for m in CaughtMessage.select() if "Welcome!" in m.subject)
    message = email.message_from_bytes(bytes(welcome.raw), policy=policy.default)
    text = message.get_body(preferencelist=("plain", "html")).get_content()
    assert "Hi Reader 1" in text  # the chosen contact's name filled {{ contact.name }}


def test_contact_page_shows_automation_steps_with_links(web, series):
    email, wait, _ = steps_of(series)
    contact = Contact.create(team=series.team, email="t@example.com", domain="example.com")
    now = utcnow()
    run = AutomationRun.create(automation=series.id, team=series.team_id, contact=contact.id, step_id=wait.id,
                               state="exited", exit_reason="unsubscribed", data={}, entered_at=now, ended_at=now)
    AutomationVisit.create(run=run.id, step=email.id, outcome="queued", entered_at=now, done_at=now)
    AutomationVisit.create(run=run.id, step=wait.id, outcome="done", detail="timeout", entered_at=now, done_at=now)
    page = soup(web.get(f"/contacts/{contact.id}"))
    assert page.select_one("#automation-history") is None  # no separate section: one Activity timeline
    section = page.select_one("#timeline")
    lines = [" ".join(li.text.split()) for li in section.select("li.event-automation")]
    assert any(line.endswith("Automation Welcome series: exited: unsubscribed") for line in lines), lines
    assert any(line.endswith("Automation Welcome series: email “Welcome!” sent") for line in lines), lines
    assert any(line.endswith("Automation Welcome series: waited (ended by timeout)") for line in lines), lines
    assert any(line.endswith("Automation Welcome series: entered") for line in lines), lines
    assert section.select_one("li.event-automation a")["href"] == f"/automations/{series.id}"
    other = Contact.create(team=series.team, email="u@example.com", domain="example.com")
    assert soup(web.get(f"/contacts/{other.id}")).select("#timeline li.event-automation") == []


def test_start_by_hand_for_a_list_and_the_list_page_counts(web, series):
    from app.models import Subscription
    team = series.team
    news = MailingList.create(team=team, name="News")
    theirs = MailingList.create(team=Team.create(name="Globex"), name="Theirs")
    for i, status in enumerate(["subscribed", "subscribed", "unsubscribed"]):
        contact = Contact.create(team=team, email=f"m{i}@example.com", domain="example.com")
        Subscription.create(contact=contact, list=news, status=status)
    refused = web.post(f"/automations/{series.id}/start", {"list_id": str(news.id)})
    assert refused.status_code == 422 and "is not live" in refused.get_data(as_text=True)
    Automation.update(state="live").where(Automation.id == series.id).execute()
    assert soup(web.get(f"/automations/{series.id}")).select_one("#start-title")
    other = web.post(f"/automations/{series.id}/start", {"list_id": str(theirs.id)})
    assert other.status_code == 422 and AutomationRun.select().count() == 0
    started = web.post(f"/automations/{series.id}/start", {"list_id": str(news.id)})
    # A bulk action of the contacts area, run as a task (inline here), with its progress page.
    assert started.status_code == 302 and "/contacts/bulk/" in started.headers["Location"]
    assert AutomationRun.select().where(AutomationRun.automation == series.id).count() == 2
    progress = soup(web.get(started.headers["Location"]))
    assert "Done. 2 contacts entered." in progress.select_one("#bulk-job").text  # the subscribed ones only
    assert progress.select_one(f"a[href='/automations/{series.id}']")
    row = soup(web.get("/automations/")).select_one(f"#automation-{series.id}")
    assert [td.text.strip() for td in row.select("td.num")] == ["2", "0", "0"]


def test_edit_without_javascript_goes_through_full_pages(web, series):
    wait = steps_of(series)[1]
    page = soup(web.get(f"/automations/{series.id}/steps/{wait.id}/edit"))
    assert page.select_one(f"#step-form-{wait.id} [name=amount]")["value"] == "2"
    assert page.select_one(f"#step-form-{wait.id} [name=unit] option[selected]")["value"] == "days"
    refused = web.post(f"/automations/{series.id}/steps/{wait.id}", {"mode": "duration", "amount": "x",
                                                                     "unit": "days"})
    assert refused.status_code == 422
    assert soup(refused).select_one(f"#e-s{wait.id}-amount").text.strip() == "The wait must be a whole number."
    saved = web.post(f"/automations/{series.id}/steps/{wait.id}", {"mode": "duration", "amount": "3", "unit": "hours"})
    assert saved.status_code == 302 and saved.headers["Location"].endswith(f"#step-{wait.id}")
    assert AutomationStep.get_by_id(wait.id).config == {"mode": "duration", "minutes": 180}
    added = web.post(f"/automations/{series.id}/steps", {"position": "top", "kind": "webhook"})
    assert added.status_code == 302 and added.headers["Location"].endswith("/edit")


def test_step_counts_take_the_same_few_queries_for_3_or_30_steps(app, series, caplog):
    import logging

    def queries(automation):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            counts = report.step_counts(Automation.get_by_id(automation.id))
        return len([r for r in caplog.records if r.name == "peewee"]), counts

    few, counts = queries(series)
    assert len(counts) == 3
    last = steps_of(series)[-1]
    for _ in range(27):
        last = flow.add_step(series, "wait", after=last.id)
        Campaign.create(team=series.team, name="h")  # not linked: only steps' own campaigns count
    many, counts = queries(series)
    assert len(counts) == 30
    assert 3 <= few == many <= 4  # steps, visits, runs (and events when a step has its campaign)


def test_wait_form_without_javascript_shows_every_mode_and_the_server_reads_only_the_chosen_one(web, series):
    wait = steps_of(series)[1]
    form = soup(web.get(f"/automations/{series.id}/steps/{wait.id}/edit")).select_one(f"#step-form-{wait.id}")
    fieldsets = form.select("fieldset[data-mode]")
    assert [(f["data-mode"], f.legend.text, f.has_attr("hidden")) for f in fieldsets] == [
        ("duration", "If you wait “For a while”", False), ("until", "If you wait “Until a day and time”", False),
        ("event", "If you wait “For an event”", False)]
    mode = form.select_one("select[name=mode]")
    assert mode["aria-controls"].split() == [f["id"] for f in fieldsets]
    # The other modes' fields, even broken ones, are ignored: neither refused nor stored.
    noise = {"weekdays": "9", "time": "25:99", "zone": "mars", "event": "not a name!", "timeout_days": "x"}
    saved = web.post(f"/automations/{series.id}/steps/{wait.id}", {"mode": "duration", "amount": "3", "unit": "hours",
                                                                   **noise})
    assert saved.status_code == 302
    assert AutomationStep.get_by_id(wait.id).config == {"mode": "duration", "minutes": 180}
    saved = web.post(f"/automations/{series.id}/steps/{wait.id}", {"mode": "event", "event": "order_placed",
                                                                   "timeout_days": "2", "amount": "x", "unit": "years",
                                                                   "time": "nope"})
    assert saved.status_code == 302
    assert AutomationStep.get_by_id(wait.id).config == {"mode": "event", "event": "order_placed",
                                                        "timeout_minutes": 2880}
    # The chosen mode's own fields are still checked.
    refused = web.post(f"/automations/{series.id}/steps/{wait.id}", {"mode": "until", "time": "09:00", "amount": "3"})
    assert refused.status_code == 422 and "at least one day" in soup(refused).text


def _waiting_at(series, step, number):
    for i in range(number):
        contact = Contact.create(team=series.team, email=f"w{step.id}-{i}@example.com", domain="example.com")
        AutomationRun.create(automation=series.id, team=series.team_id, contact=contact.id, step_id=step.id,
                             state="waiting", data={})


def test_removing_a_step_without_javascript_asks_first_on_a_page(web, series):
    email, wait, last = steps_of(series)
    _waiting_at(series, wait, 2)
    page = soup(web.get(f"/automations/{series.id}/steps/{wait.id}/remove"))
    assert page.select_one("h1").text.strip() == "Remove a step"
    box = page.select_one(f"#remove-confirm-{wait.id}")
    assert " ".join(box.select_one(f"#remove-q-{wait.id}").text.split()) == "Remove step 2 (Wait 2 days)?"
    assert " ".join(box.select_one(f"#remove-d-{wait.id}").text.split()) == (
        "2 contacts waiting here move on to step 3 (Send “Getting started”).")
    form = box.select_one("form")
    assert form["action"] == f"/automations/{series.id}/steps/{wait.id}/remove" and not form.has_attr("hx-post")
    assert AutomationStep.get_by_id(wait.id).removed_at is None  # asking removed nothing
    last_page = soup(web.get(f"/automations/{series.id}/steps/{last.id}/remove"))
    assert "No contact is waiting here." in last_page.select_one(f"#remove-d-{last.id}").text
    done = web.post(form["action"])
    assert done.status_code == 302
    assert AutomationStep.get_by_id(wait.id).removed_at is not None
    assert [s.kind for s in steps_of(series)] == ["email", "email"]
    # The card links to the confirmation; no form removes at the first click any more.
    card = soup(web.get(f"/automations/{series.id}")).select_one(f"#step-{email.id}")
    assert card.select_one(f"#remove-step-{email.id}")["href"] == f"/automations/{series.id}/steps/{email.id}/remove"
    assert not card.select("form[action$='/remove']")


def test_removing_a_condition_says_its_no_branch_goes_and_who_ends_there(web, series):
    email, wait, last = steps_of(series)
    condition = flow.add_step(series, "condition", after=email.id)
    dropped = flow.add_step(series, "exit", branch=("no", condition.id))
    _waiting_at(series, condition, 1)
    _waiting_at(series, dropped, 3)
    text = " ".join(soup(web.get(f"/automations/{series.id}/steps/{condition.id}/remove"))
                    .select_one(f"#remove-d-{condition.id}").text.split())
    assert text == ("1 contact waiting here moves on to step 3 (Wait 2 days). Its yes branch stays in its place; its "
                    "no branch (1 step) is removed, and the 3 contacts waiting in it end there.")


def test_removing_a_step_with_htmx_asks_inside_its_card(web, series):
    email, wait, _last = steps_of(series)
    asked = web.get(f"/automations/{series.id}/steps/{wait.id}/remove", headers={"HX-Request": "true"})
    card = soup(asked)
    assert card.select_one("article")["id"] == f"step-{wait.id}" and not card.select_one("h1")
    assert card.select_one(f"#remove-q-{wait.id}").has_attr("autofocus")
    form = card.select_one(f"#remove-confirm-{wait.id} form")
    assert form["hx-post"] == f"/automations/{series.id}/steps/{wait.id}/remove" and form["hx-target"] == "#flow"
    assert not card.select_one(f"#edit-step-{wait.id}")  # "yes / cancel" in place of the buttons
    cancel = card.find("a", string="Cancel")
    assert cancel["hx-get"] == f"/automations/{series.id}/steps/{wait.id}?focus=remove"
    back = soup(web.get(cancel["hx-get"], headers={"HX-Request": "true"}))
    assert back.select_one(f"#remove-step-{wait.id}").has_attr("autofocus")
    assert AutomationStep.get_by_id(wait.id).removed_at is None
    removed = web.post(form["hx-post"], htmx=True)
    assert removed.status_code == 200 and soup(removed).select_one("#flow")
    assert [s.kind for s in steps_of(series)] == ["email", "email"]


def test_the_remove_confirmation_needs_edit_content_and_the_team(app, series):
    step = steps_of(series)[1]
    _, guest = make_member(app, series.team, "guest")
    assert guest.get(f"/automations/{series.id}/steps/{step.id}/remove").status_code == 403
    _, author = make_member(app, series.team, "author", "author2@example.com")
    assert author.get(f"/automations/{series.id}/steps/{step.id}/remove").status_code == 200
    other = Team.create(name="Globex")
    user, stranger = make_member(app, other, "admin", "boss@globex.example")
    Membership.delete().where((Membership.user == user) & (Membership.team != other)).execute()
    assert stranger.get(f"/automations/{series.id}/steps/{step.id}/remove").status_code == 404
