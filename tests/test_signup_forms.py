"""The sign-up form builder: forms with chosen lists, fields, wording and colours; their hosted page,
snippet and popup script; what they count; private lists kept out. Real HTTP through the test client,
real confirmation mail through the catcher."""
import json
import time

import pytest
from bs4 import BeautifulSoup

from app import tokens
from app.catcher.services import parse
from app.consent import signup_forms
from app.db import db
from app.models import BrandKit
from app.models import CaughtMessage
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import FormSignup
from app.models import MailingList
from app.models import SenderDomain
from app.models import SignupForm
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Team
from app.models import utcnow
from app.senders import domains
from tests.accounts_support import make_member
from tests.conftest import link_in
from tests.conftest import soup


@pytest.fixture
def team(app, admin, catcher):
    """Acme, able to send its confirmation emails (a verified sender and its own SMTP account)."""
    team = Team.get(Team.name == "Acme")
    team.default_from_name, team.default_from_email = "Acme News", "news@acme.example"
    team.save()
    row = SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
    with app.app_context():
        domains.dkim_record(row)
    SmtpAccount.create(team=team, name="Acme relay", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                       tls_mode="none")
    return team


@pytest.fixture
def lists(team):
    news = MailingList.create(team=team, name="News", visibility="public", double_opt_in=True)
    offers = MailingList.create(team=team, name="Offers", visibility="public", double_opt_in=False)
    beta = MailingList.create(team=team, name="Beta testers", visibility="private")
    return news, offers, beta


@pytest.fixture
def company(team):
    return CustomField.create(team=team, key="company", label="Company", type="text")


@pytest.fixture
def visitor(app):
    """Someone on the internet: no session, no CSRF token."""
    return app.test_client()


def builder_form(lists, **extra):
    data = {"name": "Website footer", "lists": [str(lst.id) for lst in lists], "ask-name": "1",
            "label-name": "Your first name", "ask-company": "1", "label-company": "Company", "required-company": "1",
            "title": "Get our news", "intro": "Once a month, no spam.", "button_label": "Count me in",
            "success_message": "Thanks! Watch your inbox.", "primary_color": "#0f766e", "popup_delay": "5"}
    data.update(extra)
    return data


@pytest.fixture
def built(web, lists, company):
    news, offers, _ = lists
    response = web.post("/contacts/forms/new", builder_form([news, offers]))
    assert response.status_code == 302, response.get_data(as_text=True)
    return SignupForm.get(SignupForm.name == "Website footer")


def stamp(app, signup_form, age=5):
    with app.app_context():
        return signup_forms.form_stamp(signup_form, at=time.time() - age)


def submit(app, client, signup_form, email="pat@example.com", age=5, ip="198.51.100.7", **fields):
    data = {"email": email, "website": "", "field-company": "Initech", "name": "Pat"}
    if age is not None:
        data["ts"] = stamp(app, signup_form, age)
    data.update(fields)
    return client.post(f"/f/{signup_form.public_id}", data=data, environ_base={"REMOTE_ADDR": ip})


# --- Building -------------------------------------------------------------------------

def test_a_built_form_is_listed_with_its_share_options(app, web, built, lists):
    news, offers, _ = lists
    assert built.list_ids == [news.id, offers.id]
    assert built.fields == [{"key": "name", "label": "Your first name", "required": False},
                            {"key": "company", "label": "Company", "required": True}]
    assert built.colors == {"primary": "#0f766e"} and built.popup_delay == 5
    assert len(built.public_id) >= 40
    page = soup(web.get(f"/contacts/forms/{built.id}"))
    assert page.select_one("#share-url")["value"] == f"http://loft.test/f/{built.public_id}"
    snippet = BeautifulSoup(page.select_one("#share-snippet").get_text(), "html.parser")
    assert snippet.select_one("form")["action"] == f"http://loft.test/f/{built.public_id}"
    assert snippet.select_one("input[name=field-company][required]") is not None
    assert snippet.select_one("input[name=website][tabindex='-1']") is not None
    assert "Beta testers" not in page.select_one("#share").get_text()
    popup = page.select_one("#share-popup").get_text()
    assert f'src="http://loft.test/f/{built.public_id}/popup.js"' in popup
    link = BeautifulSoup(popup, "html.parser").select_one("a[data-loft-form]")
    assert (link["data-loft-form"], link["href"]) == (built.public_id, f"http://loft.test/f/{built.public_id}")
    assert page.select_one("#f-background_color")["placeholder"] == "#f6f6f7"  # the brand kit's, when empty
    listing = soup(web.get("/contacts/forms"))
    row = listing.select_one(f"#built-{built.id}")
    assert row.select_one("a").get_text() == "Website footer" and row.select_one(".signups").get_text() == "0 signed up, 0 confirmed"


