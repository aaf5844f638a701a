"""Accounts: first admin, sign-in/out, throttling, safe next, reset by email, TOTP, sessions, CSRF."""
import datetime

import pyotp
import pytest

from app import security
from app.auth import services
from app.models import LoginFailure
from app.models import Membership
from app.models import PasswordReset
from app.models import User
from tests.accounts_support import _enable_2fa
from tests.accounts_support import _reset_link
from tests.conftest import ADMIN_EMAIL
from tests.conftest import ADMIN_PASSWORD
from tests.conftest import soup


def test_fresh_install_sends_the_first_visitor_to_setup(client):
    assert client.get("/").headers["Location"] == "/setup"
    assert client.get("/login").headers["Location"] == "/setup"


def test_setup_creates_admin_and_first_team_and_signs_in(web, admin):
    assert admin.is_instance_admin
    membership = Membership.get(Membership.user == admin)
    assert membership.role == "admin" and membership.team.name == "Acme"
    page = web.get("/dashboard")
    assert page.status_code == 200
    assert soup(page).select_one("h1").text == "Acme"


def test_setup_cannot_be_replayed_once_an_account_exists(app, web, admin):
    web.logout()
    response = web.post("/setup", {"email": "evil@example.com", "password": "x" * 12})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert User.select().count() == 1


def test_setup_shows_field_errors_with_422(web):
    response = web.post("/setup", {"email": "not-an-email", "password": "longenough1"})
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#f-email")["aria-invalid"] == "true"
    assert "not valid" in page.select_one("#e-email").text
    short = web.post("/setup", {"email": "a@example.com", "password": "short"})
    assert short.status_code == 422
    assert "10 characters" in soup(short).select_one("#e-password").text
    assert User.select().count() == 0


def test_cli_create_admin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--email", "Ops@Example.com", "--password", "a-long-password"])
    assert result.exit_code == 0, result.output
    user = User.get(User.email == "ops@example.com")
    assert user.is_instance_admin
    again = runner.invoke(args=["users", "create-admin", "--email", "b@example.com", "--password", "a-long-password"])
    assert again.exit_code != 0 and "already set up" in again.output


def test_passwords_are_argon2_hashed(admin):
    assert admin.password_hash.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in admin.password_hash


def test_passwords_get_the_strong_argon2_parameters_outside_tests(app):
    """The test apps (TESTING) hash with argon2-cffi's cheapest profile; any other app, and code running
    outside an app, gets the strong defaults: argon2id, 64 MiB, 3 passes, 4 lanes, 16-byte salt, 32-byte hash."""
    from app import security
    strong = "$argon2id$v=19$m=65536,t=3,p=4$"
    assert security.hash_password("a-long-password").startswith(strong)  # no app context
    with app.app_context():
        cheap = security.hash_password("a-long-password")
        assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
        app.config["TESTING"] = False
        stored = security.hash_password("a-long-password")
        assert stored.startswith(strong)
        salt, digest = stored[len(strong):].split("$")
        assert len(salt) >= 22 and len(digest) >= 43  # base64 of 16 and 32 bytes
        # A hash carries its parameters: either kind verifies whoever hashed it.
        assert security.verify_password(stored, "a-long-password")
        assert security.verify_password(cheap, "a-long-password")
        assert not security.verify_password(stored, "a-wrong-password")


