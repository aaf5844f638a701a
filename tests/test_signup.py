"""Public sign-up forms (hosted page, embedded snippet, double and single opt-in, bot defence)
and the preference center. Real HTTP through the test client, real mail through the catcher."""
import json
import time

import pytest
from bs4 import BeautifulSoup

from app import tokens
from app.catcher.services import parse
from app.consent import forms
from app.consent import preferences
from app.consent import suppression
from app.models import CaughtMessage
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Notice
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Suppression
from app.models import Team
from app.models import utcnow
from tests.accounts_support import make_member
from tests.conftest import link_in
from tests.conftest import soup


@pytest.fixture
def team(app, admin):
    """Acme as a team that can send its confirmation emails: a verified sender domain, a default From
    address on it, and its own SMTP account (pointing at the mail catcher's port)."""
    team = Team.get(Team.name == "Acme")
    team.default_from_name, team.default_from_email = "Acme News", "news@acme.example"
    team.save()
    row = SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
    with app.app_context():
        from app.senders import domains
        domains.dkim_record(row)  # makes the domain's DKIM key
    SmtpAccount.create(team=team, name="Acme relay", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                       tls_mode="none")
    return team


@pytest.fixture
def news(team):
    return MailingList.create(team=team, visibility="public", name="News", description="Monthly product news.")


@pytest.fixture
def public(app):
    """A visitor from the internet: no session, no CSRF token, a fixed IP."""
    return app.test_client()


def stamp(app, mailing_list, age=5):
    """The hidden timestamp field of a hosted form rendered `age` seconds ago."""
    with app.app_context():
        return forms.form_stamp(mailing_list, at=time.time() - age)


def submit(app, client, mailing_list, email="new.person@example.com", name="", age=5, ip="198.51.100.1", **extra):
    data = {"email": email, "name": name, "website": ""}
    if age is not None:
        data["ts"] = stamp(app, mailing_list, age)
    data.update(extra)
    return client.post(f"/f/{mailing_list.public_id}", data=data, environ_base={"REMOTE_ADDR": ip})


def confirmation_link(email):
    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert message is not None, "no confirmation email reached the mail catcher"
    parsed = parse(message)
    assert parsed["recipients"] == [email]
    return link_in(parsed["text"], "/confirm/").split("http://loft.test", 1)[1]


def with_app(app, function, *args):
    # Hashes and tokens are keyed with the app's secret; the context is pushed
    # only for the call, since one left open would be shared by the client's requests.
    with app.app_context():
        return function(*args)


# --- The team's page ------------------------------------------------------------------

def test_forms_page_gives_the_hosted_url_and_a_snippet(app, web, news):
    response = web.get("/contacts/forms")
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("nav.tabs a[href='/contacts/forms'][aria-current=page]") is not None
    section = page.select_one(f"#form-{news.id}")
    url = f"http://loft.test/f/{news.public_id}"
    assert section.select_one(f"#url-{news.id}")["value"] == url
    assert "Double opt-in" in section.select_one(".badge").text
    snippet = BeautifulSoup(section.select_one(f"#snippet-{news.id}").text, "html.parser")
    form = snippet.select_one("form")
    assert form["method"] == "post" and form["action"] == url
    assert snippet.select_one("input[name=email][type=email][required]") is not None
    honeypot = snippet.select_one("input[name=website]")
    assert honeypot["tabindex"] == "-1" and honeypot.find_parent("div")["aria-hidden"] == "true"
    assert snippet.select_one("input[name=ts]") is None  # static HTML cannot carry a fresh stamp


def test_forms_page_empty_state_and_guest_access(app, team):
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get("/contacts/forms"))
    assert "has none yet" in page.select_one("section.empty").text


# --- Hosted form ---------------------------------------------------------------------

def test_hosted_form_is_public_and_sets_no_cookie(public, news):
    response = public.get(f"/f/{news.public_id}")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    page = soup(response)
    assert page.select_one("h1").text == "Subscribe to News"
    form = page.select_one(f"form[action='/f/{news.public_id}']")
    assert form.select_one("input[name=ts]")["value"]
    assert form.select_one("label[for=f-email]") and form.select_one("#f-email[type=email]")
    assert form.select_one(".hp[aria-hidden=true] input[name=website][tabindex='-1']") is not None
    assert "Acme may send me emails about “News”" in form.select_one("#consent-wording").text
    assert page.select_one("nav.mainnav") is None
    assert public.get("/f/not-a-list").status_code == 404


