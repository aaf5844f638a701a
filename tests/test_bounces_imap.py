"""Bounce mailboxes over IMAP: a real IMAP server on loopback (tests/imap_server.py) holding
bounces built from messages the engine really sent, and real bounces and complaints from
../shared/corpus; the check applies them, moves them to Loft/Processed and leaves other mail;
login and connection failures are stored in words; the pages, roles and team isolation."""
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from app import security
from app.consent import suppression
from app.bounces import imap
from app.models import BounceMailbox
from app.models import Contact
from app.models import Team
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin
from tests.accounts_support import make_member
from tests.bounces_support import arf
from tests.bounces_support import dsn
from tests.bounces_support import send_campaign
from tests.conftest import free_port
from tests.conftest import soup
from tests.imap_server import ImapServer
from tests.sending_support import make_team

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
USER, PASSWORD = "ada@icloud.com", "abcd-efgh-ijkl-mnop"


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_BATCH_SIZE=50)
    return ctx


@pytest.fixture
def server():
    imap_server = ImapServer(user=USER, password=PASSWORD)
    yield imap_server
    imap_server.stop()


def mailbox_for(team, port, **fields):
    values = dict(team=team, name="Bounces", host="127.0.0.1", port=port, security="none", username=USER,
                  password=security.encrypt(PASSWORD))
    values.update(fields)
    return BounceMailbox.create(**values)


def auto_reply(to="news@acme.test"):
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "carol@example.com", to, "Automatic reply: Spring news"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am away until Monday.")
    return reply.as_bytes()


def personal_mail():
    note = EmailMessage()
    note["From"], note["To"], note["Subject"] = "friend@example.com", USER, "Lunch on Friday?"
    note.set_content("Are you free?")
    return note.as_bytes()


def status(email, team):
    return Contact.get((Contact.team == team) & (Contact.email == email)).status


# --- Checking a mailbox ----------------------------------------------------------------------

def test_check_applies_bounces_and_complaints_moves_them_and_leaves_other_mail(ctx, server):
    team = make_team()
    raw = send_campaign(team, ["alice@example.com", "bob@example.com", "carol@example.com"])
    server.add(dsn("alice@example.com", "5.1.1", "550 5.1.1 <alice@example.com>: User unknown",
                   raw["alice@example.com"]))
    server.add(arf("bob@example.com", raw["bob@example.com"]))
    server.add(auto_reply())
    server.add(personal_mail())
    box = mailbox_for(team, server.port)

    summary = imap.check_mailbox(box.id)

    assert (summary["bounces"], summary["complaints"], summary["auto_replies"], summary["other"],
            summary["moved"]) == (1, 1, 1, 1, 3)
    assert status("alice@example.com", team) == "bounced"
    assert suppression.is_suppressed(team.id, "alice@example.com")
    assert status("bob@example.com", team) == "complained"
    assert status("carol@example.com", team) == "active"  # an auto-reply is not a bounce
    # Bounce, complaint and auto-reply are in Loft/Processed; the person's own mail stayed in the inbox.
    assert len(server.raw_messages("Loft/Processed")) == 3
    assert b"Lunch on Friday?" in server.raw_messages("INBOX")[0]
    assert "UID MOVE" in " ".join(server.log)  # the server offers MOVE
    box = BounceMailbox.get_by_id(box.id)
    assert box.last_error == "" and box.last_checked_at is not None and box.last_uid == 4
    assert "1 bounce, 1 complaint, 1 auto-reply moved" in imap.summary_in_words(imap.last_summary(box))

    # A second run finds nothing new: the personal message is not read again, nothing changes.
    fetches = sum(1 for line in server.log if line.startswith("UID FETCH"))
    again = imap.check_mailbox(box.id)
    assert (again["bounces"], again["complaints"], again["other"], again["moved"]) == (0, 0, 0, 0)
    assert sum(1 for line in server.log if line.startswith("UID FETCH")) == fetches
    assert len(server.raw_messages("Loft/Processed")) == 3 and len(server.raw_messages("INBOX")) == 1