def test_the_builder_refuses_a_private_list_with_a_clear_message(web, lists, company):
    news, _, beta = lists
    response = web.post("/contacts/forms/new", builder_form([news, beta]))
    assert response.status_code == 422
    error = soup(response).select_one("#e-lists").get_text()
    assert "“Beta testers” is a private list" in error and "make the list public" in error
    assert soup(response).select_one("#f-name")["value"] == "Website footer"  # the input kept
    assert SignupForm.select().count() == 0


def test_the_builder_refuses_another_teams_list_bad_colours_and_no_list(app, web, lists, company):
    other = Team.create(name="Other")
    theirs = MailingList.create(team=other, name="Theirs", visibility="public")
    response = web.post("/contacts/forms/new", builder_form([theirs], primary_color="blue;}", popup_delay="-3"))
    assert response.status_code == 422
    page = soup(response)
    assert "this team" in page.select_one("#e-lists").get_text()
    assert "#1d4ed8" in page.select_one("#e-primary_color").get_text()
    assert "0 to 600" in page.select_one("#e-popup_delay").get_text()
    response = web.post("/contacts/forms/new", builder_form([], name=""))
    assert "at least one public list" in soup(response).select_one("#e-lists").get_text()
    assert soup(response).select_one("#e-name") is not None
    assert SignupForm.select().count() == 0


def test_editing_keeps_the_address_and_deleting_stops_the_page(web, built, lists, visitor):
    news, offers, _ = lists
    response = web.post(f"/contacts/forms/{built.id}", builder_form([offers], name="Footer v2"))
    assert response.status_code == 302
    saved = SignupForm.get_by_id(built.id)
    assert (saved.name, saved.list_ids, saved.public_id) == ("Footer v2", [offers.id], built.public_id)
    assert web.post(f"/contacts/forms/{built.id}/delete").status_code == 302
    assert SignupForm.get_or_none(SignupForm.id == built.id) is None
    assert visitor.get(f"/f/{built.public_id}").status_code == 404
    assert visitor.get(f"/f/{built.public_id}/popup.js").status_code == 404


def test_another_teams_form_ids_are_not_found_and_nothing_changes(app, web, lists):
    other = Team.create(name="Other")
    theirs = SignupForm.create(team=other, name="Theirs", list_ids=[], fields=[])
    assert web.get(f"/contacts/forms/{theirs.id}").status_code == 404
    assert web.post(f"/contacts/forms/{theirs.id}", builder_form([lists[0]], name="Mine now")).status_code == 404
    assert web.post(f"/contacts/forms/{theirs.id}/delete").status_code == 404
    assert SignupForm.get_by_id(theirs.id).name == "Theirs"


def test_roles_a_guest_reads_an_author_builds(app, team, built, lists, company):
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get(f"/contacts/forms/{built.id}"))
    assert page.select_one("#builder-form fieldset").has_attr("disabled")
    assert guest.post("/contacts/forms/new", builder_form(lists[:2], name="Guest's")).status_code == 403
    assert guest.post(f"/contacts/forms/{built.id}/delete").status_code == 403
    assert guest.post(f"/contacts/forms/{built.id}", builder_form(lists[:2], name="x")).status_code == 403
    _, author = make_member(app, team, "author")
    assert author.post("/contacts/forms/new", builder_form(lists[:2], name="Author's")).status_code == 302
    assert SignupForm.select().count() == 2


