"""Consent: the suppression list (add, remove, check, import), GDPR export and erasure, roles, isolation."""
import hashlib
import hmac
import io
import json

import pytest

from app.consent import suppression
from app.models import AuditLog
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import Subscription
from app.models import Suppression
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup


def make_contact(team, email, status="active", name="", **extra):
    return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], name=name, status=status, **extra)


def is_suppressed(app, team, email):
    # Hashes are keyed with the app's secret. The context is pushed only for
    # the call: one left open would be shared by the test client's requests.
    with app.app_context():
        return suppression.is_suppressed(team.id, email)


def checker_says(app, team, email):
    with app.app_context():
        return suppression.Checker(team.id)(email)


def audit_rows(team, action):
    return list(AuditLog.select().where((AuditLog.team == team) & (AuditLog.action == action)))


# --- The page ---------------------------------------------------------------------

def test_empty_suppression_page_explains_itself(web, team):
    response = web.get("/contacts/suppression")
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("nav.tabs a[href='/contacts/suppression'][aria-current=page]") is not None
    assert page.select_one("section.empty") is not None
    assert page.select_one("#suppression-entries") is None
    assert page.select_one("form[action='/contacts/suppression/add'] input[name=value]") is not None
    assert page.select_one("form[action='/contacts/suppression/import'][enctype='multipart/form-data']") is not None


