"""SMTP submission: a real server on 127.0.0.1 (app/submission/server.py in a thread), a real smtplib client,
and what it accepts sent on by the transactional stream into a real SMTP sink, DKIM-signed."""
import base64
import email
import email.policy
import os
import smtplib
import ssl
import subprocess
import time

import dkim
import pytest

from app.api import keys
from app.config import ROOT
from app.consent import suppression
from app.models import ROLES
from app.models import Contact
from app.models import SenderDomain
from app.models import Team
from app.models import TxMessage
from app.models import TxStatus
from app.models import utcnow
from app.senders import domains
from app.submission import server as submission
from app.teams.permissions import can
from app.transactional import service
from tasks import transactional as tx_tasks
from tests.conftest import free_port
from tests.conftest import soup
from tests.sending_support import make_account
from tests.sending_support import make_team

MESSAGE = (b"From: Acme Shop <news@acme.test>\r\nTo: Ann <ann@example.com>\r\nSubject: Your code\r\n"
           b"Bcc: hidden@example.com\r\n\r\nYour sign-in code is 4711.\r\n")


@pytest.fixture
def team(ctx):
    team = make_team()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    return team


@pytest.fixture
def sink(smtp, team):
    server = smtp()
    make_account(team, server.port)
    return server


def key_for(team, role="manager"):
    """(ApiKey, the raw key) of `team` with `role`."""
    return keys.create_key(team, name=f"{role} app", role=role)


@pytest.fixture
def tls_dir(tmp_path):
    return tmp_path / "submission-tls"


@pytest.fixture
def submission_server(ctx, tls_dir):
    """start(on_accepted=queue, **settings) -> the port of a started submission server; all stop after."""
    controllers = []

    def start(on_accepted=tx_tasks.queue, **settings):
        ctx.config.update(settings)
        port = free_port()
        controllers.append(submission.start(ctx, on_accepted=on_accepted, host="127.0.0.1", port=port,
                                            generated_tls_dir=tls_dir))
        return port
    yield start
    for controller in controllers:
        controller.stop()


def client_context(tls_dir):
    """A client that trusts only the server's self-signed certificate (and checks it names 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(tls_dir / "cert.pem"))


def connect(port, tls_dir=None):
    """An smtplib client after EHLO, and after STARTTLS when `tls_dir` holds the certificate to trust."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=20)
    client.ehlo("app.example.com")
    if tls_dir is not None:
        client.starttls(context=client_context(tls_dir))
        client.ehlo("app.example.com")
    return client


def refused(call, *args):
    """(code, words) of the SMTP error `call(*args)` raises."""
    with pytest.raises(smtplib.SMTPResponseException) as caught:
        call(*args)
    return caught.value.smtp_code, caught.value.smtp_error.decode()


def dkim_verifies(raw):
    row = SenderDomain.get(SenderDomain.domain == "acme.test")
    dns = {f"{row.dkim_selector}._domainkey.acme.test.".encode(): domains.dkim_record(row).encode()}
    return dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name))


def test_starttls_and_auth_plain_submit_a_message_that_is_sent_signed_with_its_history(team, sink, submission_server,
                                                                                        tls_dir):
    port = submission_server(SUBMISSION_LOOPBACK_PLAIN=False)
    key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    assert "auth" in client.esmtp_features and "PLAIN" in client.esmtp_features["auth"]
    assert "LOGIN" in client.esmtp_features["auth"]
    assert int(client.esmtp_features["size"]) == submission.max_message_bytes()
    client.user, client.password = "shop", raw_key
    code, _words = client.auth("PLAIN", client.auth_plain)
    assert code == 235
    client.mail("news@acme.test")
    client.rcpt("ann@example.com")
    code, words = client.data(MESSAGE)
    client.quit()

    [tx] = TxMessage.select()
    assert code == 250 and f"Queued as transactional message {tx.id}" in words.decode()
    assert (tx.team_id, tx.api_key_id, tx.to_email, tx.from_email) == (team.id, key.id, "ann@example.com",
                                                                       "news@acme.test")
    assert tx.status == TxStatus.SENT and tx.subject == "Your code"
    history = service.status_history(tx)
    assert [status for status, _at, _detail in history] == ["queued", "sent"]
    assert "submitted over SMTP" in history[0][2]
    [(mail_from, rcpt, delivered)] = sink.handler.messages
    assert (mail_from, rcpt) == ("news@acme.test", "ann@example.com")
    message = email.message_from_bytes(delivered, policy=email.policy.default)
    assert message["Bcc"] is None and message["List-Unsubscribe"] is None
    assert message.get_body(("plain",)).get_content().strip() == "Your sign-in code is 4711."
    assert delivered.startswith(b"DKIM-Signature:") and dkim_verifies(delivered)


