"""Instance settings (app/settings.py): read once per request or task, seen by every process
once saved, and the one base_url() that previews and sent mail share."""
import email
import email.policy

from app import create_app
from app import settings
from app.content import prepare
from app.content.message import MessageFactory
from app.models import Campaign
from app.models import Contact
from app.models import InstanceSetting
from app.models import Send
from app.models import Team
from app.tracking import webview
from tests.conftest import soup

BODY = '<p>Hello {{ contact.first_name or "friend" }}, <a href="https://example.com/docs">the docs</a>.</p>'


def _campaign(team, **fields):
    values = dict(team=team, name="Welcome", from_name="Acme News", from_email="news@acme.example",
                  subject="News", body=BODY, kind="html")
    values.update(fields)
    return Campaign.create(**values)


def _instance_setting_queries(statements):
    return [sql for sql in statements if f'"{InstanceSetting._meta.table_name}"' in sql]


def _trace(sql_statements):
    """Every SQL statement run from now on (the sql_statements fixture's list, emptied)."""
    sql_statements.clear()
    return sql_statements


def test_preview_and_sent_mail_use_the_same_base_url(app, admin):
    """The preview used LOFT_BASE_URL while sent mail used Admin > Settings: one base_url() now."""
    with app.app_context():
        settings.save_settings({"base_url": "https://mail.example.com"})
        team = Team.get(Team.name == "Acme")
        campaign = _campaign(team)
        contact = Contact.create(team=team, email="zoe@example.org", domain="example.org")
        send = Send.create(campaign=campaign, contact=contact, email=contact.email)
        assert app.config["BASE_URL"] == "http://loft.test"
        assert settings.base_url() == "https://mail.example.com"

        _subject, html, _text = prepare.preview(campaign, contact)
        raw = MessageFactory(campaign).build(send, contact)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    sent = message.get_body(preferencelist=("html",)).get_content()
    assert "https://mail.example.com/u/" in html and "loft.test" not in html
    assert "https://mail.example.com/u/" in sent and "loft.test" not in sent
    assert message["List-Unsubscribe"].startswith("<https://mail.example.com/")


def test_a_test_send_and_the_web_version_use_that_base_url_too(app, admin):
    """A test send is built by the same MessageFactory (test=True), the web version by app.tracking.webview:
    both start every link with settings.base_url(), like the preview and the mail sent."""
    with app.app_context():
        settings.save_settings({"base_url": "https://mail.example.com"})
        team = Team.get(Team.name == "Acme")
        campaign = _campaign(team, track_clicks=True)
        contact = Contact.create(team=team, email="zoe@example.org", domain="example.org")
        send = Send.create(campaign=campaign, contact=contact, email=contact.email)
        MessageFactory(campaign).build(send, contact)  # registers the tracked link, as sending does
        test_raw = MessageFactory(campaign, test=True).build(send, contact)
        web_version = webview.render(send.id)
    test_message = email.message_from_bytes(test_raw, policy=email.policy.default)
    test_html = test_message.get_body(preferencelist=("html",)).get_content()
    assert "https://mail.example.com/u/" in test_html and "loft.test" not in test_html
    assert "https://mail.example.com/c/" in web_version and "https://mail.example.com/u/" in web_version
    assert "loft.test" not in web_version


def test_the_bounce_webhook_url_shown_starts_with_the_same_base_url(app, web, admin):
    """The webhook card used LOFT_BASE_URL while mail used Admin > Settings."""
    with app.app_context():
        settings.save_settings({"base_url": "https://mail.example.com"})
    card = soup(web.post("/feedback/webhooks/generic/enable", htmx=True))
    assert card.select_one(".hook-url").text.startswith("https://mail.example.com/feedback/hooks/generic/")


def test_a_message_factory_reads_the_instance_settings_once(app, admin, sql_statements):
    """It read them three times (base URL, default From address, default From name)."""
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.default_from_email = ""
        team.save()
        campaign = _campaign(team, from_email="", from_name="")
    with app.app_context():  # a fresh request or task: nothing cached yet
        statements = _trace(sql_statements)
        factory = MessageFactory(campaign)
        assert factory.from_email == "loft@localhost"  # the instance default, read from the settings
        assert len(_instance_setting_queries(statements)) == 1
        MessageFactory(campaign)  # a second factory in the same task reads nothing again
        assert len(_instance_setting_queries(statements)) == 1


def test_a_saved_setting_is_seen_by_another_app_instance(app, tmp_path):
    """Two gunicorn workers: a save in one is seen by the next request of the other."""
    other = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": app.config["DATABASE_URL"],
                        "CATCHER_PORT": app.config["CATCHER_PORT"], "BASE_URL": "http://loft.test",
                        "MAIL_ALLOW_PRIVATE": True})
    with other.app_context():
        assert settings.get_setting("team_creation") == "invited"
    with app.app_context():
        settings.save_settings({"team_creation": "admin"})
        assert settings.get_setting("team_creation") == "admin"  # the saving context forgets its copy
    with other.test_request_context():  # the other worker's next request
        assert settings.get_setting("team_creation") == "admin"


def test_a_long_lived_context_reads_again_after_max_age(app, monkeypatch):
    """A huey worker thread keeps one app context: it sees a save by another process within MAX_AGE."""
    now = [1000.0]
    monkeypatch.setattr(settings, "_clock", lambda: now[0])
    worker = app.app_context()
    worker.push()
    try:
        assert settings.get_setting("team_creation") == "invited"
        with app.app_context():  # another process saves
            settings.save_settings({"team_creation": "anyone"})
        assert settings.get_setting("team_creation") == "invited"  # within MAX_AGE: the copy
        now[0] += settings.MAX_AGE + 0.1
        assert settings.get_setting("team_creation") == "anyone"
        settings.save_settings({"team_creation": "admin"})  # and forget() before each task
        settings.forget()
        assert settings.get_setting("team_creation") == "admin"
    finally:
        worker.pop()


def test_get_settings_returns_a_copy(app):
    with app.app_context():
        values = settings.get_settings()
        values["base_url"] = "https://elsewhere.example"
        assert settings.base_url() == "http://loft.test"


def test_ehlo_names_the_host_of_the_same_base_url(app):
    from app.senders import smtp_client
    with app.app_context():
        assert smtp_client._local_hostname() == "loft.test"  # LOFT_BASE_URL until one is saved
        settings.save_settings({"base_url": "https://mail.example.com"})
        assert smtp_client._local_hostname() == "mail.example.com"
        settings.save_settings({"base_url": "http://127.0.0.1:8000"})
        assert smtp_client._local_hostname() == "[127.0.0.1]"


def test_only_app_settings_reads_the_instance_settings_or_the_base_url():
    """One home: a module that read InstanceSetting or LOFT_BASE_URL itself could build links from a
    different base URL again, or read the settings around the per-request copy."""
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parent.parent
    allowed = {"app/settings.py": {"InstanceSetting", "BASE_URL"}, "app/models/teams.py": {"InstanceSetting"}, "app/models/__init__.py": {"InstanceSetting"},
               "app/config.py": {"BASE_URL"}}
    pattern = re.compile(r"\b(InstanceSetting|BASE_URL)\b")
    found = []
    files = [*root.glob("app/**/*.py"), *root.glob("tasks/*.py"), root / "wsgi.py", *root.glob("templates/**/*.html")]
    for path in files:
        name = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in pattern.finditer(line):
                if match.group(1) not in allowed.get(name, set()):
                    found.append(f"{name}:{number}: {line.strip()}")
    assert found == [], "read them through app.settings (get_settings, get_setting, base_url):\n" + "\n".join(found)