def test_without_move_it_copies_flags_and_expunges_only_its_own(ctx):
    server = ImapServer(user=USER, password=PASSWORD, move=False, folders=("INBOX", "Loft/Processed"))
    try:
        team = make_team()
        raw = send_campaign(team, ["alice@example.com"])
        server.add(personal_mail(), flags=("\\Deleted",))  # someone else's pending delete: not ours to expunge
        server.add(dsn("alice@example.com", "5.1.1", "550 5.1.1 User unknown", raw["alice@example.com"]))
        box = mailbox_for(team, server.port)
        summary = imap.check_mailbox(box.id)
        assert summary["moved"] == 1 and BounceMailbox.get_by_id(box.id).last_error == ""
        log = " ".join(server.log)
        assert "UID COPY" in log and "UID STORE" in log and "UID EXPUNGE" in log and "UID MOVE" not in log
        assert "CREATE" not in log  # the folder existed
        assert len(server.raw_messages("Loft/Processed")) == 1
        assert len(server.raw_messages("INBOX")) == 1  # the other \Deleted message is still there
        assert status("alice@example.com", team) == "bounced"
    finally:
        server.stop()


def test_each_run_is_bounded_and_the_next_carries_on(ctx, server):
    team = make_team()
    raw = send_campaign(team, [f"r{i}@example.com" for i in range(5)])
    for i in range(5):
        server.add(dsn(f"r{i}@example.com", "5.1.1", "550 5.1.1 User unknown", raw[f"r{i}@example.com"]))
    box = mailbox_for(team, server.port)
    first = imap.check_mailbox(box.id, limit=3)
    assert (first["bounces"], first["remaining"]) == (3, 2)
    assert [status(f"r{i}@example.com", team) for i in range(5)] == ["bounced"] * 3 + ["active"] * 2
    second = imap.check_mailbox(box.id, limit=3)
    assert (second["bounces"], second["remaining"]) == (2, 0)
    assert all(status(f"r{i}@example.com", team) == "bounced" for i in range(5))
    assert len(server.raw_messages("Loft/Processed")) == 5 and server.raw_messages("INBOX") == []


def test_bounces_never_touch_another_teams_contacts(ctx, server):
    acme, other = make_team(), make_team("Other")
    raw = send_campaign(other, ["alice@example.com"])
    Contact.create(team=acme, email="alice@example.com", domain="example.com")
    server.add(dsn("alice@example.com", "5.1.1", "550 5.1.1 User unknown", raw["alice@example.com"]))
    box = mailbox_for(acme, server.port)  # Acme's mailbox received Other's bounce
    summary = imap.check_mailbox(box.id)
    assert (summary["bounces"], summary["unmatched"], summary["applied"]) == (1, 1, 0)
    assert status("alice@example.com", acme) == "active" and status("alice@example.com", other) == "active"


def test_real_corpus_bounces_and_complaints(ctx, server):
    files = {"bounces/lhost-activehunter-01.eml": "kijitora@example.org",
             "bounces/lhost-amavis-02.eml": "neko@example.co.jp",
             "complaints/sisimai/arf-14.eml": "kijitora@y.example.com",  # Feedback-Type: abuse
             "complaints/sisimai/arf-12.eml": "user@example.com"}  # Feedback-Type: opt-out
    if not all((CORPUS / name).is_file() for name in files):
        print(f"corpus not found at {CORPUS} (../shared is absent): skipping")
        pytest.skip(f"corpus not found at {CORPUS}")
    team = make_team()
    send_campaign(team, list(files.values()))  # recent sends to the addresses the reports name
    for name in files:
        server.add((CORPUS / name).read_bytes())
    server.add((CORPUS / "bounces/lhost-amazonses-06.eml").read_bytes())  # about nobody of ours
    server.add((CORPUS / "complaints/mail-auth/003.eml").read_bytes())  # a DMARC failure report: never by address
    summary = imap.check_mailbox(mailbox_for(team, server.port).id)
    assert (summary["bounces"], summary["complaints"], summary["auth_reports"], summary["unmatched"],
            summary["moved"]) == (3, 2, 1, 2, 6)
    assert status("kijitora@example.org", team) == "bounced"
    assert status("neko@example.co.jp", team) == "bounced"
    assert status("kijitora@y.example.com", team) == "complained"
    assert suppression.is_suppressed(team.id, "kijitora@y.example.com")
    assert status("user@example.com", team) == "unsubscribed"  # an ARF opt-out unsubscribes
    assert server.raw_messages("INBOX") == []


