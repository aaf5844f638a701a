"""Fixtures after flaskr's: a fresh, migrated SQLite file per test; real parts throughout.

The migrations run once per session, into a template file that each test gets its own copy of
(running all of them per test was a third of the suite's time); tests/test_foundation.py checks the
copy matches a fresh migration, and tests about migrations still run them for real. With
LOFT_TEST_DATABASE_URL=postgresql://... (`make test-pg`) each test gets its own PostgreSQL database made from a
migrated template database instead (tests/stack_support.py). Passwords are
hashed with argon2's cheapest profile under TESTING (app/security.py).

huey runs in immediate mode (tasks execute inline); the mail catcher is a real
aiosmtpd server on a free loopback port, and Loft's outbound SMTP points at it.
"""
import os
import re
import shutil
from pathlib import Path

# Tests build their own settings: neither the developer's .env nor LOFT_* settings exported in their shell
# may change what a test sees (LOFT_WEBHOOKS_ALLOW_PRIVATE=true, a documented local setting, once failed
# two tests). This runs before `app` is imported, because app/config.py reads both at import time; the
# environment is inherited by the subprocesses tests start (huey consumer, flask CLI, gunicorn).
_SETTINGS = set(re.findall(r'"(LOFT_[A-Z0-9_]+)"', (Path(__file__).parent.parent / "app" / "config.py").read_text()))
for _name in _SETTINGS - {"LOFT_DOTENV"}:
    os.environ.pop(_name, None)
os.environ["LOFT_DOTENV"] = "0"  # app/config.py: load no settings file
os.environ["FLASK_SKIP_DOTENV"] = "1"  # the flask command would load .env from its working directory

import pytest  # noqa: E402
from bs4 import BeautifulSoup  # noqa: E402

from app import create_app  # noqa: E402
from app.cli import migrate  # noqa: E402
from app.db import db  # noqa: E402
from app.models import Contact  # noqa: E402
from app.models import MailingList  # noqa: E402
from app.models import SenderDomain  # noqa: E402
from app.models import SmtpAccount  # noqa: E402
from app.models import Subscription  # noqa: E402
from app.models import Team  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.senders import domains  # noqa: E402
from tasks import huey  # noqa: E402
from tasks import tx_huey  # noqa: E402

pytest.register_assert_rewrite("tests.stack_support")  # a plugin imported here too: its asserts still explain
from tests import stack_support  # noqa: E402
from tests.ports import free_port  # noqa: E402,F401  (tests import it from here too)

# Every fixture is reachable from here: the ones that bring a server or a browser with them live in
# their area's support module, registered as a plugin, so no test module imports a fixture by name.
pytest_plugins = ("browser_support", "tests.stack_support", "tests.dns_support", "tests.smtp_support",
                  "tests.webhooks_support", "tests.email_templates_support", "tests.message_support",
                  "tests.api_support", "tests.spamd_support")


@pytest.fixture(autouse=True)
def immediate_huey():
    huey.immediate = tx_huey.immediate = True
    yield
    huey.immediate = tx_huey.immediate = False


def _test_config(database_path, database_url=None):
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url or f"sqlite:///{database_path}",
        "IMPORT_DIR": str(database_path.parent / "imports"),  # uploads under the test's own directory, never var/
        "MEDIA_DIR": str(database_path.parent / "media"),
        "CATCHER_PORT": free_port(),
        "BASE_URL": "http://loft.test",
        # Tests talk to loopback SMTP/IMAP servers; the guard's refusals are tested with this off.
        "MAIL_ALLOW_PRIVATE": True,
        # Sign-up forms look addresses' domains up in DNS; the tests of that turn it on with dns_zone.
        "SIGNUP_CHECK_DOMAINS": False,
        # The domain-health gate looks sender domains up in DNS when a campaign starts; tests that test it
        # turn it on with a DNS server on loopback (dns_zone), so no other test asks a real resolver.
        "DOMAIN_HEALTH_GATE": False,
    }


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL test server (LOFT_TEST_DATABASE_URL), or None on the SQLite stack."""
    if not stack_support.ON_POSTGRES:
        yield None
        return
    server = stack_support.PostgresServer(stack_support.DATABASE_URL)
    yield server
    server.drop(server.template_name())
    server.close()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory, postgres_server):
    """A database with every migration applied, made once per session; never opened by a test. On SQLite a
    file; on PostgreSQL a template database's name."""
    path = tmp_path_factory.mktemp("template") / "loft.db"
    if postgres_server:
        url = postgres_server.create(postgres_server.template_name())
        template_app = create_app(_test_config(path, url))
        with template_app.app_context():
            migrate()
        db.close()  # CREATE DATABASE ... TEMPLATE needs the template to have no connection
        return postgres_server.template_name()
    template_app = create_app(_test_config(path))
    with template_app.app_context():
        migrate()
        # Everything into the main file, so copying that one file copies the whole database.
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    leftovers = sorted(p.name for p in path.parent.iterdir() if p != path)
    assert not leftovers, f"the template database left {leftovers} beside it; a copy of loft.db alone is incomplete"
    return path