def test_auth_login_with_the_key_id_as_username_queues_and_the_send_task_delivers(team, sink, submission_server,
                                                                                   tls_dir, caplog):
    caplog.set_level("INFO", logger="app.submission.server")
    accepted = []
    port = submission_server(on_accepted=accepted.extend)
    key, raw_key = key_for(team, "admin")
    client = connect(port, tls_dir)
    client.user, client.password = str(key.id), raw_key
    assert client.auth("LOGIN", client.auth_login)[0] == 235
    assert client.sendmail("news@acme.test", ["ann@example.com", "bob@example.com"], MESSAGE) == {}
    client.quit()

    assert [tx.to_email for tx in accepted] == ["ann@example.com", "bob@example.com"]
    assert f"API key {key.prefix} (team {team.id}) submitted 2 messages" in caplog.text
    assert {row.status for row in TxMessage.select()} == {TxStatus.QUEUED}  # stored and handed on, not sent yet
    assert sink.handler.messages == []
    for tx in accepted:
        assert tx_tasks.send_tx.call_local(tx.id) == TxStatus.SENT
    assert sorted(rcpt for _from, rcpt, _raw in sink.handler.messages) == ["ann@example.com", "bob@example.com"]
    assert all(dkim_verifies(raw) for _from, _rcpt, raw in sink.handler.messages)


def test_a_submitted_message_is_on_the_transactional_page_with_its_history(ctx, web, admin, smtp,
                                                                            submission_server, tls_dir):
    team = Team.get(Team.name == "Acme")
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    make_account(team, smtp().port)
    _key, raw_key = key_for(team)
    client = connect(submission_server(), tls_dir)
    client.login("shop", raw_key)
    client.sendmail("news@acme.test", ["ann@example.com"], MESSAGE)
    client.quit()

    [tx] = TxMessage.select()
    listed = soup(web.get("/transactional/")).select_one(f"#tx-{tx.id}")
    assert "Your code" in listed.text and "ann@example.com" in listed.text
    history = soup(web.get(f"/transactional/{tx.id}")).select("#tx-history li")
    assert [item["data-status"] for item in history] == ["queued", "sent"]
    assert "submitted over SMTP" in history[0].text


def test_a_random_or_revoked_key_is_refused_at_auth(team, sink, submission_server, tls_dir, caplog):
    caplog.set_level("INFO", logger="app.submission.server")
    port = submission_server()
    key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    for password in ("not-a-key", keys.new_raw_key()):
        client.user, client.password = "shop", password
        code, words = refused(client.auth, "PLAIN", client.auth_plain)
        assert code == 535 and "not a live API key" in words
    keys.revoke_key(team, key.id)
    client.user, client.password = "shop", raw_key
    assert refused(client.auth, "LOGIN", client.auth_login)[0] == 535
    client.quit()
    assert TxMessage.select().count() == 0
    assert caplog.text.count("a sign-in from 127.0.0.1 with no live API key was refused") == 3
    assert raw_key not in caplog.text


def test_mail_before_auth_is_refused(team, sink, submission_server, tls_dir):
    port = submission_server()
    client = connect(port, tls_dir)
    code, words = client.mail("news@acme.test")
    assert code == 530 and b"Authentication required" in words
    client.quit()


