"""Sender domains: the DNS records to publish, "Check DNS" against a real DNS server on loopback
(dnslib), verification, SPF/DKIM/DMARC status in words, DKIM signing checked with dkim.verify,
verified senders, roles and team isolation."""
import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from app import security
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.senders import domains
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.dns_support import free_udp_port

_apps = []


@pytest.fixture(autouse=True)
def current(app):
    """ctx() gives services an app context without holding one across test-client requests."""
    _apps.append(app)
    yield
    _apps.remove(app)


def ctx():
    return _apps[-1].app_context()


def acme():
    return Team.get(Team.name == "Acme")


def add(web, name="example.com"):
    response = web.post("/sending/domains", {"domain": name})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return SenderDomain.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))


def records_on_page(web, row):
    """The records exactly as the page shows them: {key: (name, value)}."""
    page = soup(web.get(f"/sending/domains/{row.id}"))
    return {section["id"].removeprefix("record-"): (section.select_one("code.record-name").get_text(),
                                                    section.select_one("code.record-value").get_text())
            for section in page.select("section.record")}


def publish_all(zone, records):
    for name, value in records.values():
        zone.publish(name, value)


def checks_of(response):
    return {li["data-check"]: (li["data-state"], li.get_text(" ", strip=True))
            for li in soup(response).select("#dns-status li.check")}


def test_domains_page_is_empty_with_an_explanation(admin, web):
    page = soup(web.get("/sending/domains"))
    assert page.select_one("#domains-empty")
    assert page.select_one("label[for=f-domain]").get_text() == "Domain"
    assert page.select_one("nav.tabs a[aria-current=page]").get_text() == "Sender domains"


def test_adding_a_domain_shows_the_records_to_publish(admin, web):
    row = add(web, "Example.COM")
    assert row.domain == "example.com" and row.team_id == acme().id and row.verified_at is None
    records = records_on_page(web, row)
    assert records["verification"] == ("_loft.example.com", f"loft-verification={row.verification_token}")
    name, value = records["dkim"]
    assert name == f"{row.dkim_selector}._domainkey.example.com" and row.dkim_selector.startswith("loft20")
    assert value.startswith("v=DKIM1; k=rsa; p=")
    public = serialization.load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    assert public.key_size == 2048
    assert records["spf"] == ("example.com", "v=spf1 mx ~all")
    assert records["dmarc"] == ("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com")
    listing = soup(web.get("/sending/domains"))
    assert listing.select_one(f"#domain-{row.id} .badge").get_text() == "Not verified yet"


