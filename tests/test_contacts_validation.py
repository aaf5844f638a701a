"""Address validation where a person meets it in the contacts area: "Validate" on a contact's page (an HTMX card,
the verdict kept on the contact) and "Validate this list" (a huey task, immediate in tests, with its progress and
result table). DNS is a real server on 127.0.0.1 (tests/dns_support.py's dns_zone)."""
import datetime

import pytest
from playhouse.migrations import Runner

from app.cli import MIGRATIONS_DIR
from app.contacts import validity
from app.contacts.common import ContactError
from app.db import db
from app.db import insert_values
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from app.models import ValidationJob
from app.models import utcnow
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def acme(admin):
    return Team.get(Team.name == "Acme")


@pytest.fixture
def zone(dns_zone):
    """acme.example, gmail.com and outlok.com take mail; nomail.example says it takes none (null MX); slow.example is silent."""
    dns_zone.add("acme.example", "MX", "10 mx.acme.example.")
    dns_zone.add("gmail.com", "MX", "5 gmail-smtp-in.l.google.com.")
    dns_zone.add("nomail.example", "MX", "0 .")
    dns_zone.add("outlok.com", "A", "192.0.2.25")
    dns_zone.silence("slow.example")
    return dns_zone


def add(team, email, mailing_list=None, status="subscribed"):
    contact = Contact.create(team=team, email=email, domain=email.rpartition("@")[2])
    if mailing_list is not None:
        Subscription.create(contact=contact, list=mailing_list, status=status)
    return contact


# --- One contact ------------------------------------------------------------------