def test_double_opt_in_end_to_end(app, public, news, catcher):
    response = submit(app, public, news, email=" New.Person@Example.com ", name="Nia")
    assert response.status_code == 200
    assert soup(response).select_one("h1").text == "Check your inbox"
    assert "Set-Cookie" not in response.headers
    contact = Contact.get(Contact.email == "new.person@example.com")
    assert contact.name == "Nia" and contact.source == "form" and contact.status == "active"
    sub = Subscription.get(Subscription.contact == contact)
    assert sub.status == "unconfirmed" and sub.confirmed_at is None
    assert contact.consent_at is None  # consent is the confirmation, not the form

    link = confirmation_link("new.person@example.com")
    assert link.startswith(f"/f/{news.public_id}/confirm/")
    page = public.get(link)
    assert page.status_code == 200
    # Opening the link (as mail scanners do) confirms nothing: the button does.
    assert Subscription.get_by_id(sub.id).status == "unconfirmed"
    button_form = soup(page).select_one(f"form[action='{link}']")
    assert button_form.select_one("button[type=submit]").text == "Yes, subscribe me"

    confirmed = public.post(link, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert confirmed.status_code == 200
    assert soup(confirmed).select_one("h1").text == "You are subscribed"
    sub = Subscription.get_by_id(sub.id)
    assert sub.status == "subscribed" and sub.confirmed_at is not None
    contact = Contact.get_by_id(contact.id)
    assert contact.consent_source == "form:News" and contact.consent_ip == "203.0.113.9"
    assert contact.consent_text == with_app(app, forms.consent_wording, news) and contact.consent_at is not None
    assert [e.type for e in Event.select().where(Event.contact == contact).order_by(Event.id)] == [
        "created", "subscribed", "confirmed"]
    # The confirmed page links to the preference center, which works.
    prefs = soup(confirmed).select_one("a[href^='/p/']")["href"]
    assert public.get(prefs).status_code == 200

    # Confirming again is harmless.
    assert public.post(link).status_code == 200
    assert Event.select().where(Event.type == "confirmed").count() == 1


def test_the_confirmation_comes_from_the_team_through_its_own_account_dkim_signed(app, public, team, news,
                                                                                catcher):
    """Issue 9: it came From the instance's identity through the instance's server, so it was not signed
    with the team's DKIM key."""
    import dkim

    from app.senders import domains
    assert submit(app, public, news, email="nia@example.org").status_code == 200
    message = CaughtMessage.get()
    parsed = parse(message)
    assert parsed["recipients"] == ["nia@example.org"]
    raw = bytes(message.raw)
    assert b"From: Acme News <news@acme.example>" in raw and message.mail_from == "news@acme.example"
    row = SenderDomain.get(SenderDomain.domain == "acme.example")
    dns = {f"{row.dkim_selector}._domainkey.acme.example.".encode(): with_app(app, domains.dkim_record, row).encode()}
    assert raw.startswith(b"DKIM-Signature:") and b"d=acme.example" in raw.split(b"\r\n\r\n", 1)[0]
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name))


def test_without_its_own_account_the_team_is_told_and_the_instance_server_is_not_used(app, public, team, news,
                                                                                      catcher):
    SmtpAccount.delete().execute()
    for email in ("one@example.org", "two@example.org"):
        assert submit(app, public, news, email=email).status_code == 200  # the visitor's page is unchanged
    assert CaughtMessage.select().count() == 0  # the catcher is also the instance's outbound server
    notices = list(Notice.select().where(Notice.team == team))
    assert len(notices) == 1  # one a day, not one per sign-up
    assert "Sign-up confirmation emails cannot be sent" in notices[0].subject
    assert "no active SMTP account" in notices[0].text


