"""The address check on public sign-up forms (a list's hosted page and a built form's): typos get "Did you mean
…?" with a button that works without JavaScript, disposable addresses and domains that take no mail are refused
at the field with nothing stored, and a domain whose DNS does not answer never turns anyone away. DNS is a real
server on 127.0.0.1 (tests/dns_support.py's dns_zone)."""
import time

import pytest

from app.consent import forms
from app.consent import signup_forms
from app.models import Contact
from app.models import MailingList
from app.models import SignupForm
from app.models import Subscription
from app.models import Team
from tests.conftest import soup


@pytest.fixture
def news(app, admin):
    team = Team.get(Team.name == "Acme")
    return MailingList.create(team=team, visibility="public", name="News", double_opt_in=False)


@pytest.fixture
def zone(app, dns_zone):
    """Sign-ups look domains up in this zone: gmail.com and acme.example take mail, nomail.example says it
    takes none (null MX), slow.example never answers."""
    app.config.update(SIGNUP_CHECK_DOMAINS=True, SIGNUP_DNS_TIMEOUT=0.4)
    dns_zone.add("gmail.com", "MX", "5 gmail-smtp-in.l.google.com.")
    dns_zone.add("acme.example", "MX", "10 mx.acme.example.")
    dns_zone.add("outlok.com", "A", "192.0.2.25")
    dns_zone.add("mailinator.com", "MX", "10 mail.mailinator.com.")
    dns_zone.add("nomail.example", "MX", "0 .")
    dns_zone.silence("slow.example")
    return dns_zone


def post(app, client, public_id, stamp_ids, **data):
    with app.app_context():
        ts = forms.tokens.sign("form", *stamp_ids, int(time.time() - 5))
    body = {"website": "", "ts": ts, **data}
    return client.post(f"/f/{public_id}", data=body, environ_base={"REMOTE_ADDR": "198.51.100.9"})


def list_post(app, client, news, **data):
    return post(app, client, news.public_id, (news.id,), **data)


def test_a_typo_asks_did_you_mean_and_its_button_signs_up_the_fix(app, public, news, zone):
    response = list_post(app, public, news, email="Ann@gmial.com", name="Ann")
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#e-email").text.strip() == "Did you mean ann@gmail.com?"
    assert page.select_one("#f-email")["value"] == "Ann@gmial.com"  # as typed
    button = page.select_one("#suggestion button[type=submit][name=use_suggestion]")
    assert button["value"] == "ann@gmail.com" and button.text.strip() == "Use ann@gmail.com"
    assert page.select_one("#suggestion input[name=email_checked]")["value"] == "ann@gmial.com"
    assert Contact.select().count() == 0  # asked, nothing stored

    # The button is a plain submit: the browser sends the whole form again with use_suggestion set.
    form = {i["name"]: i.get("value", "") for i in page.select("form input[name]") if i["name"] != "csrf_token"}
    form["use_suggestion"] = button["value"]
    fixed = public.post(f"/f/{news.public_id}", data=form, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert fixed.status_code == 200, fixed.get_data(as_text=True)[:2000]
    contact = Contact.get()
    assert contact.email == "ann@gmail.com" and contact.name == "Ann"
    assert Subscription.get(Subscription.contact == contact).status == "subscribed"


def test_sending_the_typed_address_again_keeps_it(app, public, news, zone):
    first = list_post(app, public, news, email="bo@outlok.com")
    assert "Did you mean bo@outlook.com?" in soup(first).select_one("#e-email").text
    kept = list_post(app, public, news, email="bo@outlok.com", email_checked="bo@outlok.com")
    assert kept.status_code == 200, soup(kept).select_one("#e-email")
    assert Contact.get().email == "bo@outlok.com"  # outlok.com has an A record: it can take mail


def test_disposable_and_mailless_domains_are_refused_at_the_field(app, public, news, zone):
    cases = {"temp@mailinator.com": "Please use a permanent address: disposable addresses cannot sign up.",
             "pat@nomail.example": "nomail.example does not receive email. Please check the address.",
             "pat@nowhere.example": "nowhere.example does not receive email. Please check the address."}
    for email, message in cases.items():
        response = list_post(app, public, news, email=email)
        assert response.status_code == 422, email
        page = soup(response)
        assert page.select_one("#e-email").text.strip() == message
        assert page.select_one("#f-email")["aria-invalid"] == "true"
        assert page.select_one("#suggestion") is None
    assert Contact.select().count() == 0 and Subscription.select().count() == 0


def test_a_domain_whose_dns_does_not_answer_still_signs_up(app, public, news, zone):
    started = time.monotonic()
    response = list_post(app, public, news, email="pat@slow.example")
    assert response.status_code == 200
    assert Contact.get().email == "pat@slow.example"
    assert ("slow.example.", "MX") in zone.queries
    assert time.monotonic() - started < 10  # bounded by SIGNUP_DNS_TIMEOUT, not dnspython's default


def test_a_role_account_and_a_good_address_sign_up(app, public, news, zone):
    assert list_post(app, public, news, email="info@acme.example").status_code == 200
    assert list_post(app, public, news, email="pat@acme.example").status_code == 200
    assert {c.email for c in Contact.select()} == {"info@acme.example", "pat@acme.example"}


def test_without_the_dns_check_disposable_and_typos_are_still_caught_and_no_dns_is_asked(app, public, news,
                                                                                         dns_zone):
    assert app.config["SIGNUP_CHECK_DOMAINS"] is False  # the tests' default (tests/conftest.py)
    assert list_post(app, public, news, email="temp@mailinator.com").status_code == 422
    assert "Did you mean kim@gmail.com?" in soup(list_post(app, public, news, email="kim@gmial.com")).text
    assert list_post(app, public, news, email="pat@nowhere.example").status_code == 200
    assert dns_zone.queries == []


def test_a_built_forms_page_asks_about_typos_and_refuses_disposable_addresses(app, public, news, zone):
    team = news.team
    with app.app_context():
        built = signup_forms.create(team, {"name": "Footer", "lists": [str(news.id)], "title": "Join us"})
    built = SignupForm.get_by_id(built.id)
    stamp_ids = (signup_forms.STAMP_KIND, built.id)
    typo = post(app, public, built.public_id, stamp_ids, email="lee@gmial.com", embed="1")
    assert typo.status_code == 422
    page = soup(typo)
    assert page.select_one("#e-email").text.strip() == "Did you mean lee@gmail.com?"
    assert page.select_one("input[name=embed]")["value"] == "1"  # still the popup's page
    used = post(app, public, built.public_id, stamp_ids, email="lee@gmial.com", use_suggestion="lee@gmail.com")
    assert used.status_code == 200
    assert Contact.get().email == "lee@gmail.com"
    refused = post(app, public, built.public_id, stamp_ids, email="temp@mailinator.com")
    assert refused.status_code == 422 and "permanent address" in soup(refused).select_one("#e-email").text
    assert Contact.select().count() == 1
