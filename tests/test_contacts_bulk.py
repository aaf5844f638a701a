"""Bulk actions (run as huey tasks, immediate in tests) and the streamed CSV export."""
import csv
import io

from app.consent import suppression
from app.contacts import query
from app.models import AuditLog
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import csrf_from
from tests.conftest import soup


def acme():
    return Team.get(Team.name == "Acme")


def add(team, email, status="active", name="", attributes=None):
    return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], status=status, name=name,
                          attributes=attributes or {})


def job_of(response):
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    job = AuditLog.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))
    return job, job.data


def test_add_ticked_contacts_to_a_list_skips_the_blocked(app, web, admin):
    team = acme()
    news = MailingList.create(team=team, name="News")
    ok = add(team, "ok@example.com")
    already = add(team, "already@example.com")
    Subscription.create(contact=already, list=news)
    bounced = add(team, "bounced@example.com", status="bounced")
    suppressed = add(team, "quiet@example.com")
    with app.test_request_context():
        suppression.suppress(team.id, "email", "quiet@example.com")
    theirs = add(Team.create(name="Other"), "theirs@example.com")

    page = soup(web.get("/contacts/"))
    form = page.select_one("form#bulk-form")
    assert form["action"] == "/contacts/bulk"
    assert {i["value"] for i in form.select("input[name=ids]")} == {str(c.id) for c in (ok, already, bounced, suppressed)}

    ids = [ok.id, already.id, bounced.id, suppressed.id, theirs.id]
    response = web.client.post("/contacts/bulk", data={"csrf_token": csrf_from(web.client), "action": "add_to_list",
                                                       "scope": "selected", "list_id": news.id, "ids": ids})
    job, data = job_of(response)
    assert (data["state"], data["processed"], data["changed"], data["skipped"]) == ("done", 4, 1, 3)
    assert job.user_id == admin.id and job.target == "add_to_list"
    assert {s.contact_id for s in Subscription.select()} == {ok.id, already.id}
    assert Event.select().where((Event.type == "subscribed") & (Event.contact == ok)).count() == 1

    status = web.get(response.headers["Location"])
    widget = soup(status).select_one("section#bulk-job")
    assert widget["data-state"] == "done" and not widget.has_attr("hx-trigger")
    assert "1 contact changed" in widget.text and "3 left as they were" in widget.text


def test_progress_widget_polls_while_running_htmx_and_plain(web, admin):
    job = AuditLog.create(team=acme(), action="contacts.bulk", target="delete",
                          data={"action": "delete", "scope": "selected", "state": "running",
                                           "processed": 500, "changed": 500, "skipped": 0})
    fragment = soup(web.get(f"/contacts/bulk/{job.id}", headers={"HX-Request": "true"}))
    assert fragment.select_one("html") is None
    widget = fragment.select_one("section#bulk-job")
    assert widget["hx-trigger"] == "every 1s" and widget["hx-get"] == f"/contacts/bulk/{job.id}"
    assert "500 contacts so far" in widget.text
    page = soup(web.get(f"/contacts/bulk/{job.id}"))
    assert page.select_one("h1").text == "Bulk action" and page.select_one("section#bulk-job progress")


def test_change_status_of_a_whole_filter_after_confirmation(web, admin):
    team = acme()
    for i in range(7):
        add(team, f"a{i}@old.example")
    add(team, "keep@new.example")
    form = {"action": "change_status", "new_status": "unsubscribed", "scope": "filter", "q": "@old.example"}
    confirm = web.post("/contacts/bulk", form)
    assert confirm.status_code == 200
    page = soup(confirm)
    assert page.select_one("h1").text.strip() == "Change the status of 7 contacts to Unsubscribed?"
    hidden = {i["name"]: i["value"] for i in page.select("form input[type=hidden]")}
    assert hidden["q"] == "@old.example" and hidden["confirmed"] == "1" and hidden["scope"] == "filter"
    assert Contact.select().where(Contact.status == "unsubscribed").count() == 0  # nothing yet

    job, data = job_of(web.post("/contacts/bulk", {key: value for key, value in hidden.items() if key != "csrf_token"}))
    assert (data["state"], data["changed"]) == ("done", 7)
    assert data["filter"] == {"q": "@old.example"}
    assert Contact.select().where(Contact.status == "unsubscribed").count() == 7
    assert Contact.get(Contact.email == "keep@new.example").status == "active"
    changed = Event.select().where(Event.type == "status_changed")
    assert changed.count() == 7 and changed.first().data["to"] == "unsubscribed"


