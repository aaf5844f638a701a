"""The API's first resources: contacts, lists and subscriptions, custom fields, suppressions; each through the
same services as the pages, so what the pages refuse the API refuses, with the message at its field."""
import pytest

from app.catcher.services import parse
from app.models import CaughtMessage
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Subscription
from app.models import Suppression
from app.models import Tag
from app.models import ContactTag
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import utcnow
from app.senders import domains

PROBLEM = "application/problem+json"


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()["errors"]


# --- Contacts -------------------------------------------------------------------------------------

def test_create_get_update_delete_a_contact(api):
    api.post("/api/v1/fields", json={"label": "Plan", "key": "plan"})
    api.post("/api/v1/fields", json={"label": "Seats", "type": "number"})
    newsletter = api.post("/api/v1/lists", json={"name": "Newsletter"}).get_json()
    created = api.post("/api/v1/contacts", json={"email": " Ann@Example.COM ", "name": "Ann",
                                                 "fields": {"plan": "pro", "seats": 3},
                                                 "lists": [newsletter["id"]]})
    assert created.status_code == 201, created.get_data(as_text=True)
    contact = created.get_json()
    assert contact["email"] == "ann@example.com" and contact["fields"] == {"plan": "pro", "seats": 3}
    assert contact["created_at"].endswith("Z") and contact["status"] == "active"
    assert api.get(f"/api/v1/contacts/{contact['id']}").get_json() == contact
    assert api.get("/api/v1/contacts/by-email/ANN@example.com").get_json() == contact
    subscriptions = api.get(f"/api/v1/contacts/{contact['id']}/subscriptions").get_json()["data"]
    assert [(s["list_id"], s["status"]) for s in subscriptions] == [(newsletter["id"], "subscribed")]

    changed = api.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "Ann B", "fields": {"seats": None}})
    assert changed.status_code == 200
    assert changed.get_json()["name"] == "Ann B" and changed.get_json()["fields"] == {"plan": "pro"}
    assert changed.get_json()["email"] == "ann@example.com"
    assert Event.select().where((Event.contact == contact["id"]) & (Event.type == "updated")).count() == 1

    assert api.delete(f"/api/v1/contacts/{contact['id']}").status_code == 204
    assert Contact.get_or_none(Contact.id == contact["id"]) is None
    refused(api.get(f"/api/v1/contacts/{contact['id']}"), 404)


def test_a_contact_is_refused_like_on_the_page(api):
    api.post("/api/v1/contacts", json={"email": "taken@example.com"})
    assert "already a contact" in refused(api.post("/api/v1/contacts", json={"email": "taken@example.com"}))["email"]
    api.post("/api/v1/suppressions", json={"value": "gone@example.com"})
    assert "suppression list" in refused(api.post("/api/v1/contacts", json={"email": "gone@example.com"}))["email"]
    errors = refused(api.post("/api/v1/contacts", json={"email": "x@example.com", "fields": {"nope": 1}}))
    assert errors == {"fields.nope": "no such custom field"}
    api.post("/api/v1/fields", json={"label": "Joined", "type": "date"})
    errors = refused(api.post("/api/v1/contacts", json={"email": "x@example.com", "fields": {"joined": "soon"}}))
    assert "YYYY-MM-DD" in errors["fields.joined"]
    contact = api.post("/api/v1/contacts", json={"email": "y@example.com"}).get_json()
    errors = refused(api.patch(f"/api/v1/contacts/{contact['id']}", json={"email": "taken@example.com"}))
    assert "already another contact" in errors["email"]
    assert Contact.get_by_id(contact["id"]).email == "y@example.com"


def test_the_list_filters_like_the_contact_list(api):
    team = api.key.team
    vip = api.post("/api/v1/lists", json={"name": "VIP"}).get_json()
    ids = {}
    for email in ("a@one.example.com", "b@one.example.com", "c@two.example.com"):
        ids[email] = api.post("/api/v1/contacts", json={"email": email}).get_json()["id"]
    api.post(f"/api/v1/lists/{vip['id']}/subscriptions", json={"contact_id": ids["b@one.example.com"]})
    api.patch(f"/api/v1/contacts/{ids['c@two.example.com']}", json={"status": "unsubscribed"})
    tag = Tag.create(team=team, name="Friends", name_key="friends")
    ContactTag.create(contact=ids["a@one.example.com"], tag=tag)

    def emails(query):
        response = api.get(f"/api/v1/contacts?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return sorted(contact["email"] for contact in response.get_json()["data"])

    assert emails("status=unsubscribed") == ["c@two.example.com"]
    assert emails(f"list={vip['id']}") == ["b@one.example.com"]
    assert emails(f"tag={tag.id}") == ["a@one.example.com"]
    assert emails("search=@one.example.com") == ["a@one.example.com", "b@one.example.com"]
    assert emails("search=c@") == ["c@two.example.com"]
    assert api.get(f"/api/v1/contacts?tag={tag.id}").get_json()["data"][0]["tags"] == ["Friends"]


# --- Lists and subscriptions ----------------------------------------------------------------------

def test_lists_crud(api):
    created = api.post("/api/v1/lists", json={"name": "News", "description": "Monthly", "visibility": "public"})
    assert created.status_code == 201
    news = created.get_json()
    assert news["subscribers"] == {"unconfirmed": 0, "subscribed": 0, "unsubscribed": 0}
    assert "already a list" in refused(api.post("/api/v1/lists", json={"name": "news"}))["name"]
    changed = api.patch(f"/api/v1/lists/{news['id']}", json={"double_opt_in": True}).get_json()
    assert changed["double_opt_in"] is True and changed["name"] == "News" and changed["visibility"] == "public"
    assert [item["name"] for item in api.get("/api/v1/lists").get_json()["data"]] == ["News"]
    assert api.delete(f"/api/v1/lists/{news['id']}").status_code == 204
    assert MailingList.select().count() == 0


def test_subscribe_directly_and_take_off(api):
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    contact = api.post("/api/v1/contacts", json={"email": "sub@example.com"}).get_json()
    path = f"/api/v1/lists/{news['id']}/subscriptions"
    response = api.post(path, json={"contact_id": contact["id"]})
    assert response.status_code == 201 and response.get_json()["status"] == "subscribed"
    assert "already on" in refused(api.post(path, json={"contact_id": contact["id"]}))["list_id"]
    assert api.get(f"/api/v1/lists/{news['id']}").get_json()["subscribers"]["subscribed"] == 1
    assert api.delete(f"{path}/{contact['id']}").status_code == 204
    refused(api.delete(f"{path}/{contact['id']}"), 404)
    assert Subscription.select().count() == 0
    assert "no such contact" in refused(api.post(path, json={"contact_id": 999999}))["contact_id"]


@pytest.fixture
def sending_team(app, api, catcher):
    """Acme able to send its confirmation emails: a verified sender domain with its DKIM key, a default
    From on it, and its own SMTP account pointing at the real mail catcher."""
    team = api.key.team
    team.default_from_name, team.default_from_email = "Acme News", "news@acme.example"
    team.save()
    domains.dkim_record(SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow()))
    SmtpAccount.create(team=team, name="Acme relay", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                       tls_mode="none")
    return team


