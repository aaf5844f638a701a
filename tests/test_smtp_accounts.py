"""SMTP accounts: presets, validation, encryption at rest, roles and isolation, limits in words,
rotation by weight, account-limit replies, and "Test connection" against a real aiosmtpd
server on loopback (STARTTLS and implicit TLS with a self-signed certificate, AUTH PLAIN/LOGIN)."""
import datetime
import random

import pytest

from app import security
from app.db import is_sqlite
from app.models import Campaign
from app.models import Contact
from app.models import Send
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import accounts
from app.senders import smtp_client
from tests.accounts_support import make_member
from tests.conftest import free_port
from tests.conftest import soup
from tests.smtp_support import PASSWORD
from tests.smtp_support import USER


_apps = []


@pytest.fixture(autouse=True)
def current(app):
    """Services read the app's config (encryption key, certificate setting): ctx() gives them an
    app context. Never hold one across requests: the test client would reuse it, and its `g`
    (flask-login's cached user) would leak from one client to the next."""
    _apps.append(app)
    yield
    _apps.remove(app)


def ctx():
    return _apps[-1].app_context()


def acme():
    return Team.get(Team.name == "Acme")


def account_form(**overrides):
    form = {"preset": "generic", "name": "Relay", "host": "smtp.example.com", "port": "587", "tls_mode": "starttls",
            "username": USER, "password": PASSWORD, "per_second": "5", "per_hour": "0", "per_day": "1000",
            "max_connections": "2", "weight": "1"}
    form.update(overrides)
    return form


def encrypt(text):
    with ctx():
        return security.encrypt(text)


def decrypt(text):
    with ctx():
        return security.decrypt(text)


def make_account(team, **fields):
    values = dict(name="Relay", host="smtp.example.com", port=587, tls_mode="starttls", username=USER,
                  password=encrypt(PASSWORD), per_day=1000, max_connections=2)
    values.update(fields)
    return SmtpAccount.create(team=team, **values)


# --- A real SMTP server with TLS and AUTH on loopback ------------------------------------


@pytest.fixture
def self_signed_ok(app):
    app.config["SMTP_VALIDATE_CERTS"] = False
    yield
    app.config["SMTP_VALIDATE_CERTS"] = True


def transcript_of(response):
    pre = soup(response).select_one("pre.transcript")
    assert pre is not None, response.get_data(as_text=True)[:1000]
    return pre.get_text()


# --- Pages: presets, create, validation, secrets ------------------------------------------

def test_accounts_page_is_empty_with_a_way_forward(admin, web):
    page = soup(web.get("/sending/accounts"))
    assert page.select_one("#accounts-empty")
    links = {a["href"] for a in page.select("#accounts-empty a")}
    assert "/sending/accounts/new?preset=icloud" in links
    assert page.select_one("nav.tabs a[aria-current=page]").get_text() == "SMTP accounts"


def test_new_account_offers_presets_and_icloud_prefills_the_form(admin, web):
    choices = soup(web.get("/sending/accounts/new"))
    assert {a.get_text() for a in choices.select("ul.presets a")} == {"iCloud Mail", "Another provider"}
    form = soup(web.get("/sending/accounts/new?preset=icloud"))
    assert form.select_one("#f-host")["value"] == "smtp.mail.me.com"
    assert form.select_one("#f-port")["value"] == "587"
    assert form.select_one("#f-tls_mode option[selected]")["value"] == "starttls"
    assert form.select_one("#f-per_day")["value"] == "1000"
    assert form.select_one("#f-max_connections")["value"] == "2"
    assert "app-specific password" in form.select_one(".preset-note").get_text()
    assert form.select_one("label[for=f-password]").get_text() == "App-specific password"
    generic = soup(web.get("/sending/accounts/new?preset=generic"))
    assert generic.select_one("#f-host")["value"] == ""