def test_bulk_reactivation_skips_suppressed_and_suppressing_adds_to_the_list(app, web, admin):
    team = acme()
    a = add(team, "a@example.com", status="bounced")
    b = add(team, "b@example.com", status="bounced")
    with app.test_request_context():
        suppression.suppress(team.id, "email", "b@example.com")
    _, data = job_of(web.post("/contacts/bulk", {"action": "change_status", "new_status": "active", "scope": "filter",
                                                 "status": "bounced", "confirmed": "1"}))
    assert (data["changed"], data["skipped"]) == (1, 1)
    assert Contact.get_by_id(a.id).status == "active" and Contact.get_by_id(b.id).status == "bounced"
    _, data = job_of(web.client.post("/contacts/bulk", data={"csrf_token": csrf_from(web.client), "action": "change_status",
                                                             "new_status": "suppressed", "ids": [a.id]}))
    assert data["changed"] == 1
    with app.test_request_context():
        assert suppression.is_suppressed(team.id, "a@example.com")


def test_bulk_delete_asks_first_then_deletes(web, admin):
    team = acme()
    doomed = [add(team, f"d{i}@example.com") for i in range(3)]
    keep = add(team, "keep@example.com")
    theirs = add(Team.create(name="Other"), "theirs@example.com")
    data = {"csrf_token": csrf_from(web.client), "action": "delete", "scope": "selected",
            "ids": [c.id for c in doomed] + [theirs.id]}
    confirm = web.client.post("/contacts/bulk", data=data)
    page = soup(confirm)
    assert page.select_one("h1").text.strip() == "Delete 3 contacts?"
    assert len(page.select("form input[name=ids]")) == 4
    assert Contact.select().count() == 5
    _, result = job_of(web.client.post("/contacts/bulk", data={**data, "confirmed": "1"}))
    assert result["changed"] == 3
    assert {c.email for c in Contact.select()} == {"keep@example.com", "theirs@example.com"}
    assert keep.id


def test_remove_a_list_from_everyone_on_it(web, admin):
    team = acme()
    news = MailingList.create(team=team, name="News")
    other = MailingList.create(team=team, name="Other")
    for i in range(4):
        contact = add(team, f"n{i}@example.com")
        Subscription.create(contact=contact, list=news)
        Subscription.create(contact=contact, list=other)
    _, data = job_of(web.post("/contacts/bulk", {"action": "remove_from_list", "list_id": news.id, "scope": "filter",
                                                 "list": news.id, "confirmed": "1"}))
    assert data["changed"] == 4
    assert Subscription.select().where(Subscription.list == news).count() == 0
    assert Subscription.select().where(Subscription.list == other).count() == 4


def test_bulk_walks_in_batches_across_many_contacts(web, admin, monkeypatch):
    monkeypatch.setattr(query, "BATCH_SIZE", 7)
    team = acme()
    Contact.insert_many([{"team": team.id, "email": f"x{i}@example.com", "domain": "example.com"}
                         for i in range(40)]).execute()
    news = MailingList.create(team=team, name="News")
    _, data = job_of(web.post("/contacts/bulk", {"action": "add_to_list", "list_id": news.id, "scope": "filter",
                                                 "confirmed": "1"}))
    assert (data["processed"], data["changed"]) == (40, 40)
    assert Subscription.select().count() == 40


def test_bulk_refusals_are_specific(web, admin):
    add(acme(), "a@example.com")
    cases = [({"action": "add_to_list", "scope": "selected"}, "Tick at least one contact"),
             ({"action": "explode", "ids": "1"}, "Choose what to do"),
             ({"action": "add_to_list", "ids": "1"}, "Choose a list."),
             ({"action": "change_status", "ids": "1", "new_status": "gone"}, "Choose the new status."),
             ({"action": "delete", "ids": [str(i) for i in range(1, 1003)]}, "Tick at most 1,000 contacts")]
    for form, message in cases:
        response = web.client.post("/contacts/bulk", data={"csrf_token": csrf_from(web.client), **form})
        assert response.status_code == 302 and response.headers["Location"].startswith("/contacts/")
        page = soup(web.get(response.headers["Location"]))
        assert message in page.select_one("#flashes .flash-error").text
    assert AuditLog.select().where(AuditLog.action == "contacts.bulk").count() == 0