def test_validate_on_the_contact_page_swaps_the_card_and_keeps_the_verdict(app, web, acme, zone):
    contact = add(acme, "info@gmial.com")
    page = soup(web.get(f"/contacts/{contact.id}"))
    card = page.select_one("section#validation")
    assert card["data-status"] == "unchecked" and "Not checked yet" in card.text
    form = card.select_one("form")
    assert form["hx-post"] == f"/contacts/{contact.id}/validate" and form["hx-target"] == "#validation"

    response = web.post(f"/contacts/{contact.id}/validate", htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    assert fragment.select_one("html") is None
    card = fragment.select_one("section#validation")
    assert card["data-status"] == "invalid"
    reasons = [li.text for li in card.select(".validation-reasons li")]
    assert reasons == ["The domain does not exist or receives no mail (no MX or address records)",
                       "The domain hands out disposable, throw-away addresses",
                       "The address is a role account (a team or function, not a person)",
                       "The domain looks like a typo"]
    assert "Did you mean info@gmail.com?" in card.select_one(".validation-suggestion").text
    stored = Contact.get_by_id(contact.id)
    assert (stored.validation_status, stored.validation_reasons, stored.validation_suggestion) == (
        "invalid", "no_domain,disposable,role,typo", "info@gmail.com")
    assert stored.validation_checked_at is not None

    # The contact's data export carries it (the suggestion is a form of the address).
    exported = web.get(f"/contacts/{contact.id}/export.json").get_json()
    assert exported["address_check"]["reasons"] == ["no_domain", "disposable", "role", "typo"]
    assert exported["address_check"]["suggestion"] == "info@gmail.com"

    # The page shows what was stored, without checking again.
    zone.queries.clear()
    again = soup(web.get(f"/contacts/{contact.id}")).select_one("section#validation")
    assert again["data-status"] == "invalid" and "Did you mean info@gmail.com?" in again.text
    assert zone.queries == []


def test_validate_without_javascript_comes_back_to_the_card(app, web, acme, zone):
    contact = add(acme, "pat@acme.example")
    response = web.post(f"/contacts/{contact.id}/validate")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/contacts/{contact.id}#validation")
    page = soup(web.get(f"/contacts/{contact.id}"))
    assert any("pat@acme.example: The address looks deliverable." in flash.text for flash in page.select(".flash"))
    card = page.select_one("section#validation")
    assert card["data-status"] == "valid" and "domain receives email" in card.text


def test_a_dns_server_that_does_not_answer_is_risky_not_invalid(app, web, acme, zone):
    contact = add(acme, "pat@slow.example")
    card = soup(web.post(f"/contacts/{contact.id}/validate", htmx=True)).select_one("section#validation")
    assert card["data-status"] == "risky"
    assert Contact.get_by_id(contact.id).validation_reasons == "dns_timeout"


def test_guests_see_the_verdict_but_cannot_validate(app, acme, zone):
    contact = add(acme, "pat@acme.example")
    _, guest = make_member(app, acme, "guest")
    card = soup(guest.get(f"/contacts/{contact.id}")).select_one("section#validation")
    assert card is not None and card.select_one("form") is None
    assert guest.post(f"/contacts/{contact.id}/validate").status_code == 403
    assert Contact.get_by_id(contact.id).validation_status == ""
    _, author = make_member(app, acme, "author")
    assert author.post(f"/contacts/{contact.id}/validate", htmx=True).status_code == 200


# --- A list -----------------------------------------------------------------------

@pytest.fixture
def news(acme):
    return MailingList.create(team=acme, name="News")


def test_validate_this_list_runs_the_task_and_shows_counts_reasons_and_flagged_contacts(app, web, acme, news, zone):
    good = add(acme, "pat@acme.example", news)
    role = add(acme, "info@acme.example", news)
    typo = add(acme, "kim@outlok.com", news)
    null = add(acme, "lee@nomail.example", news)
    gone = add(acme, "max@nowhere.example", news)
    left = add(acme, "old@nowhere.example", news, status="unsubscribed")  # not on the list any more
    outside = add(acme, "not@nowhere.example")  # on no list

    page = soup(web.get(f"/contacts/lists/{news.id}"))
    card = page.select_one("section#list-validation")
    assert card["data-state"] == "none" and "have not been checked" in card.text
    assert card.select_one("form")["action"] == f"/contacts/lists/{news.id}/validate"

    response = web.post(f"/contacts/lists/{news.id}/validate")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/contacts/lists/{news.id}/validation")
    job = ValidationJob.get()
    assert (job.state, job.total, job.done, job.valid, job.risky, job.invalid) == ("done", 5, 5, 1, 2, 2)
    assert job.reasons == {"role": 1, "typo": 1, "no_domain": 1, "null_mx": 1}
    assert job.active_list is None and job.finished_at is not None and job.team_id == acme.id
    stored = {c.id: (c.validation_status, c.validation_reasons) for c in Contact.select()}
    assert stored[good.id] == ("valid", "") and stored[role.id] == ("risky", "role")
    assert stored[typo.id] == ("risky", "typo") and stored[null.id] == ("invalid", "null_mx")
    assert stored[gone.id] == ("invalid", "no_domain")
    assert stored[left.id] == ("", "") and stored[outside.id] == ("", "")

    result = soup(web.get(response.headers["Location"]))
    card = result.select_one("section#list-validation")
    assert card["data-state"] == "done" and not card.has_attr("hx-trigger")
    counts = {tr["data-status"]: tr.select_one("td").text for tr in card.select(".validation-counts tbody tr")}
    assert counts == {"valid": "1", "risky": "2", "invalid": "2"}
    reasons = {tr["data-reason"]: tr.select_one("td").text for tr in card.select(".validation-reason-counts tbody tr")}
    assert reasons == {"no_domain": "1", "role": "1", "typo": "1", "null_mx": "1"}
    assert card.select_one("svg.chart[role=img]") is not None
    rows = {tr.select_one("a").text: [td.text for td in tr.select("td")] for tr in card.select(".validation-flagged tbody tr")}
    assert set(rows) == {"info@acme.example", "kim@outlok.com", "lee@nomail.example", "max@nowhere.example"}
    assert rows["kim@outlok.com"][3] == "kim@outlook.com"
    assert "The domain looks like a typo" in rows["kim@outlok.com"][2]

    only_risky = soup(web.get(f"/contacts/lists/{news.id}/validation?verdict=risky"))
    assert [a.text for a in only_risky.select(".validation-flagged tbody a")] == ["info@acme.example", "kim@outlok.com"]
    # The list page carries the same card.
    assert soup(web.get(f"/contacts/lists/{news.id}")).select_one("section#list-validation")["data-state"] == "done"


def test_the_flagged_table_is_paged_and_the_job_runs_in_chunks(app, web, acme, news, zone, monkeypatch):
    for i in range(55):
        add(acme, f"info+{i:02d}@acme.example", news)  # role accounts: risky
    job = validity.start_job(acme, news)
    assert job.state == "queued" and job.total == 55
    chunks = []
    original = validity.validation.validate_many

    def counting(addresses, **kwargs):
        chunks.append(len(addresses))
        return original(addresses, **kwargs)

    monkeypatch.setattr(validity.validation, "validate_many", counting)  # the real one, counted
    with app.app_context():
        validity.run_job(job.id, chunk=20)
    assert chunks == [20, 20, 15]
    job = ValidationJob.get_by_id(job.id)
    assert (job.state, job.done, job.risky, job.after_id) == ("done", 55, 55, Contact.select().order_by(Contact.id.desc()).first().id)
    assert zone.queries.count(("acme.example.", "MX")) <= 1  # cached across chunks

    first = soup(web.get(f"/contacts/lists/{news.id}/validation"))
    emails = [a.text for a in first.select(".validation-flagged tbody a")]
    assert len(emails) == validity.PAGE and emails[0] == "info+00@acme.example"
    more = first.select_one(".pager a[rel=next]")
    assert more["hx-target"] == "#list-validation"
    second = soup(web.get(more["href"], headers={"HX-Request": "true"}))
    assert second.select_one("html") is None
    assert [a.text for a in second.select(".validation-flagged tbody a")] == [f"info+{i}@acme.example" for i in range(50, 55)]
    assert second.select_one(".pager a[rel=next]") is None


def test_one_job_per_list_cancel_and_a_dead_workers_job(app, web, acme, news, zone):
    add(acme, "pat@acme.example", news)
    job = validity.start_job(acme, news)  # queued, its task not run
    with pytest.raises(ContactError, match="already being checked"):
        validity.start_job(acme, news)
    refused = web.post(f"/contacts/lists/{news.id}/validate", htmx=True)
    assert refused.status_code == 409 and "already being checked" in soup(refused).select_one(".flash-error").text
    assert ValidationJob.select().count() == 1

    card = soup(web.get(f"/contacts/lists/{news.id}/validation", headers={"HX-Request": "true"})).select_one("section")
    assert card["hx-trigger"] == "every 1s" and card["hx-get"] == f"/contacts/lists/{news.id}/validation"
    assert card.select_one("progress")["value"] == "0" and "Checked 0 of 1" in card.text

    cancelled = soup(web.post(f"/contacts/lists/{news.id}/validation/cancel", htmx=True))
    assert "Cancelled" in cancelled.select_one(".flash-success").text
    job = ValidationJob.get_by_id(job.id)
    assert job.state == "cancelled" and job.active_list is None
    with app.app_context():
        validity.run_job(job.id)  # a cancelled job's task does nothing
    assert ValidationJob.get_by_id(job.id).done == 0 and Contact.get().validation_status == ""

    # A job whose worker died (no heartbeat for STALE_SECONDS) gives way to a new one.
    stuck = validity.start_job(acme, news)
    old = utcnow() - datetime.timedelta(seconds=validity.STALE_SECONDS + 5)
    ValidationJob.update(state="running", heartbeat_at=old).where(ValidationJob.id == stuck.id).execute()
    fresh = validity.start_job(acme, news)
    assert ValidationJob.get_by_id(stuck.id).state == "failed" and fresh.active_list == news.id


def test_roles_and_another_teams_list(app, web, acme, news, zone):
    add(acme, "pat@acme.example", news)
    _, guest = make_member(app, acme, "guest")
    assert guest.get(f"/contacts/lists/{news.id}/validation").status_code == 200
    assert guest.post(f"/contacts/lists/{news.id}/validate").status_code == 403
    assert guest.post(f"/contacts/lists/{news.id}/validation/cancel").status_code == 403
    assert ValidationJob.select().count() == 0
    assert soup(guest.get(f"/contacts/lists/{news.id}")).select_one("section#list-validation form") is None

    other = Team.create(name="Other")
    theirs = MailingList.create(team=other, name="Theirs")
    their_contact = add(other, "them@acme.example", theirs)
    validity.start_job(other, theirs)
    assert web.get(f"/contacts/lists/{theirs.id}/validation").status_code == 404
    assert web.post(f"/contacts/lists/{theirs.id}/validate").status_code == 404
    assert web.post(f"/contacts/lists/{theirs.id}/validation/cancel").status_code == 404
    assert web.post(f"/contacts/{their_contact.id}/validate").status_code == 404
    job = ValidationJob.get(ValidationJob.list == theirs)
    assert job.state == "queued" and ValidationJob.select().count() == 1
    assert Contact.get_by_id(their_contact.id).validation_status == ""


def test_a_job_that_fails_says_why_and_keeps_its_earlier_chunks(app, web, acme, news, zone, monkeypatch):
    for i in range(3):
        add(acme, f"p{i}@acme.example", news)
    job = validity.start_job(acme, news)
    original = validity.validation.validate_many
    calls = []

    def failing_second_time(addresses, **kwargs):
        calls.append(addresses)
        if len(calls) == 2:
            raise OSError("resolver exploded")
        return original(addresses, **kwargs)

    monkeypatch.setattr(validity.validation, "validate_many", failing_second_time)
    with app.app_context():
        validity.run_job(job.id, chunk=2)
    job = ValidationJob.get_by_id(job.id)
    assert (job.state, job.done, job.valid, job.active_list) == ("failed", 2, 2, None)
    assert "resolver exploded" in job.error
    assert [c.validation_status for c in Contact.select().order_by(Contact.id)] == ["valid", "valid", ""]
    card = soup(web.get(f"/contacts/lists/{news.id}/validation")).select_one("section#list-validation")
    assert "stopped after 2 addresses" in card.select_one(".flash-error").text


def test_the_verdict_is_a_contact_filter_so_bulk_actions_reach_the_invalid_ones(app, web, acme, news, zone):
    good = add(acme, "pat@acme.example", news)
    bad = add(acme, "max@nowhere.example", news)
    unchecked = add(acme, "new@nowhere.example")
    assert web.post(f"/contacts/lists/{news.id}/validate").status_code == 302
    Subscription.delete().where(Subscription.contact == unchecked).execute()

    card = soup(web.get(f"/contacts/lists/{news.id}/validation")).select_one("#validation-next")
    link = card.select_one("a")["href"]
    assert link == f"/contacts/lists/{news.id}?validation=invalid"
    page = soup(web.get(link))
    assert page.select_one("#f-validation option[selected]")["value"] == "invalid"
    assert [a.text for a in page.select("#contact-results tbody td a")][:1] == ["max@nowhere.example"]
    assert len(page.select("#contact-results tbody tr")) == 1
    everyone = soup(web.get("/contacts/?validation=unchecked"))
    assert [tr.select_one("a").text for tr in everyone.select("#contact-results tbody tr")] == ["new@nowhere.example"]

    # "All contacts matching this filter" → Change status: only the invalid one is unsubscribed.
    response = web.post("/contacts/bulk", {"action": "change_status", "new_status": "unsubscribed", "scope": "filter",
                                           "list": news.id, "validation": "invalid", "confirmed": "1"})
    assert response.status_code == 302
    statuses = {c.id: c.status for c in Contact.select()}
    assert statuses == {good.id: "active", bad.id: "unsubscribed", unchecked.id: "active"}


def test_a_raw_many_row_insert_leaves_the_verdict_unchecked_and_the_migration_goes_down_and_up(app, acme, news):
    # The import and the API's bulk insert contacts naming only the columns they fill: the server default holds.
    with app.app_context(), db.atomic():
        now = utcnow()
        insert_values([Contact.team, Contact.email, Contact.domain, Contact.attributes, Contact.created_at,
                       Contact.updated_at], 1,
                      fixed={Contact.name: "", Contact.status: "active", Contact.source: "api",
                             Contact.consent_source: "", Contact.consent_ip: "", Contact.consent_text: ""}
                      ).run([acme.id, "raw@acme.example", "acme.example", "{}", now, now])
    raw = Contact.get(Contact.email == "raw@acme.example")
    assert (raw.validation_status, raw.validation_reasons, raw.validation_suggestion) == ("", "", "")
    Contact.update(validation_status="risky", validation_reasons="role").where(Contact.id == raw.id).execute()
    validity.start_job(acme, news)

    runner = Runner(db.obj, MIGRATIONS_DIR)
    rolled = runner.down(target="0061_address_validation")
    assert rolled[-1] == "0061_address_validation"
    assert "validation_status" not in {column.name for column in db.get_columns("contact")}
    assert "validation_job" not in db.get_tables()
    assert Contact.select(Contact.id, Contact.email).where(Contact.id == raw.id).get().email == "raw@acme.example"
    assert runner.up() == rolled[::-1]
    again = Contact.get_by_id(raw.id)
    assert (again.validation_status, again.validation_checked_at) == ("", None)
    assert ValidationJob.select().count() == 0


def test_did_you_mean_opens_the_edit_form_with_the_fix_and_saving_it_drops_the_old_verdict(app, web, acme, zone):
    contact = add(acme, "kim@gmail.con")
    card = soup(web.post(f"/contacts/{contact.id}/validate", htmx=True)).select_one("section#validation")
    use = card.select_one(".validation-suggestion a")
    assert use.text == "Use it" and use["href"] == f"/contacts/{contact.id}/edit?email=kim@gmail.com"
    form = soup(web.get(use["href"]))
    assert form.select_one("#f-email")["value"] == "kim@gmail.com"
    assert Contact.get_by_id(contact.id).email == "kim@gmail.con"  # only proposed
    saved = web.post(f"/contacts/{contact.id}/edit", {"email": "kim@gmail.com", "name": "", "status": "active"})
    assert saved.status_code == 302
    again = Contact.get_by_id(contact.id)
    assert (again.email, again.validation_status, again.validation_suggestion, again.validation_checked_at) == (
        "kim@gmail.com", "", "", None)
    # A change that keeps the address keeps its verdict.
    web.post(f"/contacts/{contact.id}/validate", htmx=True)
    web.post(f"/contacts/{contact.id}/edit", {"email": "kim@gmail.com", "name": "Kim", "status": "active"})
    assert Contact.get_by_id(contact.id).validation_status == "valid"