def test_create_stores_the_password_encrypted_and_never_shows_it(app, admin, web):
    response = web.post("/sending/accounts/new", account_form(name="Main relay"))
    assert response.status_code == 302
    account = SmtpAccount.get(SmtpAccount.name == "Main relay")
    assert account.team_id == acme().id
    assert PASSWORD not in account.password and account.password
    assert decrypt(account.password) == PASSWORD
    # The raw database file never holds the plaintext either.
    from app.db import db
    row = db.execute_sql(f"SELECT * FROM smtp_account WHERE id = {db.param}", (account.id,)).fetchone()
    assert not any(PASSWORD in str(value) for value in row)
    listing = web.get("/sending/accounts")
    assert PASSWORD not in listing.get_data(as_text=True)
    card = soup(listing).select_one(f"#account-{account.id}")
    assert card.select_one(".limits").get_text() == "up to 5 messages a second, 1,000 messages a day, 2 connections at a time"
    assert "Never tested" in card.select_one(".last-test").get_text()
    edit = web.get(f"/sending/accounts/{account.id}/edit")
    assert PASSWORD not in edit.get_data(as_text=True)
    assert not soup(edit).select_one("#f-password").get("value")


def test_edit_with_an_empty_password_keeps_the_stored_one(admin, web):
    account = make_account(acme())
    stored = account.password
    response = web.post(f"/sending/accounts/{account.id}/edit", account_form(password="", name="Renamed", weight="3"))
    assert response.status_code == 302
    account = SmtpAccount.get_by_id(account.id)
    assert (account.name, account.weight, account.password) == ("Renamed", 3, stored)
    web.post(f"/sending/accounts/{account.id}/edit", account_form(password="a new one"))
    assert decrypt(SmtpAccount.get_by_id(account.id).password) == "a new one"


def test_no_tls_is_refused_for_a_remote_host_and_allowed_on_loopback(admin, web):
    response = web.post("/sending/accounts/new", account_form(tls_mode="none"), htmx=True)
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#account-form")  # the fragment, not the whole page
    assert not page.select_one("main")
    assert "only allowed for a server on this machine" in page.select_one("#e-tls_mode").get_text()
    assert page.select_one("#f-tls_mode")["aria-invalid"] == "true"
    assert SmtpAccount.select().count() == 0
    # A host name that merely starts with 127. is not loopback.
    response = web.post("/sending/accounts/new", account_form(tls_mode="none", host="127.evil.example"))
    assert response.status_code == 422
    response = web.post("/sending/accounts/new", account_form(tls_mode="none", host="127.0.0.1", port="2525"))
    assert response.status_code == 302
    assert SmtpAccount.get().tls_mode == "none"


def test_hosts_on_this_machine_or_a_private_network_need_the_instance_setting(app, admin, web):
    """Off (the default outside the test suite), nobody may point an account there, not even the instance
    administrator: the engine and "Test connection" would refuse to connect anyway (tests/test_host_guard.py)."""
    app.config["MAIL_ALLOW_PRIVATE"] = False
    other_team = Team.create(name="Tenant")
    user, tenant_admin = make_member(app, other_team, "admin", email="tenant@example.com")
    from app.models import User
    User.update(current_team_id=other_team.id).where(User.id == user.id).execute()
    for client in (tenant_admin, web):
        for host in ("127.0.0.1", "localhost", "10.0.0.5", "192.168.1.1", "169.254.169.254", "::1"):
            response = client.post("/sending/accounts/new", account_form(host=host))
            assert response.status_code == 422, host
            assert "Private mail servers" in soup(response).select_one("#e-host").get_text()
    assert tenant_admin.post("/sending/accounts/new", account_form(host="smtp.example.com")).status_code == 302
    # Once the instance administrator allows private servers, the team may use one.
    from app import settings as instance_settings
    with ctx():
        instance_settings.save_settings({"private_mail_hosts": True})
    response = tenant_admin.post("/sending/accounts/new", account_form(host="127.0.0.1", port="2525",
                                                                         name="Local relay"))
    assert response.status_code == 302
    assert SmtpAccount.get(SmtpAccount.name == "Local relay").host == "127.0.0.1"