def test_the_live_preview_shows_the_values_being_typed(web, lists, company):
    news, offers, beta = lists
    query = builder_form([news, beta], title="Typed <b>title</b>", primary_color="#123456")
    fragment = soup(web.get("/contacts/forms/preview", query_string=query, headers={"HX-Request": "true"}))
    frame = fragment.select_one("#builder-preview iframe")
    assert frame["title"]
    page = web.get(frame["src"])
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert "form-action 'none'" in page.headers["Content-Security-Policy"]
    html = soup(page)
    assert html.select_one("h1").get_text() == "Typed <b>title</b>"  # text, not markup
    assert "Beta testers" not in page.get_data(as_text=True)  # a private list is left out of the preview too
    assert html.select_one("#f-field-company") is not None
    sheet = html.select('link[rel=stylesheet]')[-1]["href"]
    assert "--accent: #123456;" in web.get(sheet).get_data(as_text=True)
    assert SignupForm.select().count() == 0


# --- The public side -------------------------------------------------------------------

def test_signing_up_subscribes_to_each_list_by_its_rule_and_is_counted(app, web, built, lists, visitor):
    news, offers, _ = lists
    page = soup(visitor.get(f"/f/{built.public_id}"))
    assert page.select_one("h1").get_text() == "Get our news"
    assert page.select_one("label[for=f-name]").get_text(strip=True).startswith("Your first name")
    assert page.select_one("#f-field-company") is not None
    assert page.select_one("button[type=submit]").get_text() == "Count me in"
    assert "“News”, “Offers”" in page.select_one("#consent-wording").get_text()
    response = submit(app, visitor, built)
    assert response.status_code == 200
    assert "Thanks! Watch your inbox." in soup(response).select_one("#signup-done").get_text()
    assert "Set-Cookie" not in response.headers
    contact = Contact.get(Contact.email == "pat@example.com")
    assert contact.name == "Pat" and contact.attributes == {"company": "Initech"}
    assert contact.consent_source == "form:Website footer"
    subs = {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == contact)}
    assert subs == {news.id: "unconfirmed", offers.id: "subscribed"}
    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert message is not None and "News" in message.subject  # the double opt-in list asks to confirm
    assert FormSignup.select().where(FormSignup.form == built).count() == 2
    events = Event.select().where((Event.contact == contact) & (Event.type == "subscribed"))
    assert {e.data["form_id"] for e in events} == {built.id}
    # Offers is single opt-in: the contact is confirmed there while News waits for the email
    assert soup(web.get("/contacts/forms")).select_one(f"#built-{built.id} .signups").get_text() == (
        "1 signed up, 1 confirmed")
    assert soup(web.get(f"/contacts/forms/{built.id}")).select_one("#form-signups").get_text() == (
        "So far 1 signed up, 1 confirmed.")


def test_a_required_field_left_empty_is_refused_at_it_and_nothing_is_stored(app, built, visitor):
    response = submit(app, visitor, built, **{"field-company": ""})
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#e-field-company").get_text() == "Fill in “Company”."
    assert page.select_one("#f-email")["value"] == "pat@example.com"
    assert Contact.select().count() == 0 and FormSignup.select().count() == 0


def test_a_known_contacts_values_are_not_overwritten_by_a_public_form(app, team, built, visitor):
    Contact.create(team=team, email="pat@example.com", domain="example.com", name="Patricia",
                   attributes={"company": "Real Co"})
    assert submit(app, visitor, built, **{"field-company": "Hacked Inc"}).status_code == 200
    contact = Contact.get(Contact.email == "pat@example.com")
    assert contact.attributes == {"company": "Real Co"} and contact.name == "Patricia"


def test_bots_and_forged_stamps_are_turned_away(app, built, lists, visitor):
    assert submit(app, visitor, built, website="http://spam.example").status_code == 200  # neutral
    assert Contact.select().count() == 0
    with app.app_context():
        list_stamp = tokens.sign("form", lists[0].id, int(time.time()) - 5)  # a list's stamp, not this form's
    response = submit(app, visitor, built, age=None, ts=list_stamp)
    assert response.status_code == 422 and "could not be verified" in response.get_data(as_text=True)
    assert submit(app, visitor, built, age=0).status_code == 422  # quicker than a person
    assert Contact.select().count() == 0


