"""Public and private lists (issue 9, point 18): a private list appears nowhere public.

Public: a hosted sign-up form, and a choice in the preference center. Private: the team's
own; no form, not shown in the preference center (as Mailchimp and listmonk do), and
"unsubscribe from everything" still ends it. New lists start private; lists that existed
before migration 0037 stay public, since their forms are already in use.
"""
import importlib

import pytest
from playhouse.migrations import SchemaMigrator

from app.consent import forms
from app.consent import preferences
from app.db import db
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from tests.conftest import soup


@pytest.fixture
def public(app):
    """A visitor from the internet: no session, no CSRF token."""
    return app.test_client()


@pytest.fixture
def lists(team):
    return (MailingList.create(team=team, name="News", visibility="public"),
            MailingList.create(team=team, name="Beta testers", visibility="private"))


@pytest.fixture
def subscriber(team, lists):
    contact = Contact.create(team=team, email="sam@example.com", domain="example.com", name="Sam")
    for mailing_list in lists:
        Subscription.create(contact=contact, list=mailing_list, status="subscribed")
    return contact


def with_app(app, function, *args):
    with app.app_context():
        return function(*args)


def test_a_new_list_is_private_unless_made_public_and_the_form_says_so(app, team, web):
    page = soup(web.get("/contacts/lists"))
    assert page.select_one("#new-visibility-private").has_attr("checked")
    assert page.select_one("label[for=new-visibility-public]").get_text() == "Public"
    web.post("/contacts/lists/new", {"name": "Customers"}, htmx=True)
    web.post("/contacts/lists/new", {"name": "Newsletter", "visibility": "public"}, htmx=True)
    assert MailingList.get(MailingList.name == "Customers").visibility == "private"
    assert MailingList.get(MailingList.name == "Newsletter").visibility == "public"
    rows = {row.select_one("a").get_text(): row.select_one(".visibility").get_text()
            for row in soup(web.get("/contacts/lists")).select("tbody tr")}
    assert rows == {"Customers": "Private", "Newsletter": "Public"}


def test_visibility_is_changed_in_the_list_settings_and_kept_when_not_sent(app, team, web, lists):
    news, beta = lists
    page = soup(web.get(f"/contacts/lists/{beta.id}"))
    assert page.select_one("#list-visibility-private").has_attr("checked")
    response = web.post(f"/contacts/lists/{beta.id}/edit", {"name": "Beta testers", "visibility": "public"},
                        htmx=True)
    assert response.status_code == 200
    assert MailingList.get_by_id(beta.id).visibility == "public"
    web.post(f"/contacts/lists/{news.id}/edit", {"name": "News letter"}, htmx=True)  # no choice sent
    assert MailingList.get_by_id(news.id).visibility == "public"


def test_an_unknown_visibility_is_refused_in_place_with_the_input_kept(app, team, web, lists):
    news, _ = lists
    response = web.post(f"/contacts/lists/{news.id}/edit", {"name": "Renamed", "visibility": "secret"}, htmx=True)
    assert response.status_code == 422
    page = soup(response)
    assert "public or private" in page.select_one("#e-list-visibility").get_text()
    assert page.select_one("#f-name")["value"] == "Renamed"
    assert MailingList.get_by_id(news.id).name == "News"


def test_a_private_list_has_no_public_form(app, public, team, lists):
    news, beta = lists
    assert public.get(f"/f/{news.public_id}").status_code == 200
    assert public.get(f"/f/{beta.public_id}").status_code == 404
    stamp = with_app(app, forms.form_stamp, beta)
    response = public.post(f"/f/{beta.public_id}", data={"email": "eve@example.com", "website": "", "ts": stamp})
    assert response.status_code == 404
    assert not Contact.select().where(Contact.email == "eve@example.com").exists()


def test_the_forms_page_offers_forms_for_public_lists_only(app, team, web, lists):
    news, beta = lists
    page = soup(web.get("/contacts/forms"))
    assert page.select_one(f"#form-{news.id}") is not None
    assert page.select_one(f"#form-{beta.id}") is None
    assert beta.public_id not in str(page)
    assert "1 private list has no sign-up form" in page.select_one("#private-lists").get_text(" ", strip=True)


def test_the_preference_center_shows_public_lists_only(app, public, subscriber, lists):
    news, beta = lists
    page = soup(public.get(with_app(app, preferences.preference_path, subscriber)))
    labels = [box.find_next("label").contents[0].strip() for box in page.select("input[name=lists]")]
    assert labels == ["News"]
    assert "Beta testers" not in str(page)