@pytest.mark.parametrize("field, value, message", [
    ("per_day", "-5", "Messages per day: enter 0 or more."),
    ("per_hour", "lots", "Messages per hour: enter a whole number (0 means no limit)."),
    ("per_second", "1.5", "Messages per second: enter a whole number (0 means no limit)."),
    ("weight", "0", "Weight: enter 1 or more."),
    ("max_connections", "0", "Connections at a time: enter 1 or more."),
    ("port", "70000", "Enter a port number between 1 and 65535 (587 for STARTTLS, 465 for implicit TLS)."),
    ("host", "smtp://smtp.example.com", "Enter only the host name"),
    ("host", "smtp.example.com:587", "Enter only the host name"),
    ("host", "smtp example.com", "not a valid host name"),
    ("name", "", "Give the account a name"),
])
def test_each_bad_field_gets_its_own_message(admin, web, field, value, message):
    response = web.post("/sending/accounts/new", account_form(**{field: value}))
    assert response.status_code == 422
    page = soup(response)
    assert message in page.select_one(f"#e-{field}").get_text()
    assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    if field != "host":
        assert page.select_one("#f-host")["value"] == "smtp.example.com"  # the rest of the form is kept
    assert not page.select_one("#f-password").get("value")  # never echoed, even after an error
    assert SmtpAccount.select().count() == 0


def test_a_login_without_a_password_is_refused_on_create(admin, web):
    response = web.post("/sending/accounts/new", account_form(password="", preset="icloud",
                                                               host="smtp.mail.me.com"))
    assert response.status_code == 422
    assert "app-specific password" in soup(response).select_one("#e-password").get_text()


def test_icloud_above_its_daily_cap_is_saved_with_a_warning(admin, web):
    response = web.post("/sending/accounts/new", account_form(preset="icloud", host="smtp.mail.me.com",
                                                               per_day="1500"), follow_redirects=True)
    assert SmtpAccount.get().per_day == 1500
    warnings = [p.get_text() for p in soup(response).select(".flash-warning")]
    assert any("about 1,000 messages a day" in w for w in warnings)


def test_pause_resume_and_delete(admin, web):
    account = make_account(acme())
    response = web.post(f"/sending/accounts/{account.id}/pause", htmx=True)
    card = soup(response).select_one(f"#account-{account.id}")
    assert card.select_one(".badge").get_text() == "Paused"
    assert card.select_one(".paused-reason").get_text().startswith("Paused by hand.")
    assert accounts.active_accounts(acme().id) == []
    response = web.post(f"/sending/accounts/{account.id}/resume")
    assert response.status_code == 302
    assert [a.id for a in accounts.active_accounts(acme().id)] == [account.id]
    page = soup(web.get("/sending/accounts"))
    delete_form = page.select_one(f"#account-{account.id} form[action$='/delete']")
    assert "Delete the SMTP account" in delete_form["hx-confirm"]
    response = web.post(f"/sending/accounts/{account.id}/delete", htmx=True)
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    assert SmtpAccount.get_or_none(SmtpAccount.id == account.id) is None


def test_a_timed_pause_lifts_itself(app, admin):
    team = acme()
    account = make_account(team)
    other = make_account(team, name="Second")
    accounts.pause_account(account.id, "iCloud daily limit reached", until=utcnow() + datetime.timedelta(hours=3))
    accounts.pause_account(other.id, "Was over its limit", until=utcnow() - datetime.timedelta(minutes=1))
    assert [a.id for a in accounts.active_accounts(team.id)] == [other.id]
    accounts.resume_account(account.id)
    assert {a.id for a in accounts.active_accounts(team.id)} == {account.id, other.id}


# --- Roles and isolation ----------------------------------------------------------------

@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_see_or_change_accounts(app, admin, role):
    team = acme()
    account = make_account(team)
    _, member = make_member(app, team, role)
    assert member.get("/sending/accounts").status_code == 403
    assert member.get("/sending/accounts/new?preset=icloud").status_code == 403
    assert member.post("/sending/accounts/new", account_form()).status_code == 403
    for action in ("edit", "pause", "resume", "delete", "test"):
        assert member.post(f"/sending/accounts/{account.id}/{action}", account_form()).status_code == 403
    assert SmtpAccount.select().count() == 1 and SmtpAccount.get().status == "active"


