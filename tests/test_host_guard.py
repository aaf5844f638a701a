"""The host guard for teams' SMTP accounts and bounce mailboxes (issue 9).

The old check only looked at the text typed, so `127.1`, `0x7f000001`, `2130706433`,
`017700000001`, `0`, names from /etc/hosts, 100.64/10 and 6to4 forms reached loopback
services and "Test connection" became a port scanner. Now the host is resolved, every
address goes through app.netguard (the webhooks' guard), and the connection is opened
to the checked address with the name kept for TLS. These tests turn the instance
setting "private mail servers" OFF (the suite's fixture turns it on for its loopback servers).
"""
import asyncio
import ssl
import socket

import pytest
from aiosmtpd.controller import Controller

from app import netguard
from app.models import BounceMailbox
from app.models import SmtpAccount
from app.models import Team
from app.senders import mailservers
from app.senders import smtp_client
from tests.conftest import free_port
from tests.conftest import soup
from tests.smtp_support import self_signed

SPELLINGS = ["127.1", "0x7f000001", "2130706433", "017700000001", "0", "localhost", "100.64.0.1",
             "2002:7f00:1::1", "::ffff:127.0.0.1", "127.0.0.1", "::1", "10.0.0.5", "169.254.169.254"]


@pytest.fixture
def guarded(app):
    app.config["MAIL_ALLOW_PRIVATE"] = False
    return app