def test_resubmitting_is_idempotent_and_mail_is_capped(app, public, news, catcher):
    app.config["SIGNUP_MAILS_PER_ADDRESS_DAY"] = 2
    for _ in range(3):
        assert submit(app, public, news, email="twice@example.com").status_code == 200
    assert Contact.select().count() == 1 and Subscription.select().count() == 1
    assert CaughtMessage.select().count() == 2  # the third is not sent: no inbox flooding
    public.post(confirmation_link("twice@example.com"))
    assert submit(app, public, news, email="twice@example.com").status_code == 200
    assert Subscription.get().status == "subscribed"
    assert CaughtMessage.select().count() == 2


def test_single_opt_in_subscribes_at_once(app, public, team, catcher):
    open_list = MailingList.create(team=team, visibility="public", name="Open", double_opt_in=False)
    response = submit(app, public, open_list, email="quick@example.com")
    assert response.status_code == 200
    assert soup(response).select_one("h1").text == "Thank you"
    contact = Contact.get(Contact.email == "quick@example.com")
    assert Subscription.get(Subscription.contact == contact).status == "subscribed"
    assert contact.consent_source == "form:Open" and contact.consent_ip == "198.51.100.1"
    assert "may send me emails about “Open”" in contact.consent_text
    assert CaughtMessage.select().count() == 0


def test_single_opt_in_asks_someone_who_unsubscribed_to_confirm(app, public, team, catcher):
    open_list = MailingList.create(team=team, visibility="public", name="Open", double_opt_in=False)
    contact = Contact.create(team=team, email="back@example.com", domain="example.com")
    Subscription.create(contact=contact, list=open_list, status="unsubscribed")
    submit(app, public, open_list, email="back@example.com")
    assert Subscription.get().status == "unconfirmed"
    public.post(confirmation_link("back@example.com"))
    assert Subscription.get().status == "subscribed"


# --- Bot defence --------------------------------------------------------------------------

def test_honeypot_gets_the_usual_answer_and_nothing_happens(app, public, news, catcher):
    response = submit(app, public, news, email="bot@example.com", website="http://spam.example")
    assert response.status_code == 200
    assert soup(response).select_one("h1").text == "Check your inbox"
    assert Contact.select().count() == 0 and CaughtMessage.select().count() == 0


@pytest.mark.parametrize("age, message", [(0, "quicker than we expected"), (2 * 86400, "open for a long time")])
def test_timing_refusals(app, public, news, age, message):
    response = submit(app, public, news, email="fast@example.com", age=age)
    assert response.status_code == 422
    page = soup(response)
    assert message in page.select_one("#form-error").text
    assert page.select_one("#f-email")["value"] == "fast@example.com"  # nothing typed is lost
    assert page.select_one("input[name=ts]")["value"]  # a fresh stamp to send again with
    assert Contact.select().count() == 0


def test_forged_or_borrowed_stamps_are_refused(app, public, team, news):
    other = MailingList.create(team=team, visibility="public", name="Other")
    for bad in ("forged", stamp(app, other)):
        response = submit(app, public, news, email="x@example.com", ts=bad)
        assert response.status_code == 422
        assert "could not be verified" in soup(response).select_one("#form-error").text
    assert Contact.select().count() == 0


def test_bad_address_is_shown_at_the_field(app, public, news):
    response = submit(app, public, news, email="not an address")
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#f-email")["aria-invalid"] == "true"
    assert "Enter your email address" in page.select_one("#e-email").text
    assert submit(app, public, news, email="@example.com").status_code == 422


def test_per_ip_rate_limits(app, public, news, catcher):
    app.config.update(SIGNUP_PER_IP_HOUR=4, SIGNUP_BARE_PER_IP_HOUR=2)
    # The embedded snippet (no stamp) gets the smaller allowance.
    assert submit(app, public, news, email="e1@example.com", age=None).status_code == 200
    assert submit(app, public, news, email="e2@example.com", age=None).status_code == 200
    refused = submit(app, public, news, email="e3@example.com", age=None)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3600"
    assert "too many sign-ups" in soup(refused).select_one("main").text
    assert Contact.get_or_none(Contact.email == "e3@example.com") is None
    # The hosted form still has room, up to the overall limit.
    assert submit(app, public, news, email="h1@example.com").status_code == 200
    assert submit(app, public, news, email="h2@example.com").status_code == 429
    # Another address is not affected, and the limit is kept in the database.
    assert submit(app, public, news, email="h3@example.com", ip="198.51.100.2").status_code == 200
    from app.models import RateLimitHit
    assert RateLimitHit.select().count() >= 5
    assert "198.51.100.1" not in json.dumps([h.key for h in RateLimitHit.select()])


