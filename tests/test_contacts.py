"""Contact pages: create, edit, delete, detail with lists, consent and timeline; lists; custom fields; roles; isolation."""
import datetime

import pytest

from app.consent import suppression
from app.models import AuditLog
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup


def acme():
    return Team.get(Team.name == "Acme")


def add_contact(team, email, name="", status="active", **extra):
    """A contact written straight to the table (the pages under test are elsewhere)."""
    return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], name=name, status=status,
                          **extra)


def errors_of(page):
    return {p["id"]: p.get_text(strip=True) for p in page.select("p.error[id]")}


# --- Navigation and empty state -----------------------------------------------------

def test_empty_contact_list_explains_what_to_do(web, admin):
    page = soup(web.get("/contacts/"))
    nav = page.select_one("nav.mainnav a[aria-current=page]")
    assert nav is not None and "Contacts" in nav.text
    subnav = {a.text.strip(): a["href"] for a in page.select("nav.tabs a")}
    assert subnav["Contacts"] == "/contacts/" and subnav["Lists"] == "/contacts/lists"
    assert subnav["Fields"] == "/contacts/fields"
    empty = page.select_one("#contact-results .empty-state")
    assert empty.select_one("h2").text == "No contacts yet"
    assert empty.select_one("a.button.primary")["href"] == "/contacts/new"
    assert page.select_one("#contact-results table") is None


# --- Create --------------------------------------------------------------------------

def test_create_normalises_the_address_and_records_an_event(web, admin):
    response = web.post("/contacts/new", {"email": "  Ada.Lovelace@Example.COM ", "name": " Ada ",
                                          "consent_source": "Paper form at the meetup",
                                          "consent_text": "Yes, send me the monthly letter."})
    assert response.status_code == 302
    contact = Contact.get()
    assert response.headers["Location"] == f"/contacts/{contact.id}"
    assert (contact.email, contact.domain, contact.name, contact.source) == \
        ("ada.lovelace@example.com", "example.com", "Ada", "manual")
    assert contact.consent_at is not None and contact.consent_ip == ""
    assert [e.type for e in Event.select().where(Event.contact == contact)] == ["created"]

    page = soup(web.get(f"/contacts/{contact.id}"))
    assert page.select_one("h1").text == "Ada"
    assert page.select_one("#consent blockquote").text == "Yes, send me the monthly letter."
    assert "Paper form at the meetup" in page.select_one("#consent dl").text
    assert page.select_one("#timeline li.event-created strong").text == "Added"
    assert "was added" in page.select_one("#flashes").text


def test_the_same_address_in_other_case_is_refused(web, admin):
    add_contact(acme(), "ada@example.com")
    response = web.post("/contacts/new", {"email": "ADA@Example.com"})
    assert response.status_code == 422
    page = soup(response)
    assert "already a contact" in errors_of(page)["e-email"]
    assert page.select_one("#f-email")["aria-invalid"] == "true"
    assert Contact.select().count() == 1


def test_invalid_address_plain_page_and_htmx_fragment(web, admin):
    plain = web.post("/contacts/new", {"email": "not-an-address", "name": "X"})
    assert plain.status_code == 422
    page = soup(plain)
    assert page.select_one("h1").text == "New contact"
    assert "not valid" in errors_of(page)["e-email"]
    assert page.select_one("#f-name")["value"] == "X"  # nothing typed is lost

    fragment = web.post("/contacts/new", {"email": ""}, htmx=True)
    assert fragment.status_code == 422
    page = soup(fragment)
    assert page.select_one("html") is None and page.select_one("h1") is None
    form = page.select_one("form#contact-form")
    assert form["hx-target"] == "#contact-form"
    assert errors_of(page)["e-email"] == "Enter an email address."
    assert Contact.select().count() == 0