@pytest.fixture
def app(tmp_path, migrated_template, postgres_server):
    path = tmp_path / "loft.db"
    if postgres_server:
        name = postgres_server.next_test_name()
        app = create_app(_test_config(path, postgres_server.create(name, template=migrated_template)))
        yield app
        db.close()
        postgres_server.drop(name)
        return
    shutil.copyfile(migrated_template, path)
    app = create_app(_test_config(path))
    yield app
    db.close()


@pytest.fixture
def ctx(app):
    """The app with its context pushed, for tests that call model and service code directly (tokens need the
    app's secret). Requests made inside it share its `g`, so only with one signed-in client. A module that
    needs other settings overrides it: `def ctx(ctx): ctx.config.update(...)`."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def public(app):
    """A client with no session and no cookie jar, like a mail client or a mailbox provider calling us."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def catcher(app):
    """The real mail catcher on the port Loft's outbound SMTP points at."""
    from app.catcher import server as catcher_module
    controller = catcher_module.start(app, "127.0.0.1", app.config["CATCHER_PORT"])
    yield controller
    controller.stop()


@pytest.fixture
def smtp():
    """start(**behaviour) -> a real SMTP server on loopback (tests/sending_support.py's TestSmtp); all stop after."""
    from tests.sending_support import TestSmtp
    servers = []

    def start(**behaviour):
        server = TestSmtp(**behaviour)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gemini(app):
    """A Gemini API stand-in on loopback (tests/gemini_stub.py) with AI turned on and pointed at it: the
    real google-genai client talks to it, and it records every request it received."""
    from tests.gemini_stub import GeminiStub
    stub = GeminiStub()
    app.config["GEMINI_API_KEY"] = "test-key"
    app.config["GEMINI_BASE_URL"] = stub.base_url
    yield stub
    stub.stop()


def csrf_from(client):
    with client.session_transaction() as session:
        if "csrf" not in session:
            session["csrf"] = "test-csrf-token"
        return session["csrf"]


class Browserish:
    """A test client helper that sends the CSRF token like Loft's own pages do."""

    def __init__(self, client):
        self.client = client

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url, data=None, htmx=False, **kwargs):
        data = dict(data or {})
        data.setdefault("csrf_token", csrf_from(self.client))
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(url, data=data, headers=headers, **kwargs)

    def login(self, email, password, follow=False):
        return self.post("/login", {"email": email, "password": password}, follow_redirects=follow)

    def logout(self):
        return self.post("/logout")


@pytest.fixture
def web(client):
    return Browserish(client)


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"


@pytest.fixture
def admin(app, web):
    """The instance admin, created through /setup, signed in."""
    response = web.post("/setup", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "name": "Ada",
                                    "team_name": "Acme"})
    assert response.status_code == 302, response.get_data(as_text=True)
    from app.models import User
    return User.get(User.email == ADMIN_EMAIL)


@pytest.fixture
def team(admin):
    """The admin's team, Acme (a test module may define its own)."""
    return Team.get(Team.name == "Acme")


def soup(response):
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def link_in(text, path_prefix):
    """The first URL in a message body whose path starts with path_prefix."""
    match = re.search(r"https?://[^\s\"'<>]+" + re.escape(path_prefix) + r"[^\s\"'<>]*", text)
    assert match, f"no link to {path_prefix} in: {text[:500]}"
    return match.group(0)


@pytest.fixture
def ready_team(app, admin, catcher):
    """A team that can send: postal address, a verified domain, an SMTP account pointing at
    the real mail catcher, and a list of five contacts (one unsubscribed)."""
    team = Team.get(Team.name == "Acme")
    team.postal_address = "1 Main Street, Springfield"
    team.save()
    with app.app_context():
        domain = domains.add_domain(team, "acme.example")  # with its DKIM key, as the page makes it
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
    SmtpAccount.create(team=team, name="Local", host="127.0.0.1", port=app.config["CATCHER_PORT"], tls_mode="none",
                       max_connections=2)
    news = MailingList.create(team=team, name="Newsletter", double_opt_in=False)
    for i in range(5):
        contact = Contact.create(team=team, email=f"reader{i}@example.com", domain="example.com",
                                 name=f"Reader {i}", status="unsubscribed" if i == 4 else "active")
        Subscription.create(contact=contact, list=news, status="subscribed")
    return team, news