def test_subscribe_with_double_opt_in_sends_the_lists_confirmation(sending_team, api):
    """The confirmation email of the consent module, through the team's account into the real catcher; the
    contact waits as unconfirmed until the link is opened."""
    news = api.post("/api/v1/lists", json={"name": "Announcements"}).get_json()
    contact = api.post("/api/v1/contacts", json={"email": "optin@example.com"}).get_json()
    before = CaughtMessage.select().count()
    response = api.post(f"/api/v1/lists/{news['id']}/subscriptions",
                        json={"contact_id": contact["id"], "double_opt_in": True})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["status"] == "unconfirmed" and response.get_json()["confirmation_sent"] is True
    caught = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert CaughtMessage.select().count() == before + 1
    parsed = parse(caught)
    assert parsed["recipients"] == ["optin@example.com"] and "/confirm/" in parsed["text"]
    subscription = Subscription.get((Subscription.contact == contact["id"]) & (Subscription.list == news["id"]))
    assert subscription.status == "unconfirmed"


def test_a_suppressed_contact_is_not_subscribed(api):
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    contact = api.post("/api/v1/contacts", json={"email": "later@example.com"}).get_json()
    api.post("/api/v1/suppressions", json={"value": "later@example.com"})
    for double in (False, True):
        errors = refused(api.post(f"/api/v1/lists/{news['id']}/subscriptions",
                                  json={"contact_id": contact["id"], "double_opt_in": double}))
        assert "cannot be added" in " ".join(errors.values())
    assert Subscription.select().count() == 0


# --- Custom fields --------------------------------------------------------------------------------

def test_custom_fields_crud(api):
    created = api.post("/api/v1/fields", json={"label": "Company name"})
    assert created.status_code == 201
    field = created.get_json()
    assert field["key"] == "company_name" and field["type"] == "text"
    assert "built-in" in refused(api.post("/api/v1/fields", json={"label": "E", "key": "email"}))["key"]
    renamed = api.patch(f"/api/v1/fields/{field['id']}", json={"label": "Company"}).get_json()
    assert renamed == dict(field, label="Company")
    assert api.get("/api/v1/fields").get_json()["data"] == [renamed]
    contact = api.post("/api/v1/contacts", json={"email": "f@example.com",
                                                 "fields": {"company_name": "Acme"}}).get_json()
    assert api.delete(f"/api/v1/fields/{field['id']}").status_code == 204
    assert CustomField.select().count() == 0
    assert api.get(f"/api/v1/contacts/{contact['id']}").get_json()["fields"] == {}


# --- Suppressions ---------------------------------------------------------------------------------

def test_suppressions_add_list_remove(api):
    contact = api.post("/api/v1/contacts", json={"email": "stop@example.com"}).get_json()
    added = api.post("/api/v1/suppressions", json={"value": "stop@example.com"})
    assert added.status_code == 201
    entry = added.get_json()
    assert entry["kind"] == "email" and "stop@example.com" not in entry["hint"]
    assert api.get(f"/api/v1/contacts/{contact['id']}").get_json()["status"] == "suppressed"
    api.post("/api/v1/suppressions", json={"value": "spam.example.net"})
    listed = api.get("/api/v1/suppressions?limit=1").get_json()
    assert listed["data"][0]["kind"] == "domain" and listed["next"]
    assert api.get(listed["next"]).get_json()["data"][0]["id"] == entry["id"]
    assert "not a valid" in refused(api.post("/api/v1/suppressions", json={"value": "a@@b"}))["value"]
    wrong = refused(api.delete(f"/api/v1/suppressions/{entry['id']}?confirm=other@example.com"))
    assert "Type it exactly" in wrong["confirm"]
    assert api.delete(f"/api/v1/suppressions/{entry['id']}?confirm=stop@example.com").status_code == 204
    assert Suppression.select().count() == 1