def test_blocked_addresses_get_the_same_answer_and_no_mail(app, public, team, news, catcher):
    Contact.create(team=team, email="bounced@example.com", domain="example.com", status="bounced")
    Contact.create(team=team, email="left@example.com", domain="example.com", status="unsubscribed")
    with app.app_context():
        suppression.suppress(team.id, "email", "erased@example.com", reason="erased")
        suppression.suppress(team.id, "domain", "blocked.example")
    fresh = soup(submit(app, public, news, email="fresh@example.com"))
    CaughtMessage.delete().execute()
    for email in ("bounced@example.com", "left@example.com", "erased@example.com", "anyone@blocked.example"):
        page = soup(submit(app, public, news, email=email))
        assert page.select_one("main").text == fresh.select_one("main").text
    assert CaughtMessage.select().count() == 0
    assert Contact.get_or_none(Contact.email == "erased@example.com") is None
    assert Subscription.select().count() == 1  # only fresh@


# --- Confirmation links ---------------------------------------------------------------------

def test_tampered_and_foreign_confirmation_links_are_not_found(app, public, team, news, catcher):
    submit(app, public, news, email="t@example.com")
    link = confirmation_link("t@example.com")
    token = link.rsplit("/", 1)[1]
    assert public.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB")).status_code == 404
    assert public.post(link[:-2] + ("AA" if not link.endswith("AA") else "BB")).status_code == 404
    other = MailingList.create(team=team, visibility="public", name="Other")
    assert public.get(f"/f/{other.public_id}/confirm/{token}").status_code == 404
    assert Subscription.get().status == "unconfirmed"


def test_expired_confirmation_link(app, public, news, catcher):
    submit(app, public, news, email="late@example.com")
    sub = Subscription.get()

    with app.app_context():
        token = tokens.sign("confirm", sub.id, tokens.email_digest("late@example.com"), int(time.time()) - 8 * 86400)
    response = public.post(f"/f/{news.public_id}/confirm/{token}")
    assert response.status_code == 410
    page = soup(response)
    assert page.select_one("h1").text == "This link has expired"
    assert page.select_one(f"a[href='/f/{news.public_id}']") is not None
    assert Subscription.get_by_id(sub.id).status == "unconfirmed"


def test_a_link_does_not_override_a_later_unsubscribe(app, public, news, catcher):
    submit(app, public, news, email="changed@example.com")
    link = confirmation_link("changed@example.com")
    Contact.update(status="unsubscribed").execute()
    response = public.post(link)
    assert response.status_code == 410
    assert Subscription.get().status == "unconfirmed"


# --- Preference center ----------------------------------------------------------------------

@pytest.fixture
def subscriber(team, news):
    contact = Contact.create(team=team, email="sam@example.com", domain="example.com", name="Sam")
    Subscription.create(contact=contact, list=news, status="subscribed")
    return contact


def pref_path(app, contact):
    return with_app(app, preferences.preference_path, contact)


def test_preference_url_is_absolute_and_signed(app, subscriber):
    url = with_app(app, preferences.preference_url, subscriber)
    assert url.startswith("http://loft.test/p/")
    assert with_app(app, preferences.contact_for_token, url.rsplit("/", 1)[1]).id == subscriber.id


def test_preference_center_lists_choices(app, public, team, news, subscriber):
    MailingList.create(team=team, visibility="public", name="Events")
    response = public.get(pref_path(app, subscriber))
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    page = soup(response)
    boxes = {box.find_next("label").contents[0].strip(): box.has_attr("checked")
             for box in page.select("input[type=checkbox][name=lists]")}
    assert boxes == {"Events": False, "News": True}
    assert page.select_one("label[for=list-%d] .help" % news.id).text == "Monthly product news."
    assert page.select_one("button.danger").text == "Unsubscribe from everything"