def test_the_dkim_private_key_is_encrypted_at_rest_and_never_shown(app, admin, web):
    row = add(web)
    assert "PRIVATE KEY" not in row.dkim_private_key
    with ctx():
        pem = security.decrypt(row.dkim_private_key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    page = web.get(f"/sending/domains/{row.id}").get_data(as_text=True)
    assert "PRIVATE KEY" not in page and row.dkim_private_key not in page


@pytest.mark.parametrize("text, message", [
    ("", "Enter the domain you send from"),
    ("news@example.com", "not an email address"),
    ("https://example.com", "no https://"),
    ("localhost", "not a valid domain name"),
    ("exa_mple.com", "not a valid domain name"),
    ("-example.com", "not a valid domain name"),
])
def test_a_bad_domain_gets_a_clear_message(admin, web, text, message):
    response = web.post("/sending/domains", {"domain": text})
    assert response.status_code == 422
    page = soup(response)
    assert message in page.select_one("#e-domain").get_text()
    assert page.select_one("#f-domain")["aria-invalid"] == "true"
    assert page.select_one("#f-domain")["value"] == text
    assert SenderDomain.select().count() == 0


def test_the_same_domain_twice_is_refused(admin, web):
    add(web)
    response = web.post("/sending/domains", {"domain": "EXAMPLE.com."})
    assert response.status_code == 422
    assert "example.com is already on the list." in soup(response).select_one("#e-domain").get_text()
    assert SenderDomain.select().count() == 1


def test_unicode_domains_are_stored_in_their_ascii_form(admin, web):
    row = add(web, "bücher.example")
    assert row.domain == "xn--bcher-kva.example"


def test_check_before_publishing_explains_what_is_missing(app, admin, web, dns_zone):
    row = add(web)
    response = web.post(f"/sending/domains/{row.id}/check", htmx=True)
    assert response.status_code == 200
    assert soup(response).select_one("main") is None  # the fragment
    checks = checks_of(response)
    assert checks["verification"][0] == "fail" and "No verification record at _loft.example.com yet" in checks["verification"][1]
    assert checks["dkim"][0] == "fail" and "No DKIM key at" in checks["dkim"][1]
    assert checks["spf"][0] == "fail" and "No SPF record on example.com" in checks["spf"][1]
    assert checks["dmarc"][0] == "warn" and "Gmail and Yahoo require" in checks["dmarc"][1]
    assert SenderDomain.get_by_id(row.id).verified_at is None
    with ctx():
        assert not domains.is_verified_sender(acme().id, "news@example.com")


def test_publishing_the_records_verifies_the_domain(app, admin, web, dns_zone):
    row = add(web)
    publish_all(dns_zone, records_on_page(web, row))  # the values copied from the page, as a person would
    response = web.post(f"/sending/domains/{row.id}/check", htmx=True)
    checks = checks_of(response)
    assert {key: state for key, (state, _) in checks.items()} == {
        "verification": "ok", "dkim": "ok", "spf": "ok", "dmarc": "ok"}
    assert "this team controls the domain" in checks["verification"][1]
    assert "matches the one Loft signs with" in checks["dkim"][1]
    assert "SPF record found: v=spf1 mx ~all" in checks["spf"][1]
    assert "p=none (monitoring only); reports go to mailto:dmarc-reports@example.com" in checks["dmarc"][1]
    assert soup(response).select_one("#dns-status .verified")
    assert SenderDomain.get_by_id(row.id).verified_at is not None
    page = soup(web.get(f"/sending/domains/{row.id}"))
    assert page.select_one("h1 .badge").get_text() == "Verified"
    assert page.select_one("#dns-status li[data-check=dkim]")["data-state"] == "ok"  # the last check is kept
    with ctx():
        team_id = acme().id
        assert domains.verified_domains(team_id) == {"example.com"}
        assert domains.is_verified_sender(team_id, "news@example.com")
        assert domains.is_verified_sender(team_id, "News@Mail.Example.com")  # a subdomain is covered
        assert not domains.is_verified_sender(team_id, "news@notexample.com")
        assert not domains.is_verified_sender(team_id, "news@example.org")
        assert not domains.is_verified_sender(team_id, "not an address")
        assert domains.domain_for_sender(team_id, "a@mail.example.com").id == row.id


def test_team_settings_warn_while_the_default_from_domain_is_not_verified(app, admin, web, dns_zone):
    form = {"name": "Acme", "time_zone": "UTC", "default_from_email": "news@example.com"}
    page = web.post("/teams/settings", form, follow_redirects=True).get_data(as_text=True)
    assert "Mail From news@example.com cannot go out until example.com is verified under Sender domains" in page
    row = add(web)
    publish_all(dns_zone, records_on_page(web, row))
    web.post(f"/sending/domains/{row.id}/check", htmx=True)
    page = web.post("/teams/settings", form, follow_redirects=True).get_data(as_text=True)
    assert "Team settings saved." in page and "cannot go out until" not in page


def test_a_plain_check_redirects_back_with_a_message(app, admin, web, dns_zone):
    row = add(web)
    publish_all(dns_zone, records_on_page(web, row))
    response = web.post(f"/sending/domains/{row.id}/check", follow_redirects=True)
    assert "example.com is verified." in soup(response).select_one(".flash").get_text()


def test_wrong_records_are_explained(app, admin, web, dns_zone):
    row = add(web)
    records = records_on_page(web, row)
    dns_zone.publish("_loft.example.com", "loft-verification=someone-elses-token")
    dns_zone.publish(records["dkim"][0], "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong")
    dns_zone.publish("example.com", "v=spf1 include:_spf.google.com ~all")
    dns_zone.publish("example.com", "v=spf1 mx -all")
    dns_zone.publish("example.com", "google-site-verification=abc")  # other TXT records are ignored
    dns_zone.publish("_dmarc.example.com", "v=DMARC1; rua=mailto:x@example.com")
    checks = checks_of(web.post(f"/sending/domains/{row.id}/check", htmx=True))
    assert checks["verification"][0] == "fail" and "holds a different token" in checks["verification"][1]
    assert checks["dkim"][0] == "fail" and "not the key Loft signs with" in checks["dkim"][1]
    assert checks["spf"][0] == "fail" and "2 SPF records found" in checks["spf"][1]
    assert checks["dmarc"][0] == "fail" and "no valid policy" in checks["dmarc"][1]
    assert SenderDomain.get_by_id(row.id).verified_at is None


def test_spf_that_lets_anyone_send_is_refused(app, admin, web, dns_zone):
    row = add(web)
    dns_zone.publish("example.com", "v=spf1 +all")
    checks = checks_of(web.post(f"/sending/domains/{row.id}/check", htmx=True))
    assert checks["spf"][0] == "fail" and "lets anyone send as example.com" in checks["spf"][1]


def test_an_icloud_account_adds_icloud_to_the_suggested_spf(app, admin, web, dns_zone):
    SmtpAccount.create(team=acme(), name="iCloud", preset="icloud", host="smtp.mail.me.com")
    row = add(web)
    assert records_on_page(web, row)["spf"] == ("example.com", "v=spf1 include:icloud.com ~all")
    dns_zone.publish("example.com", "v=spf1 mx ~all")
    checks = checks_of(web.post(f"/sending/domains/{row.id}/check", htmx=True))
    assert checks["spf"][0] == "warn" and "does not contain include:icloud.com" in checks["spf"][1]


def test_a_dns_server_that_does_not_answer_is_reported_and_verification_kept(app, admin, web, dns_zone):
    row = add(web)
    publish_all(dns_zone, records_on_page(web, row))
    web.post(f"/sending/domains/{row.id}/check", htmx=True)
    app.config["DNS_NAMESERVER"] = f"127.0.0.1:{free_udp_port()}"  # nothing listens there
    with ctx():
        status = domains.check_dns(SenderDomain.get_by_id(row.id), lifetime=0.5)
    assert {check["state"] for key, check in status.items() if key != "checked_at"} == {"error"}
    assert status["verification"]["text"].startswith("Could not look up _loft.example.com:")
    assert SenderDomain.get_by_id(row.id).verified_at is not None


def test_a_malformed_nameserver_setting_is_reported(app, admin, web):
    row = add(web)
    app.config["DNS_NAMESERVER"] = "dns.example.com:53"
    try:
        checks = checks_of(web.post(f"/sending/domains/{row.id}/check", htmx=True))
    finally:
        app.config["DNS_NAMESERVER"] = ""
    assert checks["verification"][0] == "error"
    assert "LOFT_DNS_NAMESERVER must be an IP address" in checks["verification"][1]


# --- DKIM signing ---------------------------------------------------------------------------

MESSAGE = (
    "From: Acme News <news@example.com>\r\n"
    "To: ada@example.org\r\n"
    "Subject: Autumn   news\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <42.7@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "List-Unsubscribe: <https://loft.test/u/abc>, <mailto:unsubscribe@example.com?subject=abc>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "Feedback-ID: 7:1:news:loft\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello Ada,  \r\n\r\nthe autumn news.\r\n"
).encode()


def test_signed_messages_verify_against_the_published_key_through_real_dns(app, admin, web, dns_zone):
    row = add(web)
    publish_all(dns_zone, records_on_page(web, row))
    with ctx():
        signed = domains.sign(MESSAGE, SenderDomain.get_by_id(row.id))
        res = domains.resolver()

    def dnsfunc(name, timeout=5):
        values = domains.txt_records(res, name.decode().rstrip("."))
        return values[0].encode() if values else None

    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    header = signed[:signed.index(b"\r\nFrom:")].decode()
    tags = dict(part.strip().split("=", 1) for part in header.split(":", 1)[1].replace("\r\n\t", "").split(";"))
    assert tags["d"] == "example.com" and tags["s"] == row.dkim_selector and tags["c"] == "relaxed/relaxed"
    signed_headers = tags["h"].split(":")
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
            "feedback-id"} <= set(signed_headers)
    assert "reply-to" not in signed_headers  # only headers that are present (plus over-signing)
    assert all(len(line) <= 998 for line in header.split("\r\n"))
    # Relaxed canonicalization tolerates re-folded whitespace, but not a changed word or header.
    assert dkim.verify(signed.replace(b"Autumn   news", b"Autumn news"), dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"the autumn news", b"the winter news"), dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"https://loft.test/u/abc", b"https://evil.test/u/abc"),
                           dnsfunc=dnsfunc)
    added = signed.replace(b"\r\n\r\nHello", b"\r\nList-Unsubscribe: <https://evil.test/>\r\n\r\nHello")
    assert not dkim.verify(added, dnsfunc=dnsfunc)  # over-signing: a second copy breaks the signature
    with ctx():
        bare = domains.sign(MESSAGE.replace(b"\r\n", b"\n"), SenderDomain.get_by_id(row.id))
    assert dkim.verify(bare, dnsfunc=dnsfunc)  # LF-only input is parsed as dkimpy does