def test_auth_needs_starttls_except_from_loopback_while_that_is_allowed(team, sink, submission_server, tls_dir):
    _key, raw_key = key_for(team)
    strict = connect(submission_server(SUBMISSION_LOOPBACK_PLAIN=False))
    assert "starttls" in strict.esmtp_features and "auth" not in strict.esmtp_features
    strict.user, strict.password = "shop", raw_key
    code, _words = refused(strict.auth, "PLAIN", strict.auth_plain)
    assert code == 538
    strict.quit()

    local = connect(submission_server(SUBMISSION_LOOPBACK_PLAIN=True))
    assert "auth" in local.esmtp_features and "starttls" in local.esmtp_features
    local.login("shop", raw_key)
    assert local.sendmail("news@acme.test", ["ann@example.com"], MESSAGE) == {}
    local.quit()
    assert len(sink.handler.messages) == 1


def test_only_roles_that_may_send_get_past_mail_and_the_others_hear_why(team, sink, submission_server, tls_dir):
    port = submission_server()
    for role in ROLES:
        _key, raw_key = key_for(team, role)
        client = connect(port, tls_dir)
        client.login(f"{role}-app", raw_key)
        code, words = client.mail("news@acme.test")
        if can(role, "send"):
            assert code == 250, role
        else:
            assert code == 550 and "may not send email" in words.decode(), role
            assert "Administrator or Manager" in words.decode()
        client.quit()
    assert {"guest", "author"} <= {role for role in ROLES if not can(role, "send")}


def test_a_sender_off_the_teams_verified_domains_is_refused_with_553(team, sink, submission_server, tls_dir):
    port = submission_server()
    _key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    client.login("shop", raw_key)
    code, words = client.mail("ceo@elsewhere.example")
    assert code == 553 and "not on a verified sender domain of the team Acme" in words.decode()
    # The envelope is fine, the From header is not: refused after DATA, and nothing is stored.
    assert client.mail("news@acme.test")[0] == 250
    assert client.rcpt("ann@example.com")[0] == 250
    code, words = client.data(MESSAGE.replace(b"From: Acme Shop <news@acme.test>", b"From: ceo@elsewhere.example"))
    assert code == 553 and "elsewhere.example is not a verified sender domain" in words.decode()
    client.quit()
    assert TxMessage.select().count() == 0 and sink.handler.messages == []


def test_another_teams_key_cannot_send_as_this_team_or_see_its_suppressions(team, sink, submission_server, tls_dir):
    other = make_team("Other")
    _key, raw_key = key_for(other)
    suppression.suppress(team.id, "email", "blocked@example.com", reason="manual")
    client = connect(submission_server(), tls_dir)
    client.login("other", raw_key)
    code, words = client.mail("news@acme.test")
    assert code == 553 and "the team Other" in words.decode()
    client.quit()


def test_recipients_past_the_limit_are_refused_with_452_and_the_rest_go_out(team, sink, submission_server, tls_dir):
    port = submission_server(SUBMISSION_MAX_RECIPIENTS=3)
    _key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    client.login("shop", raw_key)
    client.mail("news@acme.test")
    for number in range(3):
        assert client.rcpt(f"reader{number}@example.com")[0] == 250
    assert client.rcpt("reader0@example.com")[0] == 250  # the same address again is no new recipient
    code, words = client.rcpt("reader3@example.com")
    assert code == 452 and "at most 3 per message" in words.decode()
    assert client.data(MESSAGE)[0] == 250
    client.quit()
    assert sorted(rcpt for _f, rcpt, _r in sink.handler.messages) == [f"reader{n}@example.com" for n in range(3)]