@pytest.fixture
def listener():
    """A bare TCP listener on loopback: the guard must refuse before anything reaches it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock):
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.mark.parametrize("host", SPELLINGS)
def test_every_spelling_of_a_private_address_is_refused(host):
    with pytest.raises(netguard.Refused):
        netguard.check_host(host, 25)
    assert netguard.check_host(host, 25, allow_private=True)


@pytest.mark.parametrize("host", SPELLINGS)
def test_smtp_and_imap_forms_refuse_each_spelling(guarded, web, admin, host):
    smtp = web.post("/sending/accounts/new", {"preset": "generic", "name": "Relay", "host": host, "port": "587",
                                              "tls_mode": "starttls", "per_second": "0", "per_hour": "0",
                                              "per_day": "0", "max_connections": "1", "weight": "1"})
    assert smtp.status_code == 422, host
    message = soup(smtp).select_one("#e-host").get_text()
    assert "Private mail servers" in message and ("loopback" in message or "address" in message)
    imap = web.post("/feedback/mailboxes/new", {"preset": "generic", "name": "Bounces", "host": host, "port": "993",
                                                "security": "ssl", "username": "u", "password": "p",
                                                "folder": "INBOX", "processed_folder": "Loft/Processed"})
    assert imap.status_code == 422, host
    assert "Private mail servers" in soup(imap).select_one("#e-host").get_text()
    assert SmtpAccount.select().count() == 0 and BounceMailbox.select().count() == 0


@pytest.mark.parametrize("host", ["127.1", "0x7f000001", "2130706433", "017700000001", "localhost"])
def test_test_connection_is_not_a_port_scanner(guarded, admin, listener, host):
    """An account stored before the guard (or by hand) is refused at connect time, for SMTP and IMAP alike."""
    port = listener.getsockname()[1]
    team = Team.get(Team.name == "Acme")
    with guarded.test_request_context():
        account = SmtpAccount.create(team=team, name="Old", host=host, port=port, tls_mode="none")
        ok, transcript = smtp_client.test_connection(account)
        assert not ok and "Loft does not connect to" in transcript and "loopback" in transcript
        from app.bounces import imap
        mailbox = BounceMailbox.create(team=team, name="Old", host=host, port=port, security="none",
                                       username="u", password="", folder="INBOX", processed_folder="Done")
        ok, transcript = imap.test_connection(mailbox)
        assert not ok and "Loft does not connect to" in transcript
    assert connections(listener) == 0


def test_the_engine_pauses_an_account_the_guard_refuses(guarded, admin, listener):
    """The sending engine opens the same guarded client: nothing reaches the listener, the account pauses."""
    from app.sending import engine
    from tests.sending_support import launched
    from tests.sending_support import make_team
    with guarded.test_request_context():
        team = make_team("Guarded")
        campaign, _contacts, _account = launched(team, 3, listener.getsockname()[1])
        SmtpAccount.update(host="127.1").where(SmtpAccount.team == team).execute()
        engine.run_campaign(campaign.id)
        account = SmtpAccount.get(SmtpAccount.team == team)
        assert account.status == "paused" and "Loft does not connect to 127.1" in account.paused_reason
    assert connections(listener) == 0


# --- The checked address is the one connected to; the NAME is kept for TLS --------------------

@pytest.fixture(scope="module")
def name_only_certificate(tmp_path_factory):
    """A certificate for the name mx.test only (no IP address in it)."""
    return self_signed(tmp_path_factory.mktemp("guard-cert"), ["mx.test"], ca=True)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def test_implicit_tls_goes_to_the_checked_address_and_verifies_the_name(guarded, name_only_certificate):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*name_only_certificate)
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, ssl_context=server_context)
    controller.start()
    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    async def talk(**extra):
        client_context = ssl.create_default_context(cafile=name_only_certificate[0])
        smtp = smtp_client.SMTP(hostname="mx.test", port=port, use_tls=True, tls_context=client_context,
                                timeout=10, resolver=resolver, **extra)
        await smtp.connect()
        name = smtp.transport.get_extra_info("ssl_object").server_hostname
        peer = smtp.transport.get_extra_info("peername")[0]
        await smtp.quit()
        return name, peer

    try:
        with guarded.app_context(), pytest.raises(smtp_client.HostRefused):
            asyncio.run(talk())  # mx.test "resolves" to loopback: refused with the setting off
        name, peer = asyncio.run(talk(allow_private=True))
    finally:
        controller.stop()
    assert name == "mx.test" and peer == "127.0.0.1"  # certificate checked for the name, socket to the address
    assert lookups == ["mx.test", "mx.test"]  # one lookup per connection, never a second one to race


def test_private_mail_servers_is_an_instance_setting_off_by_default(guarded, web, admin):
    from app import settings as instance_settings
    page = soup(web.get("/admin/settings"))
    box = page.select_one("#f-private_mail_hosts")
    assert box is not None and not box.has_attr("checked")
    form = {"base_url": "https://mail.example.com", "default_from_email": "loft@example.com",
            "smtp_host": "127.0.0.1", "smtp_port": "1025", "smtp_tls": "none", "team_creation": "invited"}
    web.post("/admin/settings", dict(form, private_mail_hosts="1"))
    assert soup(web.get("/admin/settings")).select_one("#f-private_mail_hosts").has_attr("checked")
    with guarded.app_context():
        assert instance_settings.get_settings()["private_mail_hosts"] is True
    # Now the LAN relay is accepted...
    saved = web.post("/sending/accounts/new", {"preset": "generic", "name": "LAN relay", "host": "10.0.0.5",
                                              "port": "587", "tls_mode": "starttls", "per_second": "0",
                                              "per_hour": "0", "per_day": "0", "max_connections": "1",
                                              "weight": "1"})
    assert saved.status_code == 302
    # ...and unticking the box (an absent checkbox) turns it off again.
    web.post("/admin/settings", form)
    with guarded.app_context():
        assert instance_settings.get_settings()["private_mail_hosts"] is False


@pytest.mark.parametrize("protocol", ["smtp", "imap"])
@pytest.mark.parametrize("typed, says", [
    ("", "Enter the {P} server's host name"),
    ("{p}://mail.example.com", "Enter only the host name"),
    ("mail.example.com:587", "Enter only the host name"),
    ("mail example.com", "not a valid host name"),
    ("127.0.0.1", "Loft connects only to public mail servers"),
])
def test_smtp_and_imap_forms_refuse_a_host_in_the_same_words(app, protocol, typed, says):
    with app.test_request_context("/"):
        problem = mailservers.host_field_error(typed.format(p=protocol), protocol, allow_private=False)
    assert problem and says.format(P=protocol.upper()) in problem
    assert f"{protocol}.example.com" in problem or "public mail servers" in problem