def test_dkim_keys_are_generated_for_a_domain_without_one(app, admin):
    row = SenderDomain.create(team=acme(), domain="example.net")
    with ctx():
        pem, public = domains.dkim_keys(row)
        again = domains.dkim_keys(SenderDomain.get_by_id(row.id))
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert again == (pem, public)  # stored once, encrypted
    assert "PRIVATE" not in SenderDomain.get_by_id(row.id).dkim_private_key
    key = serialization.load_der_public_key(base64.b64decode(public))
    assert key.key_size == 2048


# --- Roles, isolation, removal ----------------------------------------------------------------

@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_manage_domains(app, admin, web, role):
    row = add(web)
    _, member = make_member(app, acme(), role)
    assert member.get("/sending/domains").status_code == 403
    assert member.get(f"/sending/domains/{row.id}").status_code == 403
    assert member.post("/sending/domains", {"domain": "other.example"}).status_code == 403
    assert member.post(f"/sending/domains/{row.id}/check").status_code == 403
    assert member.post(f"/sending/domains/{row.id}/delete").status_code == 403
    assert [d.domain for d in SenderDomain.select()] == ["example.com"]


def test_another_teams_domain_is_not_found(app, admin, web):
    theirs = SenderDomain.create(team=Team.create(name="Other"), domain="theirs.example")
    assert web.get(f"/sending/domains/{theirs.id}").status_code == 404
    assert web.post(f"/sending/domains/{theirs.id}/check").status_code == 404
    assert web.post(f"/sending/domains/{theirs.id}/delete").status_code == 404
    assert SenderDomain.get_or_none(SenderDomain.id == theirs.id) is not None
    assert "theirs.example" not in web.get("/sending/domains").get_data(as_text=True)
    # The same domain may be added by another team: each proves control with its own token.
    assert add(web, "theirs.example").verification_token != theirs.verification_token