def test_tampered_or_stale_preference_links_are_not_found(app, public, team, subscriber):
    path = pref_path(app, subscriber)
    assert public.get(path[:-3] + "xyz").status_code == 404
    assert public.post(path[:-3] + "xyz", data={"lists": []}).status_code == 404
    assert public.post(path[:-3] + "xyz/unsubscribe").status_code == 404
    # A link made for a deleted contact never opens the page of whoever gets its id next.
    contact_id = subscriber.id
    subscriber.delete_instance()
    Contact.create(id=contact_id, team=team, email="someone.else@example.com", domain="example.com")
    assert public.get(path).status_code == 404


def test_saving_choices(app, public, team, news, subscriber):
    events = MailingList.create(team=team, visibility="public", name="Events")
    path = pref_path(app, subscriber)
    response = public.post(path, data={"lists": [str(events.id)]}, environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert response.status_code == 200
    assert "Your choices are saved" in soup(response).select_one(".flash-success").text
    statuses = {s.list.name: s.status for s in Subscription.select()}
    assert statuses == {"News": "unsubscribed", "Events": "subscribed"}
    assert Subscription.get(Subscription.list == news).unsubscribed_at is not None
    contact = Contact.get_by_id(subscriber.id)
    assert contact.consent_source == "preference_center" and contact.consent_ip == "192.0.2.44"
    kinds = sorted((e.type, e.data.get("list")) for e in Event.select())
    assert kinds == [("subscribed", "Events"), ("unsubscribed", "News")]
    # Another team's list id is ignored.
    foreign = MailingList.create(team=Team.create(name="Other"), visibility="public", name="Theirs")
    public.post(path, data={"lists": [str(events.id), str(foreign.id)]})
    assert Subscription.select().where(Subscription.list == foreign).count() == 0


def test_unsubscribe_from_everything_and_change_of_mind(app, public, team, news, subscriber):
    events = MailingList.create(team=team, visibility="public", name="Events")
    Subscription.create(contact=subscriber, list=events, status="unconfirmed")
    path = pref_path(app, subscriber)
    response = public.post(path + "/unsubscribe")
    assert response.status_code == 200
    assert "unsubscribed from everything" in soup(response).select_one(".flash-success").text
    contact = Contact.get_by_id(subscriber.id)
    assert contact.status == "unsubscribed"
    assert {s.status for s in Subscription.select()} == {"unsubscribed"}
    assert with_app(app, suppression.is_suppressed, team.id, "sam@example.com")
    assert Suppression.get().reason == "unsubscribed"
    everything = Event.get((Event.type == "unsubscribed") & (Event.contact == contact))
    assert everything.data["all"] is True
    assert sorted(everything.data["lists"]) == ["Events", "News"]

    # From the same personal link, the person may come back.
    page = soup(public.get(path))
    assert "You unsubscribed from everything" in page.select_one(".flash-info").text
    public.post(path, data={"lists": [str(news.id)]})
    assert Contact.get_by_id(subscriber.id).status == "active"
    assert Subscription.get(Subscription.list == news).status == "subscribed"
    assert not with_app(app, suppression.is_suppressed, team.id, "sam@example.com")


def test_bounced_or_suppressed_people_cannot_resubscribe_themselves(app, public, team, news, subscriber):
    path = pref_path(app, subscriber)
    with app.app_context():
        suppression.suppress(team.id, "domain", "example.com")
    page = soup(public.get(path))
    assert "do-not-mail list" in page.select_one(".flash-info").text
    assert page.select_one("input[name=lists]") is None
    response = public.post(path, data={"lists": [str(news.id)]})
    assert response.status_code == 422
    Contact.update(status="bounced").execute()
    page = soup(public.get(path))
    assert "bounced" in page.select_one(".flash-info").text


def test_preference_center_is_per_team(app, public, team, subscriber):
    """A token names its team: the same contact id in another team's token is not found."""
    other = Team.create(name="Other")
    with app.app_context():
        forged = tokens.sign("preferences", other.id, subscriber.id, tokens.email_digest(subscriber.email))
    assert public.get(f"/p/{forged}").status_code == 404