def test_bad_password_is_stored_with_the_servers_reply(ctx, server):
    team = make_team()
    server.add(personal_mail())
    box = mailbox_for(team, server.port, password=security.encrypt("wrong"), preset="icloud")
    assert imap.check_mailbox(box.id) is not None
    box = BounceMailbox.get_by_id(box.id)
    assert "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" in box.last_error
    assert "app-specific password" in box.last_error
    assert len(server.raw_messages("INBOX")) == 1


def test_a_dead_port_gives_a_clear_error_and_other_mailboxes_still_run(ctx, server):
    from tasks import bounces as bounce_tasks
    team = make_team()
    raw = send_campaign(team, ["alice@example.com"])
    server.add(dsn("alice@example.com", "5.1.1", "550 5.1.1 User unknown", raw["alice@example.com"]))
    dead = mailbox_for(team, free_port(), name="Dead")
    alive = mailbox_for(team, server.port, name="Alive")
    mailbox_for(team, server.port, name="Off", enabled=False, password=security.encrypt("wrong"))
    bounce_tasks.check_bounce_mailboxes.call_local()  # the periodic task: one task per enabled mailbox
    dead = BounceMailbox.get_by_id(dead.id)
    assert dead.last_error.startswith("Connection refused: nothing is listening on 127.0.0.1 port")
    assert BounceMailbox.get_by_id(alive.id).last_error == ""
    assert status("alice@example.com", team) == "bounced"
    assert BounceMailbox.get(BounceMailbox.name == "Off").last_checked_at is None
    # The admins hear of the failing mailbox once, not on every check, and again after it recovered.
    from app.models import Notice
    mailbox_notices = Notice.select().where(Notice.kind == "mailbox")  # the campaign's finished notice aside
    assert [n.subject for n in mailbox_notices] == ["Bounce mailbox Dead cannot be read"]
    bounce_tasks.check_bounce_mailboxes.call_local()
    assert mailbox_notices.count() == 1


def test_folder_that_does_not_exist_is_reported(ctx, server):
    box = mailbox_for(make_team(), server.port, folder="Bounces")
    imap.check_mailbox(box.id)
    assert "“Bounces” could not be opened" in BounceMailbox.get_by_id(box.id).last_error
    assert "NO [NONEXISTENT]" in BounceMailbox.get_by_id(box.id).last_error


# --- Pages ----------------------------------------------------------------------------------------

def mailbox_form(port, **overrides):
    form = {"preset": "generic", "name": "Bounces", "host": "127.0.0.1", "port": str(port), "security": "none",
            "username": USER, "password": PASSWORD, "folder": "INBOX", "processed_folder": "Loft/Processed",
            "enabled": "1", "smtp_account": ""}
    form.update(overrides)
    return form


def test_add_test_and_check_a_mailbox_in_the_browser(app, web, admin, server):
    server.add(auto_reply())
    server.add(personal_mail())
    assert soup(web.get("/feedback/")).select_one("#mailboxes-empty") is not None
    presets = soup(web.get("/feedback/mailboxes/new"))
    assert [a.get_text() for a in presets.select("ul.presets h2 a")] == ["iCloud Mail", "Another provider"]
    icloud = soup(web.get("/feedback/mailboxes/new?preset=icloud"))
    assert icloud.select_one("#f-host")["value"] == "imap.mail.me.com"
    assert icloud.select_one("#f-port")["value"] == "993"
    assert icloud.select_one("#f-security option[selected]")["value"] == "ssl"
    assert "full iCloud Mail address" in icloud.select_one("#h-username").get_text()

    response = web.post("/feedback/mailboxes/new", mailbox_form(server.port))
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
        assert box.password != PASSWORD and security.decrypt(box.password) == PASSWORD
    listing = soup(web.get("/feedback/"))
    card = listing.select_one(f"#mailbox-{box.id}")
    assert "Never" in card.select_one(".last-check").get_text()

    test = soup(web.post(f"/feedback/mailboxes/{box.id}/test", htmx=True))
    assert "Connection works." in test.select_one(".flash-success").get_text()
    transcript = test.select_one("pre.transcript").get_text()
    assert "S: OK [CAPABILITY" in transcript and "“INBOX” holds 2 messages" in transcript
    assert PASSWORD not in transcript

    card = soup(web.post(f"/feedback/mailboxes/{box.id}/check", htmx=True))
    text = card.select_one(".last-check").get_text(" ", strip=True)
    assert "1 auto-reply moved to Loft/Processed" in text and "1 other message left in place" in text
    assert card.select_one(".badge.state-ok").get_text() == "Working"
    assert len(server.raw_messages("Loft/Processed")) == 1