def test_adding_an_address_suppresses_its_contact_in_one_go(app, web, team, admin):
    ann = make_contact(team, "ann@example.com")
    bob = make_contact(team, "bob@example.com")
    response = web.post("/contacts/suppression/add", {"value": "  Ann@Example.COM "}, htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    assert fragment.select_one("body") is None and fragment.select_one("#suppression") is not None
    assert "1 contact marked Suppressed" in fragment.select_one(".flash-success").text
    rows = fragment.select("#suppression-entries tbody tr")
    assert [r.select("td")[0].text.strip() for r in rows] == ["a…@example.com"]
    assert rows[0].select("td")[2].text.strip() == "Added by hand"

    assert Contact.get_by_id(ann.id).status == "suppressed"
    assert Contact.get_by_id(bob.id).status == "active"
    event = Event.get((Event.contact == ann.id) & (Event.type == "status_changed"))
    assert event.data["to"] == "suppressed"
    entry = Suppression.get()
    assert entry.kind == "email" and entry.hint == "a…@example.com"
    assert "ann@example.com" not in entry.value_hash and len(entry.value_hash) == 64
    assert is_suppressed(app, team, "ann@example.com")
    [audit] = audit_rows(team, "suppression.added")
    assert audit.user_id == admin.id and "ann@" not in json.dumps(audit.data) and "a…@example.com" in audit.data["hint"]

    # Adding it again changes nothing.
    again = soup(web.post("/contacts/suppression/add", {"value": "ann@example.com"}, htmx=True))
    assert "already on the list" in again.select_one(".flash-success").text
    assert Suppression.select().count() == 1 and len(audit_rows(team, "suppression.added")) == 1


def test_a_domain_suppresses_every_active_contact_of_it(app, web, team):
    a = make_contact(team, "a@spam.example")
    b = make_contact(team, "b@spam.example")
    bounced = make_contact(team, "c@spam.example", status="bounced")
    other = make_contact(team, "d@fine.example")
    response = web.post("/contacts/suppression/add", {"value": "@Spam.Example"}, follow_redirects=True)
    assert response.status_code == 200 and response.request.path == "/contacts/suppression"
    assert "2 contacts marked Suppressed" in soup(response).select_one("#flashes").text
    assert {Contact.get_by_id(c.id).status for c in (a, b)} == {"suppressed"}
    assert Contact.get_by_id(bounced.id).status == "bounced"  # already blocked; keeps the telling status
    assert Contact.get_by_id(other.id).status == "active"
    assert Event.select().where(Event.type == "status_changed").count() == 2
    assert is_suppressed(app, team, "anyone.new@spam.example")
    assert checker_says(app, team, "x@spam.example")
    assert not checker_says(app, team, "x@fine.example")


def test_bad_input_is_refused_at_the_field(web, team):
    response = web.post("/contacts/suppression/add", {"value": "not an address"}, htmx=True)
    assert response.status_code == 422
    field = soup(response).select_one("#f-add-value")
    assert field["aria-invalid"] == "true"
    assert "not a valid domain" in soup(response).select_one("#e-add-value").text
    assert Suppression.select().count() == 0
    assert web.post("/contacts/suppression/add", {"value": ""}).status_code == 422


def test_removing_needs_the_exact_value(app, web, team, admin):
    web.post("/contacts/suppression/add", {"value": "gone@example.com"})
    entry = Suppression.get()
    wrong = web.post(f"/contacts/suppression/{entry.id}/remove", {"confirm": "other@example.com"}, htmx=True)
    assert wrong.status_code == 422
    row = soup(wrong).select_one(f"#entry-{entry.id}")
    assert row.select_one("details[open]") is not None
    assert "not the address behind" in row.select_one(f"#e-confirm-{entry.id}").text
    assert Suppression.select().count() == 1

    right = web.post(f"/contacts/suppression/{entry.id}/remove", {"confirm": "GONE@example.com"}, htmx=True)
    assert right.status_code == 200
    assert "removed" in soup(right).select_one(".flash-success").text
    assert Suppression.select().count() == 0
    assert not is_suppressed(app, team, "gone@example.com")
    [audit] = audit_rows(team, "suppression.removed")
    assert "gone@" not in json.dumps(audit.data)


def test_check_an_address(web, team):
    web.post("/contacts/suppression/add", {"value": "blocked.example"})
    hit = soup(web.post("/contacts/suppression/check", {"value": "x@blocked.example"}, htmx=True))
    assert "is suppressed" in hit.select_one("#suppression-check .flash-warning").text
    miss = soup(web.post("/contacts/suppression/check", {"value": "x@fine.example"}, htmx=True))
    assert "is not on the suppression list" in miss.select_one("#suppression-check .flash-success").text
    bad = web.post("/contacts/suppression/check", {"value": "@"}, htmx=True)
    assert bad.status_code == 422 and soup(bad).select_one("#suppression-check .error") is not None


def test_import_reports_each_bad_line(app, web, team):
    carol = make_contact(team, "carol@example.com")
    dave = make_contact(team, "dave@bulk.example")
    text = ("email,reason\n"
            "carol@example.com,asked\n"
            "# a comment\n"
            "\n"
            "bulk.example\n"
            "not-an-address@\n"
            "\"eve@example.com\";x\n"
            "carol@example.com\n"
            "two words\n")
    response = web.post("/contacts/suppression/import",
                        {"file": (io.BytesIO(text.encode()), "list.csv")}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    page = soup(response)
    summary = page.select_one("#import-result").text
    assert "3 added" in " ".join(summary.split())
    assert "2 contacts marked Suppressed" in " ".join(summary.split())
    errors = [[td.text.strip() for td in tr.select("td")] for tr in page.select("#import-errors tbody tr")]
    assert [e[0] for e in errors] == ["6", "9"]
    assert errors[0][1] == "not-an-address@"
    assert Suppression.select().where(Suppression.reason == "import").count() == 3
    assert Contact.get_by_id(carol.id).status == "suppressed" and Contact.get_by_id(dave.id).status == "suppressed"
    assert is_suppressed(app, team, "eve@example.com")
    [audit] = audit_rows(team, "suppression.imported")
    assert audit.data["rejected"] == 2

    # The same file again adds nothing.
    again = web.post("/contacts/suppression/import",
                     {"file": (io.BytesIO(text.encode()), "list.csv")}, content_type="multipart/form-data")
    assert "0 added" in " ".join(soup(again).select_one("#import-result").text.split())
    assert Suppression.select().count() == 3


def test_import_without_a_usable_file(web, team):
    missing = web.post("/contacts/suppression/import", {}, content_type="multipart/form-data")
    assert missing.status_code == 422
    assert "Choose a text or CSV file" in soup(missing).select_one("#e-import-file").text
    empty = web.post("/contacts/suppression/import", {"file": (io.BytesIO(b"# nothing\n\n"), "empty.txt")},
                     content_type="multipart/form-data")
    assert empty.status_code == 422
    assert "no addresses or domains" in soup(empty).select_one("#e-import-file").text


def test_suppression_is_per_team(app, web, team):
    other = Team.create(name="Other")
    web.post("/contacts/suppression/add", {"value": "shared@example.com"})
    assert is_suppressed(app, team, "shared@example.com")
    assert not is_suppressed(app, other, "shared@example.com")
    with app.app_context():
        digest = suppression.value_hash(other.id, "email", "z@x.io")
    foreign = Suppression.create(team=other, kind="email", value_hash=digest, hint="z…@x.io")
    assert web.post(f"/contacts/suppression/{foreign.id}/remove", {"confirm": "z@x.io"}).status_code == 404
    assert Suppression.get_or_none(Suppression.id == foreign.id) is not None
    page = soup(web.get("/contacts/suppression"))
    assert [r.select("td")[0].text.strip() for r in page.select("#suppression-entries tbody tr")] == ["s…@example.com"]


def test_a_batch_is_checked_against_the_list_in_one_lookup(app, team):
    """suppressed_among (a welcome burst's check): the addresses blocked by their own entry or their domain's, of
    this team only; the same answers as is_suppressed and the Checker, one address at a time."""
    other = Team.create(name="Other")
    with app.app_context():
        suppression.suppress(team.id, "email", "ann@example.com")
        suppression.suppress(team.id, "domain", "spam.example")
        suppression.suppress(other.id, "email", "bob@example.com")
        batch = ["ann@example.com", "bob@example.com", "cy@spam.example", "dee@example.com", "eve@spam.example"]
        blocked = suppression.suppressed_among(team.id, batch)
        assert blocked == {"ann@example.com", "cy@spam.example", "eve@spam.example"}
        assert suppression.suppressed_among(other.id, batch) == {"bob@example.com"}
        assert suppression.suppressed_among(team.id, []) == set()
    for email in batch:
        assert (email in blocked) == is_suppressed(app, team, email) == checker_says(app, team, email), email


def test_the_stored_hash_is_the_keyed_hmac_of_team_kind_and_value(app, team):
    """Every list already stored was written with HMAC-SHA256(secret key, "team:kind:value"): however it is computed
    (keyed once per batch, copied per value), the hash must stay that, or old entries would stop blocking anyone."""
    with app.app_context():
        key = app.config["SECRET_KEY"].encode()
        expected = hmac.new(key, f"{team.id}:email:ann@example.com".encode(), hashlib.sha256).hexdigest()
        assert suppression.value_hash(team.id, "email", "  Ann@Example.COM ") == expected
        assert suppression.keyed_hash(team.id)("email", "ann@example.com") == expected
        domain = hmac.new(key, f"{team.id}:domain:spam.example".encode(), hashlib.sha256).hexdigest()
        assert suppression.value_hash(team.id, "domain", "@Spam.Example") == domain
        assert suppression.keyed_hash(team.id + 1)("email", "ann@example.com") != expected


def test_the_list_pages_by_id(web, team):
    rows = [{"team": team.id, "kind": "email", "value_hash": f"{i:064x}", "hint": f"h{i}…@example.com"}
            for i in range(60)]
    Suppression.insert_many(rows).execute()
    first = soup(web.get("/contacts/suppression"))
    assert len(first.select("#suppression-entries tbody tr")) == 50
    older = first.select_one("nav.pager a:-soup-contains('Older')")["href"]
    second = soup(web.get(older))
    assert len(second.select("#suppression-entries tbody tr")) == 10
    assert second.select_one("nav.pager a:-soup-contains('Older')") is None


# --- Roles --------------------------------------------------------------------------

def test_guests_see_the_list_but_cannot_change_it(app, team):
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get("/contacts/suppression"))
    assert page.select_one("h1").text == "Suppression list"
    assert page.select_one("form[action='/contacts/suppression/add']") is None
    assert page.select_one("form[action='/contacts/suppression/check']") is not None
    assert guest.post("/contacts/suppression/add", {"value": "x@example.com"}).status_code == 403
    assert guest.post("/contacts/suppression/import", {}).status_code == 403
    _, author = make_member(app, team, "author")
    assert author.post("/contacts/suppression/add", {"value": "x@example.com"}, htmx=True).status_code == 200


def test_gdpr_actions_are_for_administrators(app, team):
    contact = make_contact(team, "p@example.com")
    for role in ("manager", "author", "guest"):
        _, member = make_member(app, team, role)
        assert member.get(f"/contacts/{contact.id}/export.json").status_code == 403
        assert member.get(f"/contacts/{contact.id}/erase").status_code == 403
        assert member.post(f"/contacts/{contact.id}/erase", {"confirm": "p@example.com"}).status_code == 403
    assert Contact.get_or_none(Contact.id == contact.id) is not None
    assert not audit_rows(team, "contact.exported")


def test_another_teams_contact_is_not_found(app, web, team):
    other = Team.create(name="Other")
    foreign = make_contact(other, "f@example.com")
    assert web.get(f"/contacts/{foreign.id}/export.json").status_code == 404
    assert web.get(f"/contacts/{foreign.id}/erase").status_code == 404
    assert web.post(f"/contacts/{foreign.id}/erase", {"confirm": "f@example.com"}).status_code == 404
    assert Contact.get_or_none(Contact.id == foreign.id) is not None
    assert not is_suppressed(app, other, "f@example.com")


# --- GDPR export ----------------------------------------------------------------------

def _rich_contact(team):
    from app.models import CustomField
    CustomField.create(team=team, key="company", label="Company")
    news = MailingList.create(team=team, visibility="public", name="News")
    contact = make_contact(team, "pat@example.com", name="Pat", attributes={"company": "Initech"},
                           consent_source="form:News", consent_ip="192.0.2.7", consent_text="I agree.")
    Subscription.create(contact=contact, list=news, status="subscribed")
    Event.create(team=team, contact=contact, type="opened", campaign_id=None, data={"ip": "192.0.2.7"})
    return contact, news


def test_export_holds_everything_about_the_contact(web, team, admin):
    contact, news = _rich_contact(team)
    web.post("/contacts/suppression/add", {"value": "example.com"})
    response = web.get(f"/contacts/{contact.id}/export.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="loft-contact-{contact.id}.json"'
    data = json.loads(response.get_data(as_text=True))
    assert data["contact"]["email"] == "pat@example.com" and data["contact"]["name"] == "Pat"
    assert data["attributes"] == [{"key": "company", "label": "Company", "value": "Initech"}]
    assert data["consent"] == {"source": "form:News", "at": None, "ip": "192.0.2.7", "text": "I agree."}
    assert [(s["list"], s["status"]) for s in data["subscriptions"]] == [("News", "subscribed")]
    assert [e["type"] for e in data["events"]] == ["opened", "status_changed"]
    assert data["events"][0]["data"] == {"ip": "192.0.2.7"}
    assert data["suppression"]["suppressed"] is True
    assert [e["kind"] for e in data["suppression"]["entries"]] == ["domain"]
    assert data["controller"]["team"] == "Acme"
    [audit] = audit_rows(team, "contact.exported")
    assert audit.user_id == admin.id and audit.target == f"contact:{contact.id}" and "pat@" not in json.dumps(audit.data)


# --- Erasure ------------------------------------------------------------------------------

def test_erase_asks_for_the_address_first(app, web, team):
    contact, _ = _rich_contact(team)
    page = soup(web.get(f"/contacts/{contact.id}/erase"))
    form = page.select_one(f"form[action='/contacts/{contact.id}/erase']")
    assert form.select_one("input[name=confirm]") is not None and form.select_one("input[name=csrf_token]")
    wrong = web.post(f"/contacts/{contact.id}/erase", {"confirm": "someone@example.com"})
    assert wrong.status_code == 422
    assert soup(wrong).select_one("#f-confirm")["aria-invalid"] == "true"
    assert Contact.get_or_none(Contact.id == contact.id) is not None
    assert not is_suppressed(app, team, "pat@example.com")


def test_erasure_removes_the_person_and_keeps_the_suppression(app, web, team, admin):
    contact, news = _rich_contact(team)
    campaign = Campaign.create(team=team, name="Spring")
    sent = Send.create(campaign=campaign, contact=contact, email=contact.email, status="sent")
    Event.create(team=team, contact=contact, type="clicked", campaign_id=campaign.id,
                 data={"url": "https://example.com/?who=pat@example.com"})
    AuditLog.create(team=team, user=admin, action="note", data={"about": "pat@example.com"})

    response = web.post(f"/contacts/{contact.id}/erase", {"confirm": " Pat@Example.com "})
    assert response.status_code == 302
    assert "p…@example.com was erased" in soup(web.get(response.headers["Location"])).text

    assert Contact.get_or_none(Contact.id == contact.id) is None
    assert Subscription.select().count() == 0
    leftovers = list(Event.select().where(Event.team == team))
    assert leftovers and all(e.contact_id is None and e.data == {} for e in leftovers)
    assert {e.type for e in leftovers} >= {"opened", "clicked"}
    assert Event.get(Event.type == "clicked").campaign_id == campaign.id  # counts stay right
    assert Send.get_by_id(sent.id).email == "p…@example.com"
    entry = Suppression.get((Suppression.team == team) & (Suppression.kind == "email"))
    assert entry.reason == "erased" and entry.hint == "p…@example.com"
    everything = json.dumps([row.data for row in AuditLog.select()]) + json.dumps(
        [row.target for row in AuditLog.select()])
    assert "pat@example.com" not in everything
    [audit] = audit_rows(team, "contact.erased")
    assert audit.user_id == admin.id and audit.data["hint"] == "p…@example.com"

    # The hash outlives the person: the address is refused from now on.
    assert is_suppressed(app, team, "pat@example.com")
    assert checker_says(app, team, "pat@example.com")
    assert MailingList.get_by_id(news.id)  # the list stays


# --- Parsing ------------------------------------------------------------------------------

TRICKY = ["Ann@Example.com", "a.b+c@sub.example.co.uk", "a..b@example.com", ".a@example.com", "a.@example.com",
          "a@-x.com", "a@x-.com", "a@example.test", "a@foo.localhost", "a@x.c", "a@x.co1", "a@xn--bcher-kva.de",
          "a_b@example.org", "-a@example.org", "a@example.arpa", "x" * 65 + "@example.com",
          "a@" + "b" * 64 + ".com", "a@1.2.3.4", "user@example.c0m", "a@ex_ample.com", "A@EXAMPLE.ONION",
          "a@b.example-.com", "name@sub.-example.com", "a@" + ".".join(["abcdefghij"] * 24) + ".com"]


@pytest.mark.parametrize("text", TRICKY)
def test_the_fast_path_agrees_with_the_validator(text):
    """Imports skip the validator for plain addresses; the answer must be the validator's."""
    from email_validator import EmailNotValidError
    from email_validator import validate_email
    from app.consent.services import ConsentError
    from app.consent.services import parse_entry
    try:
        expected = ("email", validate_email(text, check_deliverability=False).normalized.lower())
    except EmailNotValidError:
        expected = None
    try:
        got = parse_entry(text)
    except ConsentError:
        got = None
    assert got == expected


def test_an_erased_address_cannot_come_back(app, web, team, catcher):
    contact, news = _rich_contact(team)
    assert web.post(f"/contacts/{contact.id}/erase", {"confirm": "pat@example.com"}).status_code == 302
    # Typed in by hand: refused at the field.
    again = web.post("/contacts/new", {"email": "PAT@example.com"})
    assert again.status_code == 422
    field = soup(again).select_one("input[name=email]")
    assert field["aria-invalid"] == "true"
    assert "suppression list" in soup(again).select_one("#" + field["aria-describedby"].split()[0]).text
    # Through the public form: the usual answer, and nothing stored or sent.
    public = app.test_client()
    response = public.post(f"/f/{news.public_id}", data={"email": "pat@example.com"})
    assert response.status_code == 200
    assert Contact.get_or_none(Contact.email == "pat@example.com") is None
    from app.models import CaughtMessage
    assert CaughtMessage.select().count() == 0