def test_a_message_over_the_size_limit_is_refused_with_552(team, sink, submission_server, tls_dir):
    port = submission_server(SUBMISSION_MAX_BYTES=5_000)
    _key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    assert int(client.esmtp_features["size"]) == 5_000
    client.login("shop", raw_key)
    code, _words = client.mail("news@acme.test", ["SIZE=6000"])  # declared too big: refused before the data
    assert code == 552
    client.rset()
    client.mail("news@acme.test")
    client.rcpt("ann@example.com")
    code, _words = client.data(MESSAGE + (b"y" * 70 + b"\r\n") * 100)  # 7,300 bytes
    assert code == 552
    client.quit()
    assert TxMessage.select().count() == 0 and sink.handler.messages == []


def test_the_size_and_recipients_allowed_are_never_more_than_the_transactional_stream_takes(ctx, team):
    ctx.config.update(SUBMISSION_MAX_BYTES=10**9)
    assert submission.max_message_bytes() == service.max_raw_bytes()
    ctx.config.update(SUBMISSION_MAX_BYTES=1_000)
    assert submission.max_message_bytes() == 1_000
    ctx.config.update(SUBMISSION_MAX_BYTES=0)
    assert submission.max_message_bytes() == service.max_raw_bytes()
    ctx.config.update(SUBMISSION_MAX_RECIPIENTS=10**6)
    assert submission.max_recipients() == service.MAX_SUBMITTED_RECIPIENTS


def test_suppressed_recipients_are_refused_at_rcpt_and_an_unsubscribed_one_is_not(team, sink, submission_server,
                                                                                   tls_dir):
    Contact.create(team=team, email="bounced@example.com", domain="example.com", status="bounced")
    Contact.create(team=team, email="complained@example.com", domain="example.com", status="complained")
    suppression.suppress(team.id, "email", "blocked@example.com", reason="manual")
    Contact.create(team=team, email="gone@example.com", domain="example.com", status="unsubscribed")
    suppression.suppress(team.id, "email", "gone@example.com", reason="unsubscribed")
    _key, raw_key = key_for(team)
    client = connect(submission_server(), tls_dir)
    client.login("shop", raw_key)
    client.mail("news@acme.test")
    for address, why in (("bounced@example.com", "its mail hard-bounced"),
                         ("complained@example.com", "reported this team's mail as spam"),
                         ("blocked@example.com", "suppression list (manual)")):
        code, words = client.rcpt(address)
        assert code == 550 and f"Loft will not send to {address}" in words.decode() and why in words.decode()
    code, words = client.rcpt("not an address")
    assert code in (501, 553)
    assert client.rcpt("gone@example.com")[0] == 250
    assert client.data(MESSAGE)[0] == 250
    client.quit()
    assert [rcpt for _f, rcpt, _r in sink.handler.messages] == ["gone@example.com"]


def test_repeated_auth_failures_from_one_address_are_throttled_even_for_a_good_key(ctx, team, sink,
                                                                                     submission_server, tls_dir):
    port = submission_server(LOGIN_MAX_FAILURES=1, LOGIN_THROTTLE_SECONDS=600)  # 4 failures per address
    _key, raw_key = key_for(team)
    client = connect(port, tls_dir)
    for _attempt in range(4):
        client.user, client.password = "shop", keys.new_raw_key()
        assert refused(client.auth, "PLAIN", client.auth_plain)[0] == 535
    client.user, client.password = "shop", raw_key
    code, words = refused(client.auth, "PLAIN", client.auth_plain)
    assert code == 454 and "Too many failed sign-ins from 127.0.0.1: wait 10 minutes" in words
    client.quit()


