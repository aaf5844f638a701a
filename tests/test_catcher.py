"""The local mail catcher and the Outbox; instance settings; Loft's own mail through a real queue."""
import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

from app.config import ROOT
from app.models import CaughtMessage
from app.models import InstanceSetting
from tests.conftest import free_port
from tests.conftest import soup


def _deliver(port, subject="Hello from a real SMTP client", html="<p>Hi <b>there</b></p><script>alert(1)</script>"):
    message = EmailMessage()
    message["From"] = "sender@example.com"
    message["To"] = "reader@example.com"
    message["Subject"] = subject
    message.set_content("Plain text part")
    message.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_real_smtp_delivery_appears_in_the_outbox(app, web, admin, catcher):
    _deliver(app.config["CATCHER_PORT"])
    listing = soup(web.get("/outbox/"))
    row = listing.select("#outbox-rows tbody tr")
    assert len(row) == 1
    assert "reader@example.com" in row[0].text
    link = row[0].select_one("a")
    assert link.text == "Hello from a real SMTP client"

    detail = soup(web.get(link["href"]))
    frame = detail.select_one("iframe.message-frame")
    assert frame.has_attr("sandbox") and not frame["sandbox"]  # empty sandbox: no scripts, no same-origin
    html = web.get(frame["src"])
    assert "<b>there</b>" in html.get_data(as_text=True)
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert "script-src" not in html.headers["Content-Security-Policy"]  # default-src 'none' forbids scripts

    text = soup(web.get(link["href"] + "?tab=text")).select_one("pre.message-text").text
    assert "Plain text part" in text
    headers = soup(web.get(link["href"] + "?tab=headers"))
    assert ["Subject", "Hello from a real SMTP client"] in [[c.text for c in tr.select("th, td")] for tr in headers.select("table.headers tr")]
    raw = web.get(link["href"] + "/raw")
    assert raw.mimetype == "text/plain"
    assert b"Subject: Hello from a real SMTP client" in raw.data


def test_outbox_search_and_empty_state(app, web, admin, catcher):
    empty = soup(web.get("/outbox/"))
    assert "No mail yet" in empty.select_one(".empty").text
    _deliver(app.config["CATCHER_PORT"], subject="Invoice 42")
    _deliver(app.config["CATCHER_PORT"], subject="Weekly news")
    fragment = web.get("/outbox/?q=Invoice", headers={"HX-Request": "true"})
    rows = soup(fragment).select("#outbox-rows tbody tr")
    assert [r.select_one("a").text for r in rows] == ["Invoice 42"]
    assert soup(fragment).select_one("body") is None


def test_outbox_clear(app, web, admin, catcher):
    _deliver(app.config["CATCHER_PORT"])
    web.post("/outbox/clear")
    assert CaughtMessage.select().count() == 0


def test_fresh_install_sends_loft_mail_into_the_catcher(app, web, admin, catcher):
    """No settings changed: the invite goes through Loft's outbound SMTP, which is the catcher."""
    assert InstanceSetting.select().count() == 0
    web.post("/teams/members/invite", {"email": "friend@example.com", "role": "guest"})
    message = CaughtMessage.get()
    assert message.subject == "You are invited to Acme on Loft"
    assert "friend@example.com" in message.recipients
    raw = bytes(message.raw)
    assert b"Message-ID: <" in raw and b"multipart/alternative" in raw