def test_bad_password_shows_the_servers_reply(app, web, admin, server):
    web.post("/feedback/mailboxes/new", mailbox_form(server.port, password="wrong password"))
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
    test = soup(web.post(f"/feedback/mailboxes/{box.id}/test", htmx=True))
    assert "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" in test.select_one(".flash-error").get_text()
    web.post(f"/feedback/mailboxes/{box.id}/check")
    card = soup(web.get("/feedback/")).select_one(f"#mailbox-{box.id}")
    assert card.select_one(".badge.state-fail").get_text() == "Failing"
    assert "NO [AUTHENTICATIONFAILED]" in card.select_one(".last-check .error-text").get_text()


def test_form_errors_are_shown_where_they_were_made(app, web, admin):
    response = web.post("/feedback/mailboxes/new", mailbox_form(993, host="imap.example.com", password=""),
                        htmx=True)
    assert response.status_code == 422
    form = soup(response)
    assert "only allowed for a server on this machine" in form.select_one("#e-security").get_text()
    assert form.select_one("#e-password").get_text() == "Enter the password."
    assert form.select_one("#f-security")["aria-invalid"] == "true"
    response = web.post("/feedback/mailboxes/new", mailbox_form(993, host="imap.example.com", security="ssl",
                                                                 processed_folder="INBOX"))
    assert "must differ" in soup(response).select_one("#e-processed_folder").get_text()
    with app.app_context():
        assert BounceMailbox.select().count() == 0


def test_a_team_admin_cannot_point_a_mailbox_at_this_machine(app, admin):
    """Unless the instance setting "private mail servers" is on (every spelling: tests/test_host_guard.py)."""
    app.config["MAIL_ALLOW_PRIVATE"] = False
    with app.app_context():
        acme = Team.get(Team.name == "Acme")
    _, member = make_member(app, acme, "admin")
    response = member.post("/feedback/mailboxes/new", mailbox_form(993, security="ssl"))
    assert response.status_code == 422
    assert "instance administrator can allow" in soup(response).select_one("#e-host").get_text()


def test_another_teams_mailbox_is_not_found_and_authors_see_nothing(app, web, admin):
    with app.app_context():
        other = make_team("Other")
        theirs = mailbox_for(other, 993, name="Theirs")
        acme = Team.get(Team.name == "Acme")
        mine = mailbox_for(acme, 993, name="Mine")
    assert web.get(f"/feedback/mailboxes/{theirs.id}/edit").status_code == 404
    for action in ("edit", "test", "check", "delete"):
        assert web.post(f"/feedback/mailboxes/{theirs.id}/{action}", mailbox_form(993)).status_code == 404
    with app.app_context():
        assert BounceMailbox.get_by_id(theirs.id).name == "Theirs"
    _, author = make_member(app, acme, "author")
    assert author.get("/feedback/").status_code == 403
    assert author.get(f"/feedback/mailboxes/{mine.id}/edit").status_code == 403
    assert author.post(f"/feedback/mailboxes/{mine.id}/delete").status_code == 403
    assert author.get("/feedback/webhooks").status_code == 403
    _, manager = make_member(app, acme, "manager")
    assert manager.get("/feedback/").status_code == 403
    with app.app_context():
        assert BounceMailbox.get_by_id(mine.id).name == "Mine"