def test_a_list_made_private_leaves_the_forms_public_output(app, built, lists, visitor):
    news, offers, _ = lists
    MailingList.update(visibility="private").where(MailingList.id == news.id).execute()
    page = visitor.get(f"/f/{built.public_id}").get_data(as_text=True)
    assert "News" not in page.replace("Get our news", "")
    assert submit(app, visitor, built).status_code == 200
    contact = Contact.get(Contact.email == "pat@example.com")
    assert [s.list_id for s in Subscription.select().where(Subscription.contact == contact)] == [offers.id]
    MailingList.update(visibility="private").where(MailingList.id == offers.id).execute()
    assert visitor.get(f"/f/{built.public_id}").status_code == 404
    assert visitor.get(f"/f/{built.public_id}/popup.js").status_code == 404


def test_the_popup_script_is_public_cacheable_and_escapes_the_forms_text(app, web, built, lists, visitor):
    web.post(f"/contacts/forms/{built.id}", builder_form(lists[:2], title="</script><script>alert(1)</script>"))
    response = visitor.get(f"/f/{built.public_id}/popup.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert "public" in response.headers["Cache-Control"] and "Set-Cookie" not in response.headers
    body = response.get_data(as_text=True)
    assert "</script>" not in body.split("var config = ", 1)[1].split(";\n", 1)[0]
    config = json.loads(body.split("var config = ", 1)[1].split(";\n", 1)[0])
    assert config == {"id": built.public_id, "url": f"http://loft.test/f/{built.public_id}?embed=1",
                      "title": "</script><script>alert(1)</script>", "delay": 5}
    assert "showModal" in body and "aria-label" in body


def test_only_the_embedded_page_may_be_framed_by_other_sites(app, built, visitor):
    plain = visitor.get(f"/f/{built.public_id}")
    assert plain.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]
    embedded = visitor.get(f"/f/{built.public_id}?embed=1")
    assert "X-Frame-Options" not in embedded.headers
    assert "frame-ancestors *" in embedded.headers["Content-Security-Policy"]
    assert soup(embedded).select_one("input[name=embed]")["value"] == "1"
    answer = submit(app, visitor, built, embed="1")
    assert "frame-ancestors *" in answer.headers["Content-Security-Policy"]


def test_the_forms_colours_go_through_the_checks(app, built, visitor):
    SignupForm.update(colors={"primary": "red;}body{display:none", "text": "#222"}).where(
        SignupForm.id == built.id).execute()
    sheet = soup(visitor.get(f"/f/{built.public_id}")).select('link[rel=stylesheet]')[-1]["href"]
    css = visitor.get(sheet).get_data(as_text=True)
    assert "display:none" not in css and "--accent: #4338ca;" in css and "--fg: #222222;" in css


def test_a_lists_own_form_keeps_working_next_to_built_forms(app, built, lists, visitor):
    news = lists[0]
    page = visitor.get(f"/f/{news.public_id}")
    assert page.status_code == 200 and "Subscribe to News" in page.get_data(as_text=True)
    assert visitor.get(f"/f/{lists[2].public_id}").status_code == 404  # a private list has no form


def test_confirming_a_double_opt_in_keeps_the_built_forms_consent_wording(app, web, built, lists, visitor):
    news, offers, _ = lists
    web.post(f"/contacts/forms/{built.id}", builder_form([news], consent_text="Yes, send me the Acme news."))
    assert submit(app, visitor, built).status_code == 200
    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    link = link_in(parse(message)["text"], "/confirm/").split("http://loft.test", 1)[1]
    assert visitor.post(link).status_code == 200
    contact = Contact.get(Contact.email == "pat@example.com")
    assert Subscription.get(Subscription.contact == contact).status == "subscribed"
    assert (contact.consent_source, contact.consent_text) == ("form:Website footer", "Yes, send me the Acme news.")
    confirmed = Event.get((Event.contact == contact) & (Event.type == "confirmed"))
    assert confirmed.data["form_id"] == built.id