# --- Export -------------------------------------------------------------------------

def read_csv(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_streams_csv_with_custom_fields_and_neutralised_formulas(web, admin):
    team = acme()
    CustomField.create(team=team, key="company", label="Company")
    CustomField.create(team=team, key="seats", label="Seats", type="number")
    CustomField.create(team=team, key="vip", label="VIP", type="boolean")
    add(team, "ada@example.com", name="Ada", attributes={"company": "Analytical", "seats": 3, "vip": True})
    add(team, "evil@example.com", name='=HYPERLINK("http://evil.example","click")',
        attributes={"company": "+1 555", "seats": -2})
    add(team, "tab@example.com", name="\tTabbed", attributes={"company": "@SUM(A1)"})
    add(team, "cr@example.com", name="\rReturn", attributes={"company": "-cmd"})
    news = MailingList.create(team=team, name="News")
    Subscription.create(contact=Contact.get(Contact.email == "ada@example.com"), list=news)

    response = web.get("/contacts/export")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="contacts-')
    rows = read_csv(response)
    header = rows[0]
    assert header[:3] == ["email", "name", "status"] and header[-3:] == ["company", "seats", "vip"]
    by_email = {row[0]: dict(zip(header, row)) for row in rows[1:]}
    assert by_email["ada@example.com"]["company"] == "Analytical"
    assert by_email["ada@example.com"]["vip"] == "yes" and by_email["ada@example.com"]["lists"] == "News"
    evil = by_email["evil@example.com"]
    assert evil["name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert evil["company"] == "'+1 555" and evil["seats"] == "'-2"
    assert by_email["tab@example.com"]["name"] == "'\tTabbed"
    assert by_email["tab@example.com"]["company"] == "'@SUM(A1)"
    assert by_email["cr@example.com"]["name"] == "'\rReturn" and by_email["cr@example.com"]["company"] == "'-cmd"
    for row in rows:  # no cell anywhere starts with a formula character
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row)

    audit = AuditLog.get(AuditLog.action == "contacts.export")
    assert audit.user_id == admin.id and audit.data == {"filter": {}}


def test_export_of_a_list_and_of_a_filter(web, admin):
    team = acme()
    news = MailingList.create(team=team, name="News & Views")
    on = add(team, "on@example.com")
    add(team, "off@example.com", status="bounced")
    Subscription.create(contact=on, list=news, status="unconfirmed")
    listed = web.get(f"/contacts/export?list={news.id}")
    assert 'filename="list-news-views-' in listed.headers["Content-Disposition"]
    rows = read_csv(listed)
    assert [row[0] for row in rows[1:]] == ["on@example.com"]
    assert dict(zip(rows[0], rows[1]))["list_status"] == "unconfirmed"
    bounced = read_csv(web.get("/contacts/export?status=bounced"))
    assert [row[0] for row in bounced[1:]] == ["off@example.com"]
    # The page's export link carries the filter.
    link = soup(web.get("/contacts/?status=bounced")).select_one("a.export")
    assert link["href"] == "/contacts/export?status=bounced"


def test_export_walks_every_batch(web, admin, monkeypatch):
    monkeypatch.setattr(query, "BATCH_SIZE", 5)
    team = acme()
    Contact.insert_many([{"team": team.id, "email": f"e{i:02d}@example.com", "domain": "example.com"}
                         for i in range(23)]).execute()
    rows = read_csv(web.get("/contacts/export"))
    assert [row[0] for row in rows[1:]] == [f"e{i:02d}@example.com" for i in range(23)]


def test_export_needs_the_export_permission(app, web, admin):
    _, manager = make_member(app, acme(), "manager")
    assert manager.get("/contacts/export").status_code == 403
    assert AuditLog.select().where(AuditLog.action == "contacts.export").count() == 0