def test_edit_keeps_the_password_and_remove_forgets_the_mailbox(app, web, admin, server):
    web.post("/feedback/mailboxes/new", mailbox_form(server.port))
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
        stored = box.password
    form = soup(web.get(f"/feedback/mailboxes/{box.id}/edit"))
    assert form.select_one("#f-password").get("value") is None
    assert "Leave empty to keep" in form.select_one("#h-password").get_text()
    response = web.post(f"/feedback/mailboxes/{box.id}/edit", mailbox_form(server.port, name="Renamed", password=""))
    assert response.status_code == 302
    with app.app_context():
        box = BounceMailbox.get_by_id(box.id)
        assert (box.name, box.password) == ("Renamed", stored)
    # The card is removed in place: nothing comes back but, out of band, the message the unfollowed
    # redirect above left pending (app/htmx.py delivers flashes with HTMX fragments).
    answer = soup(web.post(f"/feedback/mailboxes/{box.id}/delete", htmx=True))
    assert [element.get("id") for element in answer.find_all(recursive=False)] == ["flashes"]
    with app.app_context():
        assert BounceMailbox.get_or_none(BounceMailbox.id == box.id) is None


# --- TLS -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ssl", "starttls"])
def test_encrypted_connections(ctx, mode):
    server = ImapServer(user=USER, password=PASSWORD, tls=mode)
    try:
        team = make_team()
        raw = send_campaign(team, ["alice@example.com"])
        server.add(dsn("alice@example.com", "5.1.1", "550 5.1.1 User unknown", raw["alice@example.com"]))
        box = mailbox_for(team, server.port, security=mode)
        # The test server's certificate is self-signed: verification refuses it, in words.
        ok, transcript = imap.test_connection(box)
        assert not ok and "TLS failure: the server's certificate could not be verified" in transcript
        ctx.config["SMTP_VALIDATE_CERTS"] = False  # the one switch for a test server's certificate
        ok, transcript = imap.test_connection(box)
        assert ok, transcript
        assert "TLS established: TLSv1.3" in transcript and ("C: STARTTLS" in transcript) == (mode == "starttls")
        assert imap.check_mailbox(box.id)["moved"] == 1
        assert status("alice@example.com", team) == "bounced"
    finally:
        server.stop()


def test_check_now_card_polls_until_the_check_has_run(app, web, admin, server):
    web.post("/feedback/mailboxes/new", mailbox_form(server.port))
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
    later = "2999-01-01T00:00:00"  # a check asked for after the last one: still waiting
    card = soup(web.client.get(f"/feedback/mailboxes/{box.id}?after={later}", headers={"HX-Request": "true"}))
    poller = card.select_one("p.checking")
    assert poller["hx-trigger"] == "load delay:3s" and f"/feedback/mailboxes/{box.id}?after=" in poller["hx-get"]
    done = soup(web.post(f"/feedback/mailboxes/{box.id}/check", htmx=True))  # immediate huey: already done
    assert done.select_one("p.checking") is None and done.select_one(".badge.state-ok") is not None
    since = soup(web.client.get(f"/feedback/mailboxes/{box.id}?after=2000-01-01T00:00:00",
                                headers={"HX-Request": "true"}))
    assert since.select_one("p.checking") is None  # checked since 2000: nothing to wait for
    assert since.select_one(".checking-stalled") is None
    assert web.get(f"/feedback/mailboxes/{box.id}").status_code == 302


def test_a_huge_message_is_left_unread(ctx, server, monkeypatch):
    monkeypatch.setattr(imap, "MAX_MESSAGE_BYTES", 2000)
    team = make_team()
    server.add(personal_mail() + b"x" * 3000)
    server.add(auto_reply())
    box = mailbox_for(team, server.port)
    summary = imap.check_mailbox(box.id)
    assert (summary["too_large"], summary["auto_replies"], summary["moved"]) == (1, 1, 1)
    assert sum(1 for line in server.log if "BODY.PEEK[]" in line and line.startswith("UID FETCH 2 ")) == 1
    assert "1 message over 10 MB left in place" in imap.summary_in_words(summary)
    assert len(server.raw_messages("INBOX")) == 1


# --- In a real browser (headless Chromium, phone size) -------------------------------------------

shot = screenshots("feedback")


