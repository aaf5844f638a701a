"""Sessions end when they should (issue 9, points 6 and 7): signing out makes copies of the session and
remember-me cookies worthless; the CSRF token changes at sign-in and sign-out; a sign-in waiting for its
second factor does not carry the session token in its cookie."""
import base64
import datetime
import json
import zlib

import pyotp

from app.models import User
from tests.accounts_support import _enable_2fa
from tests.conftest import ADMIN_EMAIL
from tests.conftest import ADMIN_PASSWORD
from tests.conftest import Browserish


def cookie(client, name):
    found = client.get_cookie(name)
    assert found is not None, f"no {name} cookie"
    return found.value


def fresh_client_with(app, **cookies):
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def session_of(client):
    with client.session_transaction() as session:
        return dict(session)


def raw_session(client):
    """What anyone holding the cookie can read: Flask's session cookie is signed, not encrypted
    (payload.timestamp.signature, the payload zlib-compressed when it starts with a dot)."""
    value = cookie(client, "session")
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(data) if compressed else data).decode()


def test_a_copied_session_cookie_is_refused_after_sign_out(app, web, admin):
    copied = cookie(web.client, "session")
    assert fresh_client_with(app, session=copied).get("/account").status_code == 200  # a copy works...
    assert web.logout().status_code == 302
    replay = fresh_client_with(app, session=copied)
    response = replay.get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_copied_remember_me_cookie_is_refused_after_sign_out(app, web, admin):
    web.logout()
    assert web.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "remember": "1"}).status_code == 302
    remembered = cookie(web.client, "remember_token")
    # The remember-me cookie alone signs a new browser in...
    assert fresh_client_with(app, remember_token=remembered).get("/account").status_code == 200
    web.logout()
    # ...until its owner signs out.
    response = fresh_client_with(app, remember_token=remembered).get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_sign_out_without_a_session_is_harmless(app, client):
    web = Browserish(client)
    assert web.logout().status_code == 302


def test_the_csrf_token_changes_at_sign_in_and_sign_out(app, client, admin):
    web = Browserish(client)
    web.logout()
    with web.client.session_transaction() as session:
        session["csrf"] = "seen-before-sign-in"
    assert web.login(ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    assert session_of(web.client).get("csrf") != "seen-before-sign-in"
    web.client.get("/dashboard")
    signed_in = session_of(web.client)["csrf"]
    assert signed_in != "seen-before-sign-in"
    web.logout()
    assert session_of(web.client).get("csrf") != signed_in
    # The old token no longer passes the CSRF check of the signed-out session.
    response = web.client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                "csrf_token": signed_in})
    assert response.status_code == 400


def test_the_csrf_token_changes_at_setup(app, client):
    with client.session_transaction() as session:
        session["csrf"] = "seen-before-setup"
    response = client.post("/setup", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "name": "Ada",
                                           "team_name": "Acme", "csrf_token": "seen-before-setup"})
    assert response.status_code == 302
    assert session_of(client).get("csrf") != "seen-before-setup"


def test_the_pending_second_factor_cookie_does_not_carry_the_session_token(app, web, admin):
    secret, _ = _enable_2fa(web)
    web.logout()
    assert web.login(ADMIN_EMAIL, ADMIN_PASSWORD).headers["Location"] == "/login/2fa"
    token = User.get_by_id(admin.id).session_token
    readable = raw_session(web.client)
    assert "pending_2fa" in readable
    assert token not in readable
    assert token not in json.dumps(session_of(web.client))
    # The pending sign-in still completes with the next code.
    code = pyotp.TOTP(secret).at(datetime.datetime.now() + datetime.timedelta(seconds=30))
    assert web.post("/login/2fa", {"code": code}).status_code == 302
    assert web.get("/dashboard").status_code == 200


def test_a_pending_second_factor_ends_when_the_password_is_reset(app, web, admin):
    _enable_2fa(web)
    web.logout()
    web.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert web.get("/login/2fa").status_code == 200
    from app.auth import services
    with app.app_context():
        services.set_password(User.get_by_id(admin.id), "another long password")
    response = web.get("/login/2fa")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_a_password_reset_signs_out_copies_and_renews_the_csrf_token(app, web, admin, catcher):
    from tests.accounts_support import _reset_link
    copied = cookie(web.client, "session")
    _, link = _reset_link(web, catcher)
    path = link.split("http://loft.test", 1)[1]
    before = session_of(web.client).get("csrf")
    assert web.post(path, {"password": "a brand new password", "password_confirm": "a brand new password",
                           "csrf_token": before}).status_code == 302
    assert session_of(web.client).get("csrf") != before
    response = fresh_client_with(app, session=copied).get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