def test_instance_settings_validate_and_encrypt_the_smtp_password(app, web, admin):
    bad = web.post("/admin/settings", {"base_url": "mail.example.com", "default_from_email": "nope",
                                       "smtp_host": "smtp.example.com", "smtp_port": "99999", "smtp_tls": "none"},
                   htmx=True)
    assert bad.status_code == 422
    page = soup(bad)
    for field in ("base_url", "default_from_email", "smtp_port", "smtp_tls"):
        assert page.select_one(f"#e-{field}") is not None, field
    assert InstanceSetting.select().count() == 0

    good = web.post("/admin/settings", {"base_url": "https://mail.example.com/", "default_from_name": "Loft",
                                        "default_from_email": "loft@example.com", "smtp_host": "smtp.example.com",
                                        "smtp_port": "587", "smtp_tls": "starttls", "smtp_username": "me",
                                        "smtp_password": "app-specific-password"})
    assert good.status_code == 302
    stored = {row.key: row.value for row in InstanceSetting.select()}
    assert "app-specific-password" not in stored["smtp_password"]
    with app.app_context():
        from app.settings import get_settings
        settings = get_settings()
    assert settings["smtp_password"] == "app-specific-password"
    assert settings["base_url"] == "https://mail.example.com"
    form = soup(web.get("/admin/settings"))
    assert form.select_one("#f-smtp_password").get("value") is None  # never echoed back
    # Saving again with an empty password keeps the stored one.
    web.post("/admin/settings", {"base_url": "https://mail.example.com", "default_from_email": "loft@example.com",
                                 "smtp_host": "smtp.example.com", "smtp_port": "587", "smtp_tls": "starttls",
                                 "smtp_username": "me", "smtp_password": ""})
    with app.app_context():
        assert get_settings()["smtp_password"] == "app-specific-password"


def test_a_dead_smtp_server_fails_the_task_not_the_page(app, web, admin):
    """With no SMTP server listening, the invite is still made and the page answers; the send is retried later."""
    from app.models import Invite
    from tasks import huey
    response = web.post("/teams/members/invite", {"email": "later@example.com", "role": "guest"}, htmx=True)
    assert response.status_code == 200
    assert "Invitation sent to later@example.com" in soup(response).text
    assert Invite.select().where(Invite.email == "later@example.com").exists()
    retries = [task for task in huey.scheduled() if task.name == "mail.send_system_email"]
    assert len(retries) == 1 and retries[0].retries == 2
    huey.flush()


def test_real_consumer_delivers_queued_mail(app, queue_env, catcher):
    """End to end without immediate mode: a real huey_consumer process on its own queue (a file, or Redis
    under make test-pg)."""
    env = dict(os.environ, **queue_env, LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_CATCHER_PORT=str(app.config["CATCHER_PORT"]), LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING")
    enqueue = ("import wsgi; from tasks.system_mail import send_system_email; "
               "send_system_email('queued@example.com', 'Through the queue', 'Body text')")
    subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=30)
    consumer = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "2", "-m", "1"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with app.app_context():
                if CaughtMessage.select().where(CaughtMessage.subject == "Through the queue").exists():
                    break
            time.sleep(0.2)
        else:
            consumer.terminate()
            pytest.fail("the consumer did not deliver: " + consumer.communicate(timeout=10)[0].decode()[-2000:])
    finally:
        consumer.terminate()
        consumer.wait(timeout=10)


def test_catcher_cli_starts_and_accepts_mail(app, tmp_path):
    port = free_port()
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="x",
               LOFT_HUEY_PATH=str(tmp_path / "huey.db"), FLASK_APP="wsgi")
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "flask"), "catcher", "run", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                _deliver(port, subject="Via the CLI catcher")
                break
            except OSError:
                time.sleep(0.1)
        with app.app_context():
            assert CaughtMessage.get(CaughtMessage.subject == "Via the CLI catcher").mail_from == "sender@example.com"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("stored", ["loft@example.com, victim@example.net", "loft@example.com\r\nBcc: victim@example.net"])
def test_a_hostile_default_sender_stored_before_the_form_checked_it_sends_nothing(app, catcher, stored):
    """A From stored by an older Loft (before the settings form checked it) must not add recipients or
    headers to Loft's own mail: sending refuses in words and nothing reaches the server."""

    from app import system_mail
    with app.app_context():
        InstanceSetting.create(key="default_from_email", value=stored)
        with pytest.raises(system_mail.SystemSenderError, match="Instance settings"):
            system_mail.send("reader@example.com", "Hello", "Text")
        assert CaughtMessage.select().count() == 0
        InstanceSetting.update(value="loft@example.com").execute()
    # A row changed behind Loft's back is read by the next request or task (app/settings.py caches per context).
    with app.app_context():
        system_mail.send("reader@example.com", "Hello", "Text")
        assert CaughtMessage.select().count() == 1