def test_in_the_browser_add_test_check_and_create_a_webhook_url(app, page, server):
    from playwright.sync_api import expect
    server.add(auto_reply())
    server.add(personal_mail())
    sign_up_admin(page)
    page.goto("/sending/accounts")
    page.get_by_role("link", name="read them from a mailbox or a provider webhook").click()
    expect(page.locator("#mailboxes-empty")).to_be_visible()
    shot(page, "empty")
    page.get_by_role("link", name="Add a bounce mailbox").click()
    page.get_by_role("link", name="Another provider").click()
    page.get_by_label("IMAP host").fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(server.port))
    page.get_by_label("Encryption").select_option("ssl")
    page.get_by_label("User name").fill(USER)
    page.get_by_role("button", name="Save mailbox").click()  # no password: the error comes back in place
    expect(page.locator("#e-password")).to_have_text("Enter the password.")
    expect(page.locator("#e-security")).to_have_count(0)
    page.get_by_label("Encryption").select_option("none")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Save mailbox").click()
    expect(page).to_have_url(re.compile(r"/feedback/#mailbox-\d+$"))
    # The URL changes before the page's scripts have run; a click before htmx is ready posts the form
    # without it (the no-JavaScript path, a page of its own) instead of answering inside the card.
    page.wait_for_load_state()
    card = page.locator("article.mailbox")
    card.get_by_role("button", name="Test connection").click()
    expect(card.locator(".flash-success")).to_contain_text("“INBOX” holds 2 messages")
    card.get_by_role("button", name="Check now").click()
    expect(page.locator("article.mailbox .last-check")).to_contain_text("1 auto-reply moved to Loft/Processed")
    shot(page, "checked")
    page.get_by_role("link", name="Provider webhooks").click()
    page.get_by_role("button", name="Create the Generic JSON URL").click()
    expect(page.locator("#hook-generic code.hook-url")).to_contain_text("/feedback/hooks/generic/")
    shot(page, "webhooks")


def test_waiting_stops_after_two_minutes_without_a_worker(app, web, admin):
    with app.app_context():
        box = mailbox_for(Team.get(Team.name == "Acme"), 993)  # never checked
    card = soup(web.client.get(f"/feedback/mailboxes/{box.id}?after=2000-01-01T00:00:00",
                               headers={"HX-Request": "true"}))
    assert card.select_one("p.checking") is None
    assert "is the worker (huey_consumer) running?" in card.select_one(".checking-stalled").get_text()


def test_check_now_reads_a_mailbox_that_is_off_and_the_schedule_does_not(app, web, admin, server):
    server.add(auto_reply())
    web.post("/feedback/mailboxes/new", mailbox_form(server.port, enabled=""))
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
        assert not box.enabled
        from tasks import bounces as bounce_tasks
        bounce_tasks.check_bounce_mailboxes.call_local()
        assert BounceMailbox.get_by_id(box.id).last_checked_at is None
    card = soup(web.post(f"/feedback/mailboxes/{box.id}/check", htmx=True))
    assert card.select_one(".badge.state-warn").get_text() == "Off"
    assert "1 auto-reply moved" in card.select_one(".last-check").get_text()


def test_the_smtp_accounts_password_is_reused_for_the_same_login(app, web, admin, server):
    from app.models import SmtpAccount
    with app.app_context():
        account = SmtpAccount.create(team=Team.get(Team.name == "Acme"), name="iCloud", host="smtp.mail.me.com",
                                     username=USER, password=security.encrypt(PASSWORD))
    form = soup(web.get(f"/feedback/mailboxes/new?preset=icloud&account={account.id}"))
    assert form.select_one("#f-username")["value"] == USER
    assert form.select_one("#f-smtp_account option[selected]")["value"] == str(account.id)
    response = web.post("/feedback/mailboxes/new", mailbox_form(server.port, smtp_account=str(account.id),
                                                                password=""))
    assert response.status_code == 302
    with app.app_context():
        box = BounceMailbox.get(BounceMailbox.name == "Bounces")
        assert (box.smtp_account_id, box.password) == (account.id, account.password)
    ok = soup(web.post(f"/feedback/mailboxes/{box.id}/test", htmx=True))
    assert ok.select_one(".flash-success") is not None