def test_another_teams_account_is_not_found(app, admin, web):
    other_team = Team.create(name="Other")
    theirs = make_account(other_team, name="Theirs")
    assert web.get(f"/sending/accounts/{theirs.id}/edit").status_code == 404
    for action in ("edit", "pause", "resume", "delete", "test"):
        assert web.post(f"/sending/accounts/{theirs.id}/{action}", account_form()).status_code == 404
    assert SmtpAccount.get_by_id(theirs.id).name == "Theirs"
    assert "Theirs" not in web.get("/sending/accounts").get_data(as_text=True)
    assert accounts.active_accounts(acme().id) == []


# --- Test connection against a real server ---------------------------------------------------

def test_starttls_and_login_succeed_with_the_servers_exact_replies(app, admin, web, smtp_server, self_signed_ok):
    port = smtp_server("starttls")
    account = make_account(acme(), host="127.0.0.1", port=port, tls_mode="starttls")
    response = web.post(f"/sending/accounts/{account.id}/test", htmx=True)
    assert response.status_code == 200
    page = soup(response)
    assert not page.select_one("main")
    assert page.select_one(".flash-success").get_text().startswith("Connection works.")
    lines = transcript_of(response).splitlines()
    assert any(line.startswith("S: 220 mx.test") for line in lines)  # the banner, verbatim
    assert "C: STARTTLS" in lines
    assert "S: 220 Ready to start TLS" in lines
    assert any(line.startswith("   TLS established: TLS") and "NOT verified" in line for line in lines)
    assert any(line.startswith("S: 250-") for line in lines)  # multi-line EHLO reply kept as sent
    assert "S: 235 2.7.0 Authentication successful" in lines
    assert "S: 221 Bye" in lines
    assert PASSWORD not in response.get_data(as_text=True)
    stored = accounts.last_test(SmtpAccount.get_by_id(account.id))
    assert stored == {"ok": True, "summary": "Connected and logged in: 235 2.7.0 Authentication successful"}
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id} .last-test")
    assert card.select_one(".badge").get_text() == "Passed"


def test_wrong_password_shows_the_servers_535_reply(app, admin, web, smtp_server, self_signed_ok):
    port = smtp_server("starttls")
    account = make_account(acme(), host="127.0.0.1", port=port, password=encrypt("wrong"),
                           preset="icloud")
    response = web.post(f"/sending/accounts/{account.id}/test", htmx=True)
    error = soup(response).select_one(".flash-error").get_text()
    assert "Authentication failed: the server refused the user name or password." in error
    assert "Its reply: 535 5.7.8 Authentication credentials invalid" in error
    assert "app-specific password" in error  # the iCloud hint
    assert "S: 535 5.7.8 Authentication credentials invalid" in transcript_of(response).splitlines()
    stored = accounts.last_test(SmtpAccount.get_by_id(account.id))
    assert stored["ok"] is False and "535 5.7.8" in stored["summary"]


def test_implicit_tls_works_too(app, admin, web, smtp_server, self_signed_ok):
    port = smtp_server("tls")
    account = make_account(acme(), host="127.0.0.1", port=port, tls_mode="tls")
    response = web.post(f"/sending/accounts/{account.id}/test", htmx=True)
    lines = transcript_of(response).splitlines()
    assert "C: STARTTLS" not in lines
    assert lines[2].startswith("   TLS established")
    assert "S: 235 2.7.0 Authentication successful" in lines


def test_a_self_signed_certificate_is_a_tls_failure_when_certificates_are_checked(app, admin, web, smtp_server):
    assert app.config["SMTP_VALIDATE_CERTS"] is True
    port = smtp_server("starttls")
    account = make_account(acme(), host="127.0.0.1", port=port)
    response = web.post(f"/sending/accounts/{account.id}/test", htmx=True)
    error = soup(response).select_one(".flash-error").get_text()
    assert "TLS failure: the server's certificate could not be verified" in error
    assert "self-signed" in error