def test_removing_a_domain(app, admin, web):
    row = add(web)
    page = soup(web.get(f"/sending/domains/{row.id}"))
    assert "Remove example.com?" in page.select_one("form[action$='/delete'] button")["data-confirm"]
    response = web.post(f"/sending/domains/{row.id}/delete", follow_redirects=True)
    assert "example.com removed" in soup(response).select_one(".flash").get_text()
    assert SenderDomain.select().count() == 0


@pytest.mark.parametrize("body", [
    b"", b"\r\n", b"\r\n\r\n", b"Hello", b"Hello  \t world \r\n", b"a\r\n\r\n\r\n", b" \t \r\n  \r\n",
    b"x\r\n \r\n\t\r\n", b"tab\there\r\nend  ", b"bare\nline feeds\n\n", b"<p>a  b</p>\r\n" * 50 + b"\r\n\r\n",
    b"mixed\r\nbare\nend\r\n", b"lone\rcarriage return  \r\n",
    # Nothing to compress: only the trailing empty lines change (the path a quoted-printable body takes).
    b"one space\r\nbetween words=20\r\n", b"one space\r\nbetween words\r\n\r\n", b"no final line break ",
])
def test_relaxed_body_canonicalization_matches_dkimpy(body):
    from dkim.canonicalization import Relaxed
    expected = Relaxed.canonicalize_body(dkim.rfc822_parse(b"From: a@example.com\r\n\r\n" + body)[1])
    assert domains.relaxed_body(body) == expected