def test_a_self_signed_certificate_is_made_once_and_a_configured_one_is_used(ctx, tmp_path, caplog):
    folder = tmp_path / "tls"
    with caplog.at_level("INFO", logger="app.submission.server"):
        submission.tls_context("", "", folder, ["mail.example.com", "localhost"])
    assert "made a self-signed TLS certificate for mail.example.com, localhost" in caplog.text
    cert = (folder / "cert.pem").read_bytes()
    assert oct((folder / "key.pem").stat().st_mode & 0o777) == "0o600"
    caplog.clear()
    with caplog.at_level("INFO", logger="app.submission.server"):
        submission.tls_context("", "", folder, ["mail.example.com"])
    assert (folder / "cert.pem").read_bytes() == cert and "made" not in caplog.text

    configured = submission.tls_context(str(folder / "cert.pem"), str(folder / "key.pem"), tmp_path / "unused",
                                        ["x"])
    assert isinstance(configured, ssl.SSLContext) and not (tmp_path / "unused").exists()
    with pytest.raises(submission.SubmissionSetupError, match="Set both LOFT_SUBMISSION_CERT and"):
        submission.tls_context(str(folder / "cert.pem"), "", folder, ["x"])
    (tmp_path / "broken.pem").write_text("not a certificate")
    with pytest.raises(submission.SubmissionSetupError, match="Cannot load the TLS certificate"):
        submission.tls_context(str(tmp_path / "broken.pem"), str(folder / "key.pem"), folder, ["x"])


def test_loopback_is_this_machine_only():
    assert submission.is_loopback(("127.0.0.1", 5000)) and submission.is_loopback(("127.8.0.1", 5000))
    assert submission.is_loopback(("::1", 5000, 0, 0)) and submission.is_loopback(("::ffff:127.0.0.1", 1, 0, 0))
    assert not submission.is_loopback(("192.0.2.7", 5000)) and not submission.is_loopback(("2001:db8::1", 1, 0, 0))
    assert not submission.is_loopback(None) and not submission.is_loopback(("not an ip", 1))


def test_the_cli_queues_what_it_accepts_and_the_tx_consumer_process_sends_it(app, ctx, team, sink, tmp_path,
                                                                              tls_dir):
    """End to end through real processes: smtplib -> `flask submission run` -> the tx queue's file -> a
    `huey_consumer wsgi.tx_huey` -> the sink."""
    cert, key_file, _made = submission.self_signed_pair(tls_dir, ["localhost"])
    _key, raw_key = key_for(team)
    port = free_port()
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_HUEY_PATH=str(tmp_path / "huey.db"), LOFT_SUBMISSION_CERT=cert, LOFT_SUBMISSION_KEY=key_file,
               LOFT_SUBMISSION_PORT=str(port), LOFT_LOG_LEVEL="WARNING", LOFT_MAIL_ALLOW_PRIVATE="true",
               FLASK_APP="wsgi")
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "flask"), "submission", "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = process.stdout.readline().decode()
        assert f'"msg": "SMTP submission listening", "host": "127.0.0.1", "port": {port}' in line, line
        client = connect(port, tls_dir)
        client.login("shop", raw_key)
        assert client.sendmail("news@acme.test", ["ann@example.com"], MESSAGE) == {}
        client.quit()
    finally:
        process.terminate()
        process.wait(timeout=10)
    [tx] = TxMessage.select()
    # Queued in the tx queue's file beside LOFT_HUEY_PATH; no consumer has run yet.
    assert tx.status == TxStatus.QUEUED and (tmp_path / "huey-tx.db").exists() and sink.handler.messages == []

    log_path = tmp_path / "tx-consumer.log"
    with open(log_path, "wb") as log:
        consumer = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.tx_huey", "-w", "1",
                                     "--no-periodic"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a generous bound for a loaded box; only a hang reaches it
        while TxMessage.get_by_id(tx.id).status == TxStatus.QUEUED and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        consumer.terminate()
        consumer.wait(timeout=10)
    assert TxMessage.get_by_id(tx.id).status == TxStatus.SENT, log_path.read_text(errors="replace")[-2000:]
    [(_from, rcpt, delivered)] = sink.handler.messages
    assert rcpt == "ann@example.com" and dkim_verifies(delivered)