def test_one_email_and_one_click_confirm_every_double_opt_in_list_of_a_sign_up(app, web, team, lists, visitor):
    news, _, _ = lists
    events_list = MailingList.create(team=team, name="Events", visibility="public", double_opt_in=True)
    web.post("/contacts/forms/new", builder_form([news, events_list], name="Two lists", consent_text="Both, please."))
    signup_form = SignupForm.get(SignupForm.name == "Two lists")
    assert submit(app, visitor, signup_form).status_code == 200
    assert CaughtMessage.select().count() == 1  # one email for the sign-up, not one per list
    message = parse(CaughtMessage.get())
    assert dict(message["headers"])["Subject"] == "Confirm your subscriptions to “News” and “Events”"
    assert "“News” and “Events”" in message["text"]
    link = link_in(message["text"], "/confirm/").split("http://loft.test", 1)[1]
    page = soup(visitor.get(link))
    assert "“News” and “Events”" in page.select_one("h1 + p").get_text()
    assert page.select_one("#confirm-wording").get_text() == "Both, please."
    done = visitor.post(link)
    assert "“News” and “Events”" in soup(done).select_one("[role=status]").get_text()
    contact = Contact.get(Contact.email == "pat@example.com")
    assert {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == contact)} == {
        news.id: "subscribed", events_list.id: "subscribed"}
    confirmed = Event.select().where((Event.contact == contact) & (Event.type == "confirmed"))
    assert sorted(e.data["list_id"] for e in confirmed) == sorted([news.id, events_list.id])


def test_custom_fields_of_any_name_and_type_are_asked_without_touching_the_bot_trap(app, web, team, lists, visitor):
    offers = lists[1]
    CustomField.create(team=team, key="website", label="Your website", type="text")
    CustomField.create(team=team, key="employees", label="Employees", type="number")
    CustomField.create(team=team, key="agrees_terms", label="I accept the terms", type="boolean")
    web.post("/contacts/forms/new", {"name": "Trade", "lists": [str(offers.id)], "ask-website": "1",
                                     "ask-employees": "1", "ask-agrees_terms": "1", "required-agrees_terms": "1"})
    signup_form = SignupForm.get(SignupForm.name == "Trade")
    page = soup(visitor.get(f"/f/{signup_form.public_id}"))
    assert page.select_one("#f-field-website")["name"] == "field-website"
    assert page.select_one("#f-field-employees")["type"] == "number"
    assert page.select_one("#f-field-agrees_terms")["type"] == "checkbox"
    refused = submit(app, visitor, signup_form, **{"field-employees": "many"})
    assert refused.status_code == 422
    assert "Enter a number" in soup(refused).select_one("#e-field-employees").get_text()
    assert soup(refused).select_one("#e-field-agrees_terms").get_text() == "Tick “I accept the terms” to sign up."
    assert submit(app, visitor, signup_form, **{"field-website": "https://pat.example", "field-employees": "12",
                                                "field-agrees_terms": "yes"}).status_code == 200
    contact = Contact.get(Contact.email == "pat@example.com")  # the person's website is not the bot trap
    assert contact.attributes == {"website": "https://pat.example", "employees": 12, "agrees_terms": True}


def test_the_builder_pages_sit_under_sign_up_forms_in_the_navigation(web, built):
    page = soup(web.get(f"/contacts/forms/{built.id}"))
    assert page.select_one("nav.tabs a[aria-current=page]").get_text() == "Sign-up forms"
    # The main navigation's section too (app/navigation.py: the consent.form prefix), and nothing else.
    assert [a.get_text(" ", strip=True) for a in page.select("a[aria-current=page]")] == ["Sign-up forms"] * 2


# --- Counting sign-ups and the confirmation allowance ----------------------------------------

def test_a_sign_up_to_several_lists_is_one_email_of_the_daily_allowance(app, web, team, visitor):
    three = [MailingList.create(team=team, name=name, visibility="public", double_opt_in=True)
             for name in ("News", "Events", "Offers")]
    web.post("/contacts/forms/new", builder_form(three, name="Three lists"))
    signup_form = SignupForm.get(SignupForm.name == "Three lists")
    for attempt in range(3):
        assert submit(app, visitor, signup_form, ip=f"198.51.100.{attempt + 10}").status_code == 200
        assert CaughtMessage.select().count() == attempt + 1  # each sign-up sends its one email
    subject = dict(parse(CaughtMessage.select().order_by(CaughtMessage.id.desc()).get())["headers"])["Subject"]
    assert subject == "Confirm your subscriptions to “News”, “Events” and “Offers”"
    assert submit(app, visitor, signup_form, ip="198.51.100.20").status_code == 200
    assert CaughtMessage.select().count() == 3  # the allowance (3 a day per address) still holds