def test_nothing_listening_is_connection_refused_in_words(app, admin, web):
    account = make_account(acme(), host="127.0.0.1", port=free_port())
    response = web.post(f"/sending/accounts/{account.id}/test")  # the plain (non-HTMX) variant: a full page
    page = soup(response)
    assert page.select_one("main h1").get_text() == "Test of “Relay”"
    assert f"Connection refused: nothing is listening on 127.0.0.1 port {account.port}" in \
        page.select_one(".flash-error").get_text()


def test_a_host_that_does_not_exist_is_a_dns_failure_in_words(app, admin):
    account = make_account(acme(), host="no-such-host.invalid")
    with ctx():
        ok, transcript = smtp_client.test_connection(account, timeout=5)
    assert not ok
    assert transcript.splitlines()[-1].startswith(
        "Error: DNS lookup failed: the host name “no-such-host.invalid” could not be found")


def test_starttls_on_an_implicit_tls_port_is_explained(app, admin, smtp_server, self_signed_ok):
    port = smtp_server("tls")
    account = make_account(acme(), host="127.0.0.1", port=port, tls_mode="starttls")
    with ctx():
        ok, transcript = smtp_client.test_connection(account, timeout=2)
    assert not ok
    assert "implicit TLS" in transcript.splitlines()[-1]


def test_smtp_options_decrypt_the_password_and_follow_the_certificate_setting(app, admin):
    account = make_account(acme(), tls_mode="tls", port=465)
    with ctx():
        options = smtp_client.smtp_options(account)
    assert options["password"] == PASSWORD and options["username"] == USER
    assert (options["use_tls"], options["start_tls"], options["validate_certs"]) == (True, False, True)
    assert options["hostname"] == "smtp.example.com" and options["port"] == 465
    assert options["local_hostname"] == "loft.test"  # from BASE_URL, not a slow getfqdn()
    anonymous = make_account(acme(), username="", password="", tls_mode="none", host="127.0.0.1")
    app.config["SMTP_VALIDATE_CERTS"] = False
    try:
        with ctx():
            assert smtp_client.smtp_options(account)["validate_certs"] is False
            assert "password" not in smtp_client.smtp_options(anonymous)
            assert smtp_client.smtp_options(anonymous)["start_tls"] is False
    finally:
        app.config["SMTP_VALIDATE_CERTS"] = True


# --- Limits, rotation and account-limit replies --------------------------------------------------

def test_limits_in_plain_words():
    words = accounts.limits_in_words
    assert words({"per_day": 1000, "max_connections": 2}) == "up to 1,000 messages a day, 2 connections at a time"
    assert words({"per_second": 1, "per_hour": 20000, "max_connections": 1}) == \
        "up to 1 message a second, 20,000 messages an hour, 1 connection at a time"
    assert words({"max_connections": 4}) == "no rate limit, 4 connections at a time"