def test_connections_past_the_limit_are_told_421_and_a_closed_one_frees_its_place(team, submission_server):
    port = submission_server(SUBMISSION_MAX_CONNECTIONS=2)
    first, second = connect(port), connect(port)
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtplib.SMTP("127.0.0.1", port, timeout=20)
    assert caught.value.smtp_code == 421 and b"Too many connections" in caught.value.smtp_error
    first.starttls(context=ssl._create_unverified_context())  # the TLS layer is no second connection
    first.quit()
    deadline = time.monotonic() + 30  # the server notices the close on its own loop; only a leak reaches this
    while True:
        try:
            third = connect(port)
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline, "a closed connection kept its place"
            time.sleep(0.05)
    assert third.noop()[0] == 250 and second.noop()[0] == 250
    third.quit()
    second.quit()


def test_auth_plain_with_a_malformed_blob_is_answered_once_with_why(team, submission_server, tls_dir):
    client = connect(submission_server(), tls_dir)
    code, words = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"only-one-part").decode())
    assert code == 501 and b"authzid NUL username NUL password" in words
    code, _words = client.docmd("AUTH", "PLAIN %%%")
    assert code == 501
    assert client.noop()[0] == 250  # the session goes on: nothing was left unanswered
    client.quit()


def test_x_loft_track_turns_tracking_on_and_does_not_go_out(team, sink, submission_server):
    port = submission_server()
    _key, raw_key = key_for(team)
    tracked = (b"From: Acme Shop <news@acme.test>\r\nTo: ann@example.com\r\nSubject: Your order\r\n"
               b"X-Loft-Track: opens, clicks\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
               b'<html><body><p><a href="https://shop.example.com/orders/7">Your order</a></p></body></html>\r\n')
    client = connect(port)  # from loopback: AUTH without STARTTLS (LOFT_SUBMISSION_LOOPBACK_PLAIN)
    client.login("shop", raw_key)
    client.sendmail("news@acme.test", ["ann@example.com"], tracked)
    code, words = refused(client.sendmail, "news@acme.test", ["bob@example.com"],
                          tracked.replace(b"opens, clicks", b"everything"))
    client.quit()

    assert code >= 500 and "X-Loft-Track" in words
    [tx] = TxMessage.select()
    assert tx.track_opens and tx.track_clicks and tx.status == TxStatus.SENT
    [(_from, _rcpt, delivered)] = sink.handler.messages
    message = email.message_from_bytes(delivered, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    assert message["X-Loft-Track"] is None
    assert "/o/" in html and "/c/" in html and "shop.example.com" not in html


def test_a_suspended_team_gets_550_and_a_capped_one_451_at_mail_with_the_reason(team, sink, submission_server, tls_dir):
    from app.teams import standing
    port = submission_server()
    _key, raw_key = key_for(team)
    standing.suspend(team, "Phishing reports", by_user=None)
    client = connect(port, tls_dir)
    client.login("shop", raw_key)
    code, words = client.mail("news@acme.test")
    assert code == 550 and "suspended by the instance administrator: Phishing reports" in words.decode()
    standing.resume(team)
    standing.set_cap(team, 0)
    code, words = client.mail("news@acme.test")
    assert code == 451 and "reached its monthly limit of 0 emails" in words.decode()
    standing.set_cap(team, None)
    assert client.mail("news@acme.test")[0] == 250
    client.quit()
    assert TxMessage.select().count() == 0 and sink.handler.messages == []


def test_a_queued_message_of_a_team_suspended_meanwhile_waits_with_the_reason(team, sink):
    from app.teams import standing
    _key, _raw = key_for(team)
    [tx] = service.submit_raw(_key, mail_from="news@acme.test", recipients=["ann@example.com"], raw=MESSAGE)
    standing.suspend(team, "Phishing reports", by_user=None)
    attempt = service.deliver(tx.id)
    assert attempt.status == TxStatus.QUEUED and "Phishing reports" in TxMessage.get_by_id(tx.id).waiting
    assert sink.handler.messages == []
    standing.resume(team)
    TxMessage.update(waited_at=None).where(TxMessage.id == tx.id).execute()
    assert service.deliver(tx.id).status == TxStatus.SENT and len(sink.handler.messages) == 1