def test_the_forms_list_counts_people_signed_up_and_confirmed_in_one_query(app, web, team, lists, visitor,
                                                                            monkeypatch):
    news, offers, _ = lists
    web.post("/contacts/forms/new", builder_form([news], name="Newsletter box"))
    web.post("/contacts/forms/new", builder_form([offers], name="Deals box"))
    web.post("/contacts/forms/new", builder_form([news, offers], name="Quiet box"))
    newsletter, deals, quiet = (SignupForm.get(SignupForm.name == name)
                                for name in ("Newsletter box", "Deals box", "Quiet box"))
    for number, email in enumerate(("ann@example.com", "bob@example.com", "cy@example.com")):
        submit(app, visitor, newsletter, email=email, ip=f"198.51.100.{number + 30}")
    submit(app, visitor, deals, email="dee@example.com", ip="198.51.100.40")
    link = link_in(parse(CaughtMessage.select().order_by(CaughtMessage.id).get())["text"], "/confirm/")
    assert visitor.post(link.split("http://loft.test", 1)[1]).status_code == 200  # Ann confirms News

    listing = soup(web.get("/contacts/forms"))
    assert listing.select_one(f"#built-{newsletter.id} .signups").get_text() == "3 signed up, 1 confirmed"
    assert listing.select_one(f"#built-{deals.id} .signups").get_text() == "1 signed up, 1 confirmed"
    assert listing.select_one(f"#built-{quiet.id} .signups").get_text() == "0 signed up, 0 confirmed"
    assert soup(web.get(f"/contacts/forms/{newsletter.id}")).select_one("#form-signups").get_text() == (
        "So far 3 signed up, 1 confirmed.")

    statements = []
    real_execute = db.obj.execute_sql

    def counting_execute(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return real_execute(sql, params, *args, **kwargs)

    monkeypatch.setattr(db.obj, "execute_sql", counting_execute)
    with app.app_context():
        built_forms = signup_forms.forms_of(team)
    assert [(f.name, f.signups, f.confirmed) for f in built_forms] == [
        ("Quiet box", 0, 0), ("Deals box", 1, 1), ("Newsletter box", 3, 1)]
    assert len([sql for sql in statements if "form_signup" in sql]) == 1  # not one per form


# --- The confirmation email in the team's brand ---------------------------------------------

HOSTILE_FOOTER = 'Acme Ltd, 1 Main St\n</p><script>alert(1)</script><img src=x onerror="alert(2)"> & "Co"'


def test_the_confirmation_email_wears_the_teams_brand_with_every_value_escaped(app, team, built, visitor):
    BrandKit.create(team=team, primary_color="#0F766E", background_color="#fef3c7", text_color="#1c1917",
                    font="georgia", logo_url="/m/abcdefgh12.png", footer_text=HOSTILE_FOOTER)
    assert submit(app, visitor, built).status_code == 200
    message = parse(CaughtMessage.get())
    page = BeautifulSoup(message["html"], "html.parser")
    button = page.select_one("a.confirm-button")
    assert "background:#0f766e" in button["style"] and "color:#ffffff" in button["style"]
    assert "background:#fef3c7" in page.body["style"] and "Georgia" in page.body["style"]
    logo = page.select_one("img")
    assert (logo["src"], logo["alt"]) == ("http://loft.test/m/abcdefgh12.png", "Acme")
    footer = page.select_one(".brand-footer")
    assert footer.get_text() == HOSTILE_FOOTER.replace("\n", "")  # shown as text, line break as <br>
    assert len(footer.select("br")) == 1
    assert page.select("script") == [] and len(page.select("img")) == 1  # nothing of the footer became markup
    assert "Sent by Loft" not in message["html"]  # the team sends it
    # The text part keeps its words: no colour, no footer.
    assert message["text"].startswith("Please confirm that you want to receive “News” from Acme.")
    assert "#0f766e" not in message["text"] and "Acme Ltd" not in message["text"]


def test_a_team_without_a_brand_kit_sends_the_confirmation_in_the_default_look(app, team, built, visitor):
    assert submit(app, visitor, built).status_code == 200
    page = BeautifulSoup(parse(CaughtMessage.get())["html"], "html.parser")
    assert "background:#4338ca" in page.select_one("a.confirm-button")["style"]
    assert page.select_one(".brand-footer") is None and page.select("img") == []
