"""Password-reset mail is rate limited per address and per IP (issue 9, point 7): counted in the
database (so every worker agrees), the same way for addresses with and without an account."""
from app import create_app
from app.auth import services
from app.models import CaughtMessage
from tests.conftest import ADMIN_EMAIL
from tests.conftest import Browserish
from tests.conftest import soup


def ask(web, email, ip="192.0.2.10"):
    return web.post("/reset", {"email": email}, environ_base={"REMOTE_ADDR": ip})


def reset_mails(to):
    return [m for m in CaughtMessage.select() if to in m.recipients]


def test_reset_links_per_address_are_limited_alike_for_known_and_unknown_addresses(app, web, admin, catcher):
    web.logout()
    answers = {}
    for email in (ADMIN_EMAIL, "nobody@example.com"):
        statuses = [ask(web, email).status_code for _ in range(services.RESET_PER_ADDRESS)]
        refused = ask(web, email.upper())  # the same address, however it is typed
        answers[email] = (statuses, refused.status_code, soup(refused).select_one("#e-email").text.strip(),
                          soup(refused).select_one("input[name=email]")["value"])
    assert answers[ADMIN_EMAIL][:3] == answers["nobody@example.com"][:3]  # nothing tells them apart
    statuses, refused, message, _ = answers[ADMIN_EMAIL]
    assert statuses == [302] * services.RESET_PER_ADDRESS and refused == 429
    assert "asked for several times in the last hour" in message
    assert answers[ADMIN_EMAIL][3] == ADMIN_EMAIL.upper()  # the form keeps what was typed
    assert len(reset_mails(ADMIN_EMAIL)) == services.RESET_PER_ADDRESS


def test_reset_requests_per_ip_are_limited(app, web, admin, catcher):
    web.logout()
    for i in range(services.RESET_PER_IP):
        assert ask(web, f"someone{i}@example.com").status_code == 302
    refused = ask(web, ADMIN_EMAIL)
    assert refused.status_code == 429
    assert "from your network" in soup(refused).select_one("#e-email").text
    assert reset_mails(ADMIN_EMAIL) == []
    assert ask(web, ADMIN_EMAIL, ip="192.0.2.99").status_code == 302  # another network is not blocked
    assert len(reset_mails(ADMIN_EMAIL)) == 1
    # Reset requests are not failed sign-ins: the IP may still sign in.
    assert web.post("/login", {"email": ADMIN_EMAIL, "password": "correct horse battery"},
                    environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 302


def test_the_count_holds_across_workers(app, web, admin, catcher):
    """Another worker process is another app on the same database: it sees the same count."""
    web.logout()
    for _ in range(services.RESET_PER_ADDRESS):
        assert ask(web, ADMIN_EMAIL).status_code == 302
    other = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": app.config["DATABASE_URL"],
                        "CATCHER_PORT": app.config["CATCHER_PORT"], "BASE_URL": "http://loft.test"})
    assert ask(Browserish(other.test_client()), ADMIN_EMAIL).status_code == 429
    assert len(reset_mails(ADMIN_EMAIL)) == services.RESET_PER_ADDRESS