@pytest.mark.parametrize("code, message", [
    (550, "5.7.1 Message rejected: You have exceeded your daily sending limit"),
    (550, "5.4.5 Daily SMTP relay limit exceeded for user. For more information, go to https://support.google.com"),
    (450, "4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error."),
    (550, "5.4.5 Daily user sending limit exceeded."),
    (554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message"),
    (454, "Throttling failure: Daily message quota exceeded."),
    (454, "Throttling failure: Maximum sending rate exceeded."),
    (550, "5.4.6 Unusual sending activity detected. Please try after sometime."),
])
def test_account_limit_replies_are_recognised(code, message):
    assert accounts.is_account_limit_reply(code, message)


@pytest.mark.parametrize("code, message", [
    (550, "5.1.1 The email account that you tried to reach does not exist."),
    (552, "5.2.2 The email account that you tried to reach is over quota."),
    (452, "4.2.2 The recipient's mailbox is full and can't accept messages now."),
    (421, "4.7.0 Try again later, closing connection."),
    (550, "5.7.1 Message rejected as spam."),
])
def test_recipient_problems_are_not_account_limits(code, message):
    assert not accounts.is_account_limit_reply(code, message)


def test_an_account_limit_reply_pauses_the_account_until_it_may_send_again(app, admin):
    team = acme()
    icloud, relay = make_account(team, host="smtp.mail.me.com"), make_account(team, name="SES")
    now = utcnow()
    until = accounts.pause_for_limit_reply(icloud, 550, "5.7.1 You have exceeded your daily sending limit", now=now)
    assert until == now + datetime.timedelta(hours=24)
    until = accounts.pause_for_limit_reply(relay, 454, "Throttling failure: Maximum sending rate exceeded.", now=now)
    assert until == now + datetime.timedelta(minutes=15)
    icloud = SmtpAccount.get_by_id(icloud.id)
    assert icloud.status == "paused"
    assert icloud.paused_reason.startswith(
        "smtp.mail.me.com refused more mail from this account: 550 5.7.1 You have exceeded your daily sending limit")
    assert accounts.active_accounts(team.id) == []


def _fake(id, weight=1, **caps):
    values = dict(per_second=0, per_hour=0, per_day=0, max_connections=4)
    values.update(caps)
    return SmtpAccount(id=id, weight=weight, **values)


def test_rotation_shares_messages_by_weight_and_interleaves_them():
    a, b = _fake(1, weight=3), _fake(2, weight=1)
    rotation = accounts.Rotation([a, b])
    picks = [rotation.pick().id for _ in range(400)]
    assert picks.count(1) == 300 and picks.count(2) == 100
    assert picks[:8] == [1, 1, 2, 1, 1, 1, 2, 1]


def test_rotation_skips_accounts_at_their_limits():
    a, b = _fake(1, weight=5, per_day=1000), _fake(2, weight=1, per_hour=10, max_connections=2)
    rotation = accounts.Rotation([a, b])
    assert {rotation.pick({1: {"day": 1000}}).id for _ in range(10)} == {2}
    assert rotation.pick({1: {"day": 1000}, 2: {"hour": 10}}) is None
    assert rotation.pick({1: {"day": 1000}, 2: {"connections": 2}}) is None
    assert rotation.pick({2: {"second": 99}}).id == 1  # no per-second cap on b: only connections count


def test_weighted_random_pick_respects_weights_and_caps():
    a, b = _fake(1, weight=4), _fake(2, weight=1, per_second=2)
    rng = random.Random(7)
    picks = [accounts.pick_account([a, b], {}, rng).id for _ in range(5000)]
    assert 0.75 < picks.count(1) / 5000 < 0.85
    assert accounts.pick_account([a, b], {1: {"connections": 4}}, rng).id == 2
    assert accounts.pick_account([a, b], {1: {"connections": 4}, 2: {"second": 2}}, rng) is None


def test_sent_counts_per_account_over_the_last_hour_and_day(app, admin):
    team = acme()
    first, second = make_account(team), make_account(team, name="Second")
    campaign = Campaign.create(team=team, name="News")
    now = utcnow()
    for i, (account, age) in enumerate([(first, 10), (first, 90), (first, 60 * 30), (second, 5)]):
        contact = Contact.create(team=team, email=f"c{i}@example.org", domain="example.org")
        Send.create(campaign=campaign, contact=contact, email=contact.email, status="sent", smtp_account=account,
                    sent_at=now - datetime.timedelta(minutes=age))
    counts = accounts.sent_counts([first.id, second.id], now=now)
    assert counts == {first.id: {"hour": 1, "day": 2}, second.id: {"hour": 1, "day": 1}}
    # The count is an index range scan (migration 0011), not a walk over the whole ledger.
    from app.db import db
    sql, params = accounts._sent_counts_query([first.id, second.id], now).sql()
    if is_sqlite():
        plan = db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    else:
        with db.atomic():  # PostgreSQL scans a table this small whole unless told the index is cheaper
            db.execute_sql("SET LOCAL enable_seqscan = off")
            plan = db.execute_sql("EXPLAIN " + sql, params).fetchall()
    assert "send_smtp_account_id_sent_at" in " ".join(str(row) for row in plan)
