"""Accounts for tests: members signed in through the real login, a password reset link, 2FA set up through the pages."""
import pyotp

from app.models import Membership
from tests.conftest import ADMIN_EMAIL
from tests.conftest import Browserish
from tests.conftest import link_in
from tests.conftest import soup


def make_member(app, team, role, email=None):
    from app.auth.services import create_user
    email = email or f"{role}-{team.id}@example.com"
    user = create_user(email, "member password 1")
    Membership.create(user=user, team=team, role=role)
    client = Browserish(app.test_client())
    assert client.login(email, "member password 1").status_code == 302
    return user, client


def _reset_link(web, catcher, email=ADMIN_EMAIL):
    from app.catcher.services import parse
    from app.models import CaughtMessage
    web.post("/reset", {"email": email})
    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert message is not None, "no reset email reached the mail catcher"
    return message, link_in(parse(message)["text"], "/reset/")


def _enable_2fa(web):
    page = soup(web.get("/account/2fa"))
    secret = page.select_one("code.secret").text
    assert page.select_one(".qr svg") is not None
    response = web.post("/account/2fa", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = [c.text for c in soup(response).select("ul.codes code")]
    assert len(codes) == 10
    return secret, codes