def test_saving_preferences_leaves_private_subscriptions_alone_and_cannot_join_one(app, public, team, lists):
    news, beta = lists
    contact = Contact.create(team=team, email="kim@example.com", domain="example.com")
    Subscription.create(contact=contact, list=beta, status="subscribed")
    path = with_app(app, preferences.preference_path, contact)
    # Ticking News (and, by a forged form, the private list too) leaves the private one as it was.
    response = public.post(path, data={"lists": [str(news.id), str(beta.id)]})
    assert response.status_code == 200
    statuses = {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == contact)}
    assert statuses == {news.id: "subscribed", beta.id: "subscribed"}
    # Unticking everything shown ends News only: the person never saw the private list.
    public.post(path, data={})
    statuses = {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == contact)}
    assert statuses == {news.id: "unsubscribed", beta.id: "subscribed"}
    # A forged form cannot join a private list the person is not on.
    stranger = Contact.create(team=team, email="lee@example.com", domain="example.com")
    public.post(with_app(app, preferences.preference_path, stranger), data={"lists": [str(beta.id)]})
    assert not Subscription.select().where(Subscription.contact == stranger).exists()


def test_unsubscribe_from_everything_still_ends_private_lists(app, public, subscriber, lists):
    path = with_app(app, preferences.preference_path, subscriber)
    public.post(f"{path}/unsubscribe")
    assert {s.status for s in Subscription.select().where(Subscription.contact == subscriber)} == {"unsubscribed"}
    assert Contact.get_by_id(subscriber.id).status == "unsubscribed"


def test_a_pending_sign_up_can_still_be_confirmed_after_the_list_is_made_private(app, public, team, lists):
    news, _ = lists
    contact = Contact.create(team=team, email="ana@example.com", domain="example.com")
    sub = Subscription.create(contact=contact, list=news, status="unconfirmed")
    token = with_app(app, forms.confirmation_token, sub, contact.email)
    MailingList.update(visibility="private").where(MailingList.id == news.id).execute()
    assert public.get(f"/f/{news.public_id}").status_code == 404
    assert public.post(f"/f/{news.public_id}/confirm/{token}").status_code == 200
    assert Subscription.get_by_id(sub.id).status == "subscribed"


def test_migration_0037_keeps_the_lists_that_existed_public(app, team):
    migration = importlib.import_module("migrations.0037_list_visibility")
    with app.app_context():
        migrator = SchemaMigrator.from_database(db.obj)
        migration.down(migrator, db.obj)
        p = db.param
        db.execute_sql("INSERT INTO mailing_list (team_id, name, description, double_opt_in, public_id, created_at) "
                       f"VALUES ({p}, 'Old list', '', {p}, 'old-public-id', '2025-01-01 00:00:00')", (team.id, True))
        migration.up(migrator, db.obj)
    assert MailingList.get(MailingList.name == "Old list").visibility == "public"
    assert MailingList.create(team=team, name="Brand new").visibility == "private"


def test_the_unsubscribe_page_does_not_name_a_private_list(app, team):
    """The confirmation page after "Unsubscribe" names public lists only; a private one is "this list"."""

    from app import tokens as tracking_tokens
    from tests.tracking_support import make_campaign
    from tests.tracking_support import make_send

    beta = MailingList.create(team=team, name="Beta testers", visibility="private")
    news = MailingList.create(team=team, name="News", visibility="public")
    contact = Contact.create(team=team, email="pat@example.com", domain="example.com")
    offers = MailingList.create(team=team, name="Offers", visibility="public")  # keeps the contact active
    for mailing_list in (beta, news, offers):
        Subscription.create(contact=contact, list=mailing_list, status="subscribed")
    client = app.test_client(use_cookies=False)
    for mailing_list, shown in ((beta, "this list"), (news, "News")):
        campaign = make_campaign(team, name=f"To {mailing_list.name}",
                                 audience={"lists": [mailing_list.id], "segments": []})
        send = make_send(campaign, contact)
        with app.app_context():
            url = f"/u/{tracking_tokens.sign('unsubscribe', send.id)}"
        text = soup(client.post(url, data={"scope": "campaign"})).select_one("#unsubscribe .flash").get_text()
        assert shown in text and "Beta testers" not in text
    assert {s.list_id: s.status for s in Subscription.select()} == {
        beta.id: "unsubscribed", news.id: "unsubscribed", offers.id: "subscribed"}