def test_successful_htmx_create_navigates(web, admin):
    response = web.post("/contacts/new", {"email": "grace@example.com"}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/contacts/{Contact.get().id}"


@pytest.mark.parametrize("kind,value", [("email", "gone@example.com"), ("domain", "example.com")])
def test_a_suppressed_address_cannot_be_added_by_hand(app, web, admin, kind, value):
    with app.test_request_context():
        suppression.suppress(acme().id, kind, value, reason="erased")
    response = web.post("/contacts/new", {"email": "Gone@example.com"})
    assert response.status_code == 422
    assert "suppression list" in errors_of(soup(response))["e-email"]
    assert Contact.select().count() == 0


def test_create_with_lists(web, admin):
    news = MailingList.create(team=acme(), name="News")
    MailingList.create(team=acme(), name="Other")
    response = web.post("/contacts/new", {"email": "lin@example.com", "lists": [str(news.id)]})
    assert response.status_code == 302
    subscription = Subscription.get()
    assert (subscription.list_id, subscription.status) == (news.id, "subscribed")
    types = [e.type for e in Event.select().order_by(Event.id)]
    assert types == ["created", "subscribed"]


# --- Custom fields and typed attributes ----------------------------------------------

def make_fields(web):
    for key, label, type_ in (("company", "Company", "text"), ("seats", "Seats", "number"),
                              ("renews", "Renews on", "date"), ("vip", "VIP", "boolean")):
        assert web.post("/contacts/fields/new", {"key": key, "label": label, "type": type_}).status_code == 200


def test_custom_fields_are_stored_typed(web, admin):
    make_fields(web)
    form = web.get("/contacts/new")
    page = soup(form)
    assert page.select_one("#f-attr-renews")["type"] == "date"
    assert [o["value"] for o in page.select("#f-attr-vip option")] == ["", "yes", "no"]
    response = web.post("/contacts/new", {"email": "k@example.com", "attr.company": "Acme Ltd",
                                          "attr.seats": "42", "attr.renews": "2027-03-31", "attr.vip": "yes"})
    assert response.status_code == 302
    contact = Contact.get()
    assert contact.attributes == {"company": "Acme Ltd", "seats": 42, "renews": "2027-03-31",
                                              "vip": True}
    details = soup(web.get(f"/contacts/{contact.id}")).select_one("#attributes")
    values = {dd["data-key"]: dd.text for dd in details.select("dd")}
    assert values == {"company": "Acme Ltd", "seats": "42", "renews": "2027-03-31", "vip": "Yes"}

    # Edit: a float, clearing a value, and an invalid date with its own error.
    bad = web.post(f"/contacts/{contact.id}/edit", {"email": contact.email, "status": "active",
                                                    "attr.seats": "3.5", "attr.renews": "31/03/2027",
                                                    "attr.company": "", "attr.vip": "no"}, htmx=True)
    assert bad.status_code == 422
    errors = errors_of(soup(bad))
    assert errors == {"e-attr-renews": "Enter a date as YYYY-MM-DD, for example 2026-03-31."}
    assert Contact.get_by_id(contact.id).attributes["seats"] == 42  # nothing half-written
    ok = web.post(f"/contacts/{contact.id}/edit", {"email": contact.email, "status": "active",
                                                   "attr.seats": "3.5", "attr.renews": "", "attr.company": "",
                                                   "attr.vip": "no"})
    assert ok.status_code == 302
    assert Contact.get_by_id(contact.id).attributes == {"seats": 3.5, "vip": False}


def test_number_field_error_is_tied_to_its_input(web, admin):
    make_fields(web)
    response = web.post("/contacts/new", {"email": "n@example.com", "attr.seats": "many"})
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#f-attr-seats")["aria-describedby"] == "e-attr-seats"
    assert errors_of(page)["e-attr-seats"].startswith("Enter a number")


def test_field_definitions_are_validated(web, admin):
    cases = [({"key": "Company Name", "label": "Company"}, "e-key", "Use lower-case letters"),
             ({"key": "email", "label": "Email"}, "e-key", "built-in"),
             ({"key": "plan", "label": ""}, "e-label", "Give the field a label."),
             ({"key": "plan", "label": "Plan", "type": "colour"}, "e-type", "Choose one of the types")]
    for form, error_id, message in cases:
        response = web.post("/contacts/fields/new", form, htmx=True)
        assert response.status_code == 422, form
        page = soup(response)
        assert page.select_one("div#fields-page") is not None and page.select_one("h1") is None
        assert message in errors_of(page)[error_id]
    assert web.post("/contacts/fields/new", {"key": "plan", "label": "Plan"}).status_code == 200
    duplicate = web.post("/contacts/fields/new", {"key": "plan", "label": "Plan again"})
    assert duplicate.status_code == 422
    assert "already a field" in errors_of(soup(duplicate))["e-key"]
    # The full page (no HX-Request) shows the same error inside the page.
    assert soup(duplicate).select_one("h1").text == "Contact fields"
    assert CustomField.select().count() == 1


def test_a_field_key_is_made_from_its_label_unless_given(web, admin):
    page = soup(web.get("/contacts/fields"))
    key = page.select_one("#new-field #f-key")
    assert key["data-key-from"] == "f-label" and not key.has_attr("required")  # app.js fills it as you type
    response = web.post("/contacts/fields/new", {"label": "Favourite colour", "key": "", "type": "text"}, htmx=True)
    assert response.status_code == 200
    assert "{{ contact.favourite_colour }}" in soup(response).select_one(".flash-success").text
    web.post("/contacts/fields/new", {"label": "Café crème", "type": "text"}, htmx=True)
    web.post("/contacts/fields/new", {"label": "2nd phone", "type": "text"}, htmx=True)
    web.post("/contacts/fields/new", {"label": "Seats bought", "key": "seats", "type": "number"}, htmx=True)
    assert {f.key: f.label for f in CustomField.select()} == {
        "favourite_colour": "Favourite colour", "cafe_creme": "Café crème", "f_2nd_phone": "2nd phone",
        "seats": "Seats bought"}


def test_a_key_made_from_a_label_is_validated_and_shown_for_editing(web, admin):
    response = web.post("/contacts/fields/new", {"label": "Email", "key": "", "type": "text"}, htmx=True)
    assert response.status_code == 422
    page = soup(response)
    assert "built-in" in errors_of(page)["e-key"]
    assert page.select_one("#f-key")["value"] == "email" and page.select_one("#f-label")["value"] == "Email"
    response = web.post("/contacts/fields/new", {"label": "日本", "key": "", "type": "text"}, htmx=True)
    assert response.status_code == 422
    assert "no letters or digits to make a key from" in errors_of(soup(response))["e-key"]
    assert CustomField.select().count() == 0


def test_number_and_date_fields_get_number_and_date_inputs(web, admin):
    make_fields(web)
    page = soup(web.get("/contacts/new"))
    seats = page.select_one("#f-attr-seats")
    assert (seats["type"], seats["step"]) == ("number", "any")
    assert page.select_one("#f-attr-renews")["type"] == "date"
    assert page.select_one("#f-attr-company")["type"] == "text"


def test_rename_and_delete_a_field_with_values(web, admin):
    make_fields(web)
    team = acme()
    keep = add_contact(team, "a@example.com", attributes={"company": "A", "seats": 1})
    other = add_contact(team, "b@example.com", attributes={"seats": 2})
    field = CustomField.get(CustomField.key == "company")
    assert web.post(f"/contacts/fields/{field.id}/edit", {"label": "Organisation"}).status_code == 200
    assert CustomField.get_by_id(field.id).label == "Organisation"
    empty = web.post(f"/contacts/fields/{field.id}/edit", {"label": " "}, htmx=True)
    assert empty.status_code == 422
    assert errors_of(soup(empty))[f"e-label-{field.id}"] == "Give the field a label."

    confirm = soup(web.get(f"/contacts/fields/{field.id}/delete"))
    assert "1 contact has a value" in confirm.select_one("#field-usage").text
    response = web.post(f"/contacts/fields/{field.id}/delete")
    assert response.status_code == 302
    assert CustomField.get_or_none(CustomField.id == field.id) is None
    assert Contact.get_by_id(keep.id).attributes == {"seats": 1}
    assert Contact.get_by_id(other.id).attributes == {"seats": 2}
    assert AuditLog.get(AuditLog.action == "field.deleted").target == "field:company"


# --- Edit, status, delete ------------------------------------------------------------------

def test_edit_contact_and_status_change_event(web, admin):
    contact = add_contact(acme(), "ed@example.com", "Ed")
    form = soup(web.get(f"/contacts/{contact.id}/edit"))
    assert form.select_one("#f-email")["value"] == "ed@example.com"
    assert form.select_one("#f-status option[selected]")["value"] == "active"
    response = web.post(f"/contacts/{contact.id}/edit", {"email": "ED2@example.com", "name": "Edward",
                                                         "status": "unsubscribed"})
    assert response.status_code == 302
    contact = Contact.get_by_id(contact.id)
    assert (contact.email, contact.name, contact.status) == ("ed2@example.com", "Edward", "unsubscribed")
    events = {e.type: e.data for e in Event.select().where(Event.contact == contact)}
    assert events["status_changed"]["from"] == "active" and events["status_changed"]["to"] == "unsubscribed"
    assert events["updated"]["fields"] == ["email", "name"]
    timeline = soup(web.get(f"/contacts/{contact.id}")).select("#timeline li.event")
    assert timeline[0].select_one("strong").text in ("Status changed", "Details changed")
    assert any("Active → Unsubscribed" in li.text for li in timeline)


def test_edit_to_an_address_another_contact_has(web, admin):
    add_contact(acme(), "taken@example.com")
    contact = add_contact(acme(), "me@example.com")
    response = web.post(f"/contacts/{contact.id}/edit", {"email": "Taken@example.com", "status": "active"})
    assert response.status_code == 422
    assert "already another contact" in errors_of(soup(response))["e-email"]
    assert Contact.get_by_id(contact.id).email == "me@example.com"


def test_suppressed_status_adds_to_the_suppression_list_and_blocks_reactivation(app, web, admin):
    contact = add_contact(acme(), "stop@example.com")
    assert web.post(f"/contacts/{contact.id}/edit", {"email": contact.email, "status": "suppressed"}).status_code == 302
    with app.test_request_context():
        assert suppression.is_suppressed(acme().id, "stop@example.com")
    response = web.post(f"/contacts/{contact.id}/edit", {"email": contact.email, "status": "active"}, htmx=True)
    assert response.status_code == 422
    assert "suppression list" in errors_of(soup(response))["e-status"]
    assert Contact.get_by_id(contact.id).status == "suppressed"


def test_delete_contact_with_confirmation(web, admin):
    team = acme()
    contact = add_contact(team, "bye@example.com")
    news = MailingList.create(team=team, name="News")
    Subscription.create(contact=contact, list=news)
    Event.create(team=team, contact=contact, type="opened", campaign_id=None)
    confirm = soup(web.get(f"/contacts/{contact.id}/delete"))
    assert confirm.select_one("h1").text == "Delete bye@example.com?"
    assert confirm.select_one("form button.danger").text == "Delete contact"
    assert Contact.get_or_none(Contact.id == contact.id) is not None  # GET changes nothing
    response = web.post(f"/contacts/{contact.id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/contacts/"
    assert Contact.get_or_none(Contact.id == contact.id) is None
    assert Subscription.select().count() == 0
    assert Event.get(Event.type == "opened").contact_id is None  # the count survives, the person does not
    assert AuditLog.get(AuditLog.action == "contact.deleted").target == f"contact:{contact.id}"


# --- Lists on the contact page --------------------------------------------------------------

def test_add_and_remove_a_list_on_the_contact_page(web, admin):
    team = acme()
    contact = add_contact(team, "l@example.com")
    news = MailingList.create(team=team, name="News")
    fragment = web.post(f"/contacts/{contact.id}/lists", {"list_id": news.id}, htmx=True)
    assert fragment.status_code == 200
    section = soup(fragment).select_one("section#lists")
    assert section.select_one("li[data-list] a").text == "News"
    assert section.select_one("li .badge").text == "Subscribed"
    assert section.select_one("#f-add-list") is None  # nothing left to add
    assert Event.select().where((Event.contact == contact) & (Event.type == "subscribed")).count() == 1

    plain = web.post(f"/contacts/{contact.id}/lists/{news.id}/remove")
    assert plain.status_code == 302 and plain.headers["Location"] == f"/contacts/{contact.id}#lists"
    assert Subscription.select().count() == 0
    assert Event.select().where(Event.type == "removed_from_list").count() == 1
    page = soup(web.get(f"/contacts/{contact.id}"))
    assert "Removed from “News”" in page.select_one("#flashes").text
    assert page.select_one("#lists .empty").text == "Not on any list."


@pytest.mark.parametrize("case", ["unsubscribed", "bounced", "suppressed-domain", "left-the-list"])
def test_blocked_contacts_are_never_subscribed(app, web, admin, case):
    team = acme()
    news = MailingList.create(team=team, name="News")
    contact = add_contact(team, "b@blocked.example", status=case if case in ("unsubscribed", "bounced") else "active")
    if case == "suppressed-domain":
        with app.test_request_context():
            suppression.suppress(team.id, "domain", "blocked.example")
    if case == "left-the-list":
        Subscription.create(contact=contact, list=news, status="unsubscribed",
                            unsubscribed_at=datetime.datetime(2026, 1, 2))
    response = web.post(f"/contacts/{contact.id}/lists", {"list_id": news.id}, htmx=True)
    assert response.status_code == 422
    message = soup(response).select_one("#list-error").text
    expected = {"unsubscribed": "is unsubscribed", "bounced": "is bounced", "suppressed-domain": "suppression list",
                "left-the-list": "unsubscribed from “News” (2026-01-02)"}[case]
    assert expected in message
    assert Subscription.select().where(Subscription.status == "subscribed").count() == 0


# --- Timeline ---------------------------------------------------------------------------

def test_timeline_is_newest_first_and_loads_more(web, admin):
    team = acme()
    contact = add_contact(team, "t@example.com")
    start = datetime.datetime(2026, 1, 1)
    for i in range(30):
        Event.create(team=team, contact=contact, type="opened", campaign_id=i, at=start + datetime.timedelta(hours=i))
    Event.create(team=team, contact=add_contact(team, "other@example.com"), type="clicked")  # not this contact's
    page = soup(web.get(f"/contacts/{contact.id}"))
    items = page.select("#timeline li.event")
    assert len(items) == 25
    assert items[0].select_one(".muted").text == "Campaign #29"
    assert items[-1].select_one(".muted").text == "Campaign #5"
    more = page.select_one("#timeline li.more a")
    assert more["hx-target"] == "closest li" and more["hx-swap"] == "outerHTML"

    fragment = soup(web.get(more["hx-get"], headers={"HX-Request": "true"}))
    assert fragment.select_one("html") is None
    assert [li.select_one(".muted").text for li in fragment.select("li.event")] == \
        [f"Campaign #{i}" for i in range(4, -1, -1)]
    assert fragment.select_one("li.more") is None

    # Without htmx the same link leads to the contact page from that point.
    plain = web.get(more["hx-get"])
    assert plain.status_code == 302 and "events_before=" in plain.headers["Location"]
    assert len(soup(web.get(more["href"])).select("#timeline li.event")) == 5


def test_timeline_says_which_campaign_and_what_happened(web, admin):
    from app.models import Campaign
    team = acme()
    other = Team.create(name="Other")
    contact = add_contact(team, "who@example.com")
    spring = Campaign.create(team=team, name="Spring news")
    theirs = Campaign.create(team=other, name="Their secret campaign")
    start = datetime.datetime(2026, 1, 1)
    rows = [("bounced", spring.id, {"kind": "hard", "status": "5.1.1", "reason": "userunknown", "source": "imap"}),
            ("opened", spring.id, {"machine": True}),
            ("clicked", spring.id, {"url": "https://example.org/buy", "bot": False}),
            ("complained", spring.id, {"feedback_type": "abuse", "source": "ses"}),
            ("opened", theirs.id, {"machine": False})]  # a forged row: another team's name never shows
    for i, (type, campaign_id, data) in enumerate(rows):
        Event.create(team=team, contact=contact, type=type, campaign_id=campaign_id, data=data,
                     at=start + datetime.timedelta(hours=i))
    items = soup(web.get(f"/contacts/{contact.id}")).select("#timeline li.event")
    assert [li.select_one(".muted").text for li in items] == [
        f"Campaign #{theirs.id}",
        "“Spring news” · abuse · via Amazon SES",
        "“Spring news” · https://example.org/buy",
        "“Spring news” · machine open (privacy proxy), not counted",
        "“Spring news” · hard bounce · 5.1.1 userunknown · via bounce mailbox",
    ]


# --- Lists pages -------------------------------------------------------------------------

def test_lists_page_create_rename_delete(web, admin):
    page = soup(web.get("/contacts/lists"))
    assert page.select_one(".empty-state h2").text == "No lists yet"
    fragment = web.post("/contacts/lists/new", {"name": "Newsletter", "description": "Monthly",
                                                "double_opt_in": "1"}, htmx=True)
    assert fragment.status_code == 200
    page = soup(fragment)
    assert page.select_one("div#lists-page") is not None and page.select_one("h1") is None
    row = page.select_one("tbody tr")
    assert row.select_one("a").text == "Newsletter" and row.select_one("td.subscribed").text == "0"
    lst = MailingList.get()
    assert lst.double_opt_in and lst.description == "Monthly"

    duplicate = web.post("/contacts/lists/new", {"name": "newsletter"})
    assert duplicate.status_code == 422
    assert "already a list" in errors_of(soup(duplicate))["e-name"]

    team = acme()
    for i, status in enumerate(["subscribed", "subscribed", "unconfirmed", "unsubscribed"]):
        Subscription.create(contact=add_contact(team, f"s{i}@example.com"), list=lst, status=status)
    row = soup(web.get("/contacts/lists")).select_one("tbody tr")
    assert [row.select_one(f"td.{s}").text for s in ("subscribed", "unconfirmed", "unsubscribed")] == ["2", "1", "1"]

    detail = soup(web.get(f"/contacts/lists/{lst.id}"))
    assert detail.select_one("h1").text == "Newsletter"
    assert len(detail.select("#contact-results tbody tr")) == 4
    renamed = web.post(f"/contacts/lists/{lst.id}/edit", {"name": "Letters", "description": ""}, htmx=True)
    assert soup(renamed).select_one("form#list-settings .flash-success").text == "Saved."
    lst = MailingList.get_by_id(lst.id)
    assert lst.name == "Letters" and not lst.double_opt_in

    confirm = soup(web.get(f"/contacts/lists/{lst.id}/delete"))
    assert "Its 4 subscriptions are removed" in confirm.select_one("#d-confirm").text
    assert web.post(f"/contacts/lists/{lst.id}/delete").headers["Location"] == "/contacts/lists"
    assert MailingList.select().count() == 0 and Subscription.select().count() == 0
    assert Contact.select().count() == 4


# --- Roles ------------------------------------------------------------------------------

def test_guest_reads_but_cannot_change(app, web, admin):
    team = acme()
    contact = add_contact(team, "g@example.com")
    lst = MailingList.create(team=team, name="News")
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get("/contacts/"))
    assert page.select_one("#contact-results tbody tr a").text == "g@example.com"
    assert page.select_one("a[href='/contacts/new']") is None
    assert not page.select("input[name=ids]") and page.select_one("#bulk-form fieldset") is None
    assert page.select_one("a.export") is None
    detail = soup(guest.get(f"/contacts/{contact.id}"))
    assert detail.select_one("a[href$='/edit']") is None and detail.select_one("#f-add-list") is None
    for path in ("/contacts/lists", f"/contacts/lists/{lst.id}", "/contacts/fields"):
        assert guest.get(path).status_code == 200
    for path, data in (("/contacts/new", {"email": "x@example.com"}), (f"/contacts/{contact.id}/edit", {}),
                       (f"/contacts/{contact.id}/delete", {}), (f"/contacts/{contact.id}/lists", {"list_id": lst.id}),
                       ("/contacts/lists/new", {"name": "L"}), ("/contacts/fields/new", {"key": "k", "label": "K"}),
                       ("/contacts/bulk", {"action": "delete", "ids": contact.id, "confirmed": "1"})):
        assert guest.post(path, data).status_code == 403, path
    assert guest.get("/contacts/export").status_code == 403
    assert Contact.select().count() == 1 and Subscription.select().count() == 0


@pytest.mark.parametrize("role", ["author", "manager"])
def test_authors_and_managers_edit_but_cannot_export(app, web, admin, role):
    _, member = make_member(app, acme(), role)
    assert member.post("/contacts/new", {"email": "new@example.com"}).status_code == 302
    page = soup(member.get("/contacts/"))
    assert page.select("input[name=ids]") and page.select_one("a.export") is None
    assert member.get("/contacts/export").status_code == 403
    assert AuditLog.select().where(AuditLog.action == "contacts.export").count() == 0


# --- Isolation --------------------------------------------------------------------------

def test_another_teams_ids_are_not_found_on_every_route(app, web, admin):
    other = Team.create(name="Other")
    contact = add_contact(other, "theirs@example.com")
    lst = MailingList.create(team=other, name="Theirs")
    field = CustomField.create(team=other, key="secret", label="Secret")
    Subscription.create(contact=contact, list=lst)
    job = AuditLog.create(team=other, action="contacts.bulk", target="delete", data={"state": "done"})
    mine = add_contact(acme(), "mine@example.com")
    my_list = MailingList.create(team=acme(), name="Mine")
    gets = [f"/contacts/{contact.id}", f"/contacts/{contact.id}/edit", f"/contacts/{contact.id}/delete",
            f"/contacts/{contact.id}/timeline", f"/contacts/lists/{lst.id}", f"/contacts/lists/{lst.id}/delete",
            f"/contacts/fields/{field.id}/delete", f"/contacts/bulk/{job.id}", f"/contacts/?list={lst.id}",
            f"/contacts/export?list={lst.id}"]
    for path in gets:
        assert web.get(path).status_code == 404, path
    posts = [(f"/contacts/{contact.id}/edit", {"email": "x@example.com", "status": "active"}),
             (f"/contacts/{contact.id}/delete", {}), (f"/contacts/{contact.id}/lists", {"list_id": lst.id}),
             (f"/contacts/{contact.id}/lists/{lst.id}/remove", {}),
             (f"/contacts/{mine.id}/lists/{lst.id}/remove", {}),
             (f"/contacts/lists/{lst.id}/edit", {"name": "Hijacked"}), (f"/contacts/lists/{lst.id}/delete", {}),
             (f"/contacts/fields/{field.id}/edit", {"label": "Hijacked"}), (f"/contacts/fields/{field.id}/delete", {})]
    for path, data in posts:
        assert web.post(path, data).status_code == 404, path
    # My contact cannot be put on their list either (the list is not found in my team).
    response = web.post(f"/contacts/{mine.id}/lists", {"list_id": lst.id}, htmx=True)
    assert response.status_code == 422
    assert Subscription.select().where(Subscription.list == lst).count() == 1
    assert Contact.get_by_id(contact.id).email == "theirs@example.com"
    assert MailingList.get_by_id(lst.id).name == "Theirs" and CustomField.get_by_id(field.id).label == "Secret"
    assert my_list.id  # my own list is still there
    # Their contacts never show in my list or my export.
    assert "theirs@example.com" not in web.get("/contacts/").get_data(as_text=True)
    assert "theirs@example.com" not in web.get("/contacts/export").get_data(as_text=True)


def test_gdpr_buttons_appear_for_administrators_only(app, web, admin):
    contact = add_contact(acme(), "gdpr@example.com")
    page = soup(web.get(f"/contacts/{contact.id}"))
    assert page.select_one("#gdpr-export")["href"] == f"/contacts/{contact.id}/export.json"
    assert page.select_one("#gdpr-erase")["href"] == f"/contacts/{contact.id}/erase"
    _, author = make_member(app, acme(), "author")
    page = soup(author.get(f"/contacts/{contact.id}"))
    assert page.select_one("#gdpr-export") is None and page.select_one("#gdpr-erase") is None