def test_sign_out_and_sign_in(web, admin):
    web.logout()
    assert web.get("/dashboard").status_code == 302
    response = web.login(ADMIN_EMAIL.upper(), ADMIN_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert web.get("/dashboard").status_code == 200


def test_logout_requires_post_with_csrf(client, web, admin):
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert web.get("/dashboard").status_code == 200


def test_wrong_password_is_refused_without_revealing_which_part(web, admin):
    web.logout()
    wrong = web.login(ADMIN_EMAIL, "wrong password!")
    unknown = web.login("nobody@example.com", "wrong password!")
    assert wrong.status_code == unknown.status_code == 422
    assert soup(wrong).select_one(".flash-error").text == soup(unknown).select_one(".flash-error").text


def test_sign_in_is_throttled_after_repeated_failures(app, web, admin):
    web.logout()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert web.login(ADMIN_EMAIL, "wrong password!").status_code == 422
    throttled = web.login(ADMIN_EMAIL, ADMIN_PASSWORD)  # even the right password waits
    assert throttled.status_code == 422
    assert "Too many failed sign-in attempts" in soup(throttled).select_one(".flash-error").text
    # The window passes.
    LoginFailure.update(at=datetime.datetime(2000, 1, 1)).execute()
    assert web.login(ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302


@pytest.mark.parametrize("target,expected", [
    ("/teams/members", "/teams/members"),
    ("https://evil.example/", "/dashboard"),
    ("//evil.example/", "/dashboard"),
    ("/\\evil.example", "/dashboard"),
    ("https:evil.example", "/dashboard"),
    ("javascript:alert(1)", "/dashboard"),
])
def test_only_same_site_next_redirects(web, admin, target, expected):
    web.logout()
    response = web.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": target})
    assert response.headers["Location"] == expected


def test_login_required_pages_redirect_with_next(client, admin):
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    fresh = client.application.test_client()
    response = fresh.get("/teams/members")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/teams/members")


def test_expired_session_on_htmx_request_redirects_the_page(app, admin):
    fresh = app.test_client()
    response = fresh.get("/teams/members", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login")


def test_session_cookie_flags(app, web):
    response = web.post("/setup", {"email": "a@example.com", "password": "a-long-password"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_when_https(tmp_path):
    from app import create_app
    from app.cli import migrate
    https_app = create_app({"TESTING": True, "SECRET_KEY": "x", "HTTPS": True,
                            "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"})
    with https_app.app_context():
        migrate()
    client = https_app.test_client()
    with client.session_transaction() as session:
        session["csrf"] = "t"
    response = client.post("/setup", data={"email": "a@example.com", "password": "a-long-password",
                                           "csrf_token": "t"}, base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


def test_every_post_needs_the_csrf_token(client, web, admin):
    for path in ("/teams/new", "/teams/settings", "/account/password", "/admin/settings", "/teams/members/invite"):
        response = client.post(path, data={"name": "x"})
        assert response.status_code == 400, path
        assert "expired or did not come from Loft" in response.get_data(as_text=True)
    # The header form (what htmx sends from <body hx-headers>) is accepted.
    with client.session_transaction() as session:
        token = session["csrf"]
    response = client.post("/teams/new", data={"name": "Via header"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 302


def test_pages_carry_the_csrf_token_for_htmx(web, admin):
    body = soup(web.get("/dashboard")).select_one("body")
    assert "X-CSRF-Token" in body["hx-headers"]


# --- Password reset ---------------------------------------------------------


def test_password_reset_by_email_is_single_use(web, admin, catcher):
    web.logout()
    message, link = _reset_link(web, catcher)
    assert "Reset your Loft password" == message.subject
    path = link.split("http://loft.test", 1)[1]
    assert web.get(path).status_code == 200
    response = web.post(path, {"password": "a brand new password", "password_confirm": "a brand new password"})
    assert response.status_code == 302
    assert web.login(ADMIN_EMAIL, "a brand new password").status_code == 302
    web.logout()
    again = web.post(path, {"password": "another new password", "password_confirm": "another new password"})
    assert again.status_code == 410
    assert web.login(ADMIN_EMAIL, "another new password").status_code == 422


def test_password_reset_link_expires(web, admin, catcher):
    web.logout()
    _, link = _reset_link(web, catcher)
    PasswordReset.update(expires_at=datetime.datetime(2000, 1, 1)).execute()
    page = web.get(link.split("http://loft.test", 1)[1])
    assert page.status_code == 410
    assert "expired" in soup(page).select_one(".flash-error").text


def test_password_reset_does_not_reveal_accounts(web, admin, catcher):
    from app.models import CaughtMessage
    web.logout()
    known = web.post("/reset", {"email": ADMIN_EMAIL}, follow_redirects=True)
    unknown = web.post("/reset", {"email": "nobody@example.com"}, follow_redirects=True)
    assert soup(known).select(".flash-info")[-1].text == soup(unknown).select(".flash-info")[-1].text
    assert CaughtMessage.select().count() == 1


def test_reset_tokens_are_stored_hashed(web, admin, catcher):
    _, link = _reset_link(web, catcher)
    token = link.rsplit("/", 1)[1]
    assert PasswordReset.select().where(PasswordReset.token_hash == token).count() == 0
    assert PasswordReset.select().where(PasswordReset.token_hash == security.hash_token(token)).count() == 1


# --- Sessions ---------------------------------------------------------------

def test_changing_password_signs_out_other_sessions(app, web, admin):
    other = app.test_client()
    with other.session_transaction() as session:
        session["csrf"] = "t"
    other.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": "t"})
    assert other.get("/dashboard").status_code == 200
    response = web.post("/account/password", {"current_password": ADMIN_PASSWORD, "password": "the new password 1",
                                               "password_confirm": "the new password 1"})
    assert response.status_code == 302
    assert web.get("/dashboard").status_code == 200  # this session goes on
    assert other.get("/dashboard").status_code == 302  # the other one is gone


def test_change_password_checks_the_current_one(web, admin):
    response = web.post("/account/password", {"current_password": "nope nope nope", "password": "the new password 1",
                                               "password_confirm": "the new password 1"})
    assert response.status_code == 422
    assert "current password" in soup(response).select_one("#e-current_password").text


def test_sign_out_everywhere(app, web, admin):
    other = app.test_client()
    with other.session_transaction() as session:
        session["csrf"] = "t"
    other.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": "t"})
    web.post("/account/sessions")
    assert web.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302


# --- TOTP two-factor ----------------------------------------------------------


def test_totp_setup_rejects_a_wrong_code(web, admin):
    web.get("/account/2fa")
    response = web.post("/account/2fa", {"code": "000000"})
    assert response.status_code == 422
    assert User.get_by_id(admin.id).totp_secret is None


def test_totp_secret_is_stored_encrypted(web, admin):
    secret, _ = _enable_2fa(web)
    stored = User.get_by_id(admin.id).totp_secret
    assert secret not in stored


def test_sign_in_with_totp(web, admin):
    secret, _ = _enable_2fa(web)
    web.logout()
    first = web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert first.headers["Location"] == "/login/2fa"
    assert web.get("/dashboard").status_code == 302  # not signed in yet
    assert web.post("/login/2fa", {"code": "123456"}).status_code == 422
    # A code already used at setup cannot be replayed; wait for the next step by using the time-window code.
    user = User.get_by_id(admin.id)
    next_code = pyotp.TOTP(secret).at(datetime.datetime.now() + datetime.timedelta(seconds=30))
    assert user.totp_last_step > 0
    response = web.post("/login/2fa", {"code": next_code})
    assert response.status_code == 302
    assert web.get("/dashboard").status_code == 200


def test_totp_code_cannot_be_replayed(web, admin):
    secret, _ = _enable_2fa(web)
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    next_code = pyotp.TOTP(secret).at(datetime.datetime.now() + datetime.timedelta(seconds=30))
    assert web.post("/login/2fa", {"code": next_code}).status_code == 302
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert web.post("/login/2fa", {"code": next_code}).status_code == 422


def test_recovery_code_works_once(web, admin):
    _, codes = _enable_2fa(web)
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert web.post("/login/2fa", {"code": codes[0].upper()}).status_code == 302
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert web.post("/login/2fa", {"code": codes[0]}).status_code == 422
    assert services.unused_recovery_codes(admin) == 9


def test_second_factor_is_throttled(app, web, admin):
    _enable_2fa(web)
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        web.post("/login/2fa", {"code": "000000"})
    response = web.post("/login/2fa", {"code": "000000"})
    assert "Too many" in soup(response).select_one(".flash-error").text


def test_disable_totp_needs_the_password(web, admin):
    _enable_2fa(web)
    assert web.post("/account/2fa/disable", {"password": "wrong wrong"}).status_code == 422
    assert web.post("/account/2fa/disable", {"password": ADMIN_PASSWORD}).status_code == 302
    assert User.get_by_id(admin.id).totp_secret is None
