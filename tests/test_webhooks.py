"""Outgoing webhooks against a real HTTP receiver on loopback (http.server in a thread):
signatures a receiver can check, retries with backoff, the SSRF guard, pages, team isolation, roles."""
import datetime
import json

import pytest

from app.models import Contact
from app.models import Event
from app.models import Team
from app.models import WebhookDelivery
from app.models import WebhookEndpoint
from app.models import utcnow
from app.webhooks import delivery
from app.webhooks import services
from app.webhooks import ssrf
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.webhooks_support import Receiver


@pytest.fixture
def private_ok(app, ctx):
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    yield
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False


def acme():
    return Team.get(Team.name == "Acme")


def add_endpoint(web, url, types=("opened", "bounced"), description="CRM"):
    response = web.post("/webhooks/new", {"url": url, "description": description, "event_types": list(types)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return WebhookEndpoint.select().order_by(WebhookEndpoint.id.desc()).first()


def reveal(web, endpoint):
    response = web.post(f"/webhooks/{endpoint.id}/secret", {"action": "reveal"}, htmx=True)
    assert response.status_code == 200
    return soup(response).select_one("#secret-value")["value"]


def event(team, type, contact=None, **data):
    return Event.create(team=team, contact=contact, campaign_id=7, type=type, data=data)


# --- The guard ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:10.1.2.3]/", "private"),
    ("http://10.0.0.5/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://172.16.3.4/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00::1]/", "private"),
    ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 around 10.0.0.1
    ("http://[2002:7f00:1::1]/", "loopback"),  # 6to4 around 127.0.0.1
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://localhost:5000/", "loopback"),  # resolved by the real system resolver
    ("ftp://example.com/", "https://"),
    ("file:///etc/passwd", "https://"),
    ("javascript:alert(1)", "https://"),
    ("https://user:secret@example.com/", "user name or password"),
    ("https://", "no host"),
    ("", "Enter the URL"),
])
def test_guard_refuses_private_targets_and_other_schemes(app, url, words):
    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check(url)
    assert words in str(refused.value)


def test_guard_checks_every_address_a_name_resolves_to(app, ctx):
    def resolver(host, port):
        return {"public.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.1"],
                "v6.test": ["2606:2800:220:1:248:1893:25c8:1946"]}[host]
    target = ssrf.check("https://public.test/in?a=1", resolver=resolver)
    assert (target.host, target.port, target.path, target.addresses) == ("public.test", 443, "/in?a=1",
                                                                          ["93.184.216.34"])
    assert ssrf.check("http://v6.test:8080/", resolver=resolver).port == 8080
    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check("https://mixed.test/", resolver=resolver)
    assert "mixed.test (10.0.0.1)" in str(refused.value)
    assert ssrf.check("http://127.0.0.1:9/", allow_private=True).addresses == ["127.0.0.1"]


def test_the_connection_goes_to_the_checked_address_not_a_fresh_lookup(app, receiver):
    """DNS rebinding: the name is resolved once, checked, and that very address is connected to."""
    server = receiver(200)
    answers = iter([["127.0.0.1"], ["93.184.216.34"]])  # a second lookup would give another address
    status, excerpt = delivery.post(f"http://rebind.test:{server.port}/x", '{"a":1}', {"Content-Type": "application/json"},
                                    allow_private_targets=True, resolver=lambda host, port: next(answers))
    assert (status, excerpt) == (200, "answer 200")
    [request] = server.requests
    assert request["headers"]["Host"] == f"rebind.test:{server.port}"  # the URL's name, not the address
    assert request["path"] == "/x" and request["body"] == b'{"a":1}'


# --- Delivering -----------------------------------------------------------------------------------

def test_events_are_delivered_signed_and_a_500_is_retried_later(app, web, admin, receiver, private_ok):
    server = receiver(500, 200)
    endpoint = add_endpoint(web, server.url)
    secret = reveal(web, endpoint)
    assert secret.startswith("whsec_")
    delivery.dispatch()  # the cursor starts here: older events are never replayed
    team = acme()
    ada = Contact.create(team=team, email="ada@example.com", domain="example.com")
    opened = event(team, "opened", ada, machine=False)
    event(team, "sent", ada)  # not a chosen type
    other = Team.create(name="Other")
    event(other, "opened")  # another team's event never reaches this endpoint

    assert delivery.dispatch() == 1
    assert delivery.dispatch() == 0  # the cursor moved: nothing twice
    now = utcnow()
    assert delivery.send_due(now=now) == 1
    [row] = WebhookDelivery.select()
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.next_attempt_at == now + datetime.timedelta(seconds=60)
    assert row.response_excerpt == "answer 500" and "500" in row.last_error

    assert delivery.send_due(now=now + datetime.timedelta(seconds=30)) == 0  # not due yet
    assert delivery.send_due(now=now + datetime.timedelta(seconds=61)) == 1
    row = WebhookDelivery.get_by_id(row.id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 2, 200, "")

    assert len(server.requests) == 2
    for request in server.requests:
        headers = request["headers"]
        assert request["path"] == "/hooks/loft?x=1"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Loft-Event"] == "opened" and headers["X-Loft-Delivery"] == str(row.id)
        # What a receiver does: recompute the HMAC over the raw body with the secret it copied.
        assert delivery.verify(secret, headers["X-Loft-Timestamp"], request["body"], headers["X-Loft-Signature"])
        assert not delivery.verify("whsec_wrong", headers["X-Loft-Timestamp"], request["body"],
                                   headers["X-Loft-Signature"])
        assert not delivery.verify(secret, headers["X-Loft-Timestamp"], request["body"] + b" ",
                                   headers["X-Loft-Signature"])
    body = json.loads(server.requests[0]["body"])
    assert body["id"] == opened.id and body["type"] == "opened" and body["team"] == team.id
    assert body["campaign_id"] == 7 and body["contact"] == {"id": ada.id, "email": "ada@example.com"}
    assert body["data"] == {"machine": False} and body["at"].endswith("Z")

    page = soup(web.get(f"/webhooks/{endpoint.id}"))
    cells = page.select_one(f"#delivery-{row.id}")
    assert cells.select_one(".badge").get_text(strip=True) == "Delivered"
    assert cells.select_one("td[data-label=Attempts]").get_text(strip=True) == "2"


def test_backoff_schedule_then_failed(app, web, admin, receiver, private_ok):
    server = receiver(503)
    endpoint = add_endpoint(web, server.url, types=("bounced",))
    delivery.dispatch()
    event(acme(), "bounced", kind="hard")
    delivery.dispatch()
    [row] = WebhookDelivery.select()
    now = utcnow()
    waits = []
    for attempt in range(1, 7):
        row = delivery.deliver(row.id, now=now)
        assert row.attempts == attempt
        if row.next_attempt_at:
            waits.append((row.next_attempt_at - now).total_seconds())
            now = row.next_attempt_at
    assert waits == [60, 300, 1800, 7200, 43200]
    assert (row.status, row.next_attempt_at, row.last_status_code) == ("failed", None, 503)
    assert len(server.requests) == 6

    # "Retry now" gives a failed delivery one more attempt, at once.
    server.statuses = [200]
    response = web.post(f"/webhooks/{endpoint.id}/deliveries/{row.id}/retry")
    assert response.status_code == 302
    row = WebhookDelivery.get_by_id(row.id)
    assert (row.status, row.attempts) == ("delivered", 7)


def test_redirects_are_not_followed(app, web, admin, receiver, private_ok):
    target = receiver(200)
    server = receiver(302, headers={"Location": target.url})
    endpoint = add_endpoint(web, server.url)
    test = delivery.test_delivery(endpoint)
    row = delivery.deliver(test.id)
    assert row.status == "pending" and row.last_status_code == 302 and "redirect" in row.last_error
    assert target.requests == []


def test_a_private_url_is_refused_when_not_allowed(app, web, admin, receiver, ctx):
    server = receiver(200)
    response = web.post("/webhooks/new", {"url": server.url, "event_types": ["opened"]})
    assert response.status_code == 422
    page = soup(response)
    error = page.select_one("#e-url").get_text()
    assert "127.0.0.1" in error and "loopback" in error and "LOFT_WEBHOOKS_ALLOW_PRIVATE" in error
    assert page.select_one("#f-url")["aria-invalid"] == "true"
    assert page.select_one("#f-url")["value"] == server.url  # what was typed stays
    assert WebhookEndpoint.select().count() == 0
    fragment = web.post("/webhooks/new", {"url": "http://10.0.0.1/", "event_types": ["opened"]}, htmx=True)
    assert fragment.status_code == 422 and soup(fragment).select_one("form#webhook-form")
    assert soup(fragment).select_one("html") is None
    assert "private" in soup(fragment).select_one("#e-url").get_text()


def test_the_address_is_checked_again_at_delivery_time(app, web, admin, receiver, private_ok):
    server = receiver(200)
    endpoint = add_endpoint(web, server.url)
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False  # the administrator turned it off meanwhile
    row = delivery.deliver(delivery.test_delivery(endpoint).id)
    assert row.status == "pending" and row.last_status_code is None
    assert row.last_error.startswith("Not sent:") and "loopback" in row.last_error
    assert server.requests == []


def test_old_finished_deliveries_leave_the_log_pending_ones_stay(app, web, admin, ctx):
    from tasks import webhooks as webhook_tasks
    endpoint = WebhookEndpoint.create(team=acme(), url="https://93.184.216.34/x", secret="",
                                      event_types=["opened"])
    old = utcnow() - datetime.timedelta(days=45)
    for i, status in enumerate(("delivered", "failed", "pending")):
        WebhookDelivery.create(endpoint=endpoint, event_id=i + 1, event_type="opened", payload="{}", status=status,
                               created_at=old)
    WebhookDelivery.create(endpoint=endpoint, event_id=9, event_type="opened", payload="{}", status="delivered")
    webhook_tasks.prune_log.call_local()  # LOFT_WEBHOOK_LOG_DAYS = 30
    left = sorted((d.event_id, d.status) for d in WebhookDelivery.select())
    assert left == [(3, "pending"), (9, "delivered")]


def test_form_errors(app, web, admin, ctx):
    response = web.post("/webhooks/new", {"url": "https://93.184.216.34/x"})
    assert response.status_code == 422
    assert "at least one event type" in soup(response).select_one("#e-event_types").get_text()
    response = web.post("/webhooks/new", {"url": "https://93.184.216.34/x", "event_types": ["opened", "bogus"]})
    assert response.status_code == 422 and "bogus" in soup(response).select_one("#e-event_types").get_text()
    response = web.post("/webhooks/new", {"url": "gopher://93.184.216.34/"})
    assert response.status_code == 422 and "https://" in soup(response).select_one("#e-url").get_text()
    assert WebhookEndpoint.select().count() == 0


# --- Pages -----------------------------------------------------------------------------------------

def test_pages_empty_state_edit_disable_test_event_rotate_delete(app, web, admin, receiver, private_ok):
    page = soup(web.get("/webhooks/"))
    assert page.select_one("#webhooks-empty a")["href"] == "/webhooks/new"
    assert page.select_one("#endpoints") is None

    server = receiver(204)
    endpoint = add_endpoint(web, server.url, types=("clicked",))
    page = soup(web.get("/webhooks/"))
    row = page.select_one(f"#endpoint-{endpoint.id}")
    assert row.select_one("a.webhook-url").get_text() == server.url
    assert [b.get_text() for b in row.select("td[data-label=Events] .badge")] == ["clicked"]
    page = soup(web.get(f"/webhooks/{endpoint.id}"))
    assert page.select_one("#deliveries-empty")

    # Send test event: delivered at once, shown in the log.
    response = web.post(f"/webhooks/{endpoint.id}/test", follow_redirects=True)
    page = soup(response)
    assert "answered 204" in page.select_one(".flash-success").get_text()
    assert server.requests[-1]["headers"]["X-Loft-Event"] == "test"
    assert len(page.select("#deliveries tbody tr")) == 1

    # Edit: new types; the form shows the stored values first.
    form = soup(web.get(f"/webhooks/{endpoint.id}/edit"))
    assert form.select_one("#f-type-clicked").has_attr("checked") and not form.select_one("#f-type-opened").has_attr("checked")
    response = web.post(f"/webhooks/{endpoint.id}/edit", {"url": server.url, "event_types": ["opened", "clicked"],
                                                          "description": "Warehouse"})
    assert response.status_code == 302
    assert services.types_of(WebhookEndpoint.get_by_id(endpoint.id)) == ["opened", "clicked"]

    # Disabled: no new deliveries are made for it.
    web.post(f"/webhooks/{endpoint.id}/enabled", {"enabled": "0"})
    assert not WebhookEndpoint.get_by_id(endpoint.id).enabled
    delivery.dispatch()
    event(acme(), "opened")
    assert delivery.dispatch() == 0
    web.post(f"/webhooks/{endpoint.id}/enabled", {"enabled": "1"})
    event(acme(), "clicked")
    assert delivery.dispatch() == 1

    # Rotate: a new secret, which signs from now on.
    old = reveal(web, endpoint)
    response = web.post(f"/webhooks/{endpoint.id}/secret", {"action": "rotate"}, htmx=True)
    new = soup(response).select_one("#secret-value")["value"]
    assert new != old and reveal(web, endpoint) == new
    web.post(f"/webhooks/{endpoint.id}/test")
    request = server.requests[-1]
    assert delivery.verify(new, request["headers"]["X-Loft-Timestamp"], request["body"],
                           request["headers"]["X-Loft-Signature"])

    response = web.post(f"/webhooks/{endpoint.id}/delete")
    assert response.status_code == 302
    assert WebhookEndpoint.select().count() == 0 and WebhookDelivery.select().count() == 0


def test_delivery_log_pagination_and_filter(app, web, admin, private_ok, receiver):
    endpoint = add_endpoint(web, receiver(200).url)
    now = utcnow()
    WebhookDelivery.insert_many([{"endpoint": endpoint.id, "event_id": i, "event_type": "opened", "payload": "{}",
                                  "status": "failed" if i % 10 == 0 else "delivered", "attempts": 1,
                                  "created_at": now, "delivered_at": None if i % 10 == 0 else now}
                                 for i in range(1, 31)]).execute()
    page = soup(web.get(f"/webhooks/{endpoint.id}"))
    assert len(page.select("#deliveries tbody tr")) == 25
    assert page.select_one(".pager a[rel=next]")["href"].endswith("page=2")
    page2 = web.get(f"/webhooks/{endpoint.id}?page=2", headers={"HX-Request": "true", "HX-Target": "deliveries"})
    fragment = soup(page2)
    assert fragment.select_one("html") is None and len(fragment.select("#deliveries tbody tr")) == 5
    failed = soup(web.get(f"/webhooks/{endpoint.id}?status=failed"))
    assert len(failed.select("#deliveries tbody tr")) == 3
    assert all(row.select_one(".badge").get_text() == "Failed" for row in failed.select("#deliveries tbody tr"))
    assert failed.select_one(".tabs a[aria-current=page]").get_text().startswith("Failed")


def test_another_teams_endpoint_is_not_found(app, web, admin):
    other = Team.create(name="Other")
    theirs = WebhookEndpoint.create(team=other, url="https://93.184.216.34/", event_types=["opened"],
                                    secret="x")
    row = WebhookDelivery.create(endpoint=theirs, event_id=1, event_type="opened", payload="{}")
    for url in (f"/webhooks/{theirs.id}", f"/webhooks/{theirs.id}/edit"):
        assert web.get(url).status_code == 404
    for url in (f"/webhooks/{theirs.id}/edit", f"/webhooks/{theirs.id}/delete", f"/webhooks/{theirs.id}/enabled",
                f"/webhooks/{theirs.id}/secret", f"/webhooks/{theirs.id}/test",
                f"/webhooks/{theirs.id}/deliveries/{row.id}/retry"):
        assert web.post(url, {"url": "https://93.184.216.34/y", "event_types": ["opened"]}).status_code == 404
    assert WebhookEndpoint.get_by_id(theirs.id).url == "https://93.184.216.34/"
    # And a delivery of another endpoint through one's own endpoint id: 404 too.
    mine = WebhookEndpoint.create(team=acme(), url="https://93.184.216.34/", event_types=["opened"], secret="x")
    assert web.post(f"/webhooks/{mine.id}/deliveries/{row.id}/retry").status_code == 404


@pytest.mark.parametrize("role, allowed", [("admin", True), ("manager", False), ("author", False), ("guest", False)])
def test_role_matrix(app, admin, role, allowed):
    team = acme()
    endpoint = WebhookEndpoint.create(team=team, url="https://93.184.216.34/", event_types=["opened"], secret="x")
    _, member = make_member(app, team, role)
    expected = 200 if allowed else 403
    assert member.get("/webhooks/").status_code == expected
    assert member.get(f"/webhooks/{endpoint.id}").status_code == expected
    assert member.get("/webhooks/new").status_code == expected
    response = member.post(f"/webhooks/{endpoint.id}/secret", {"action": "reveal"}, htmx=True)
    assert response.status_code == expected
    if not allowed:
        assert "whsec" not in response.get_data(as_text=True)
        assert member.post(f"/webhooks/{endpoint.id}/delete").status_code == 403
        assert WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint.id) is not None


def test_dispatch_in_batches_and_a_tick_sends_many_in_parallel(app, web, admin, receiver, private_ok):
    server = receiver(200)
    endpoint = add_endpoint(web, server.url, types=("clicked",))
    delivery.dispatch()
    team = acme()
    now = utcnow()
    Event.insert_many([{"team": team.id, "type": "clicked" if i % 2 else "opened", "at": now,
                        "data": {"n": i}} for i in range(120)]).execute()
    assert delivery.dispatch(limit=50, batches=2) == 50  # 100 events read, half of them clicks
    assert delivery.dispatch(limit=50, batches=2) == 10  # the cursor kept the rest
    assert delivery.send_due(limit=500, workers=4) == 60
    assert WebhookDelivery.select().where(WebhookDelivery.status == "delivered").count() == 60
    assert sorted(json.loads(r["body"])["data"]["n"] for r in server.requests) == list(range(1, 120, 2))
    assert WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint).count() == 60


def test_https_connects_to_the_checked_address_and_checks_the_certificate_for_the_name(app, tmp_path):
    """TLS to the pinned address: SNI and the certificate check use the URL's host name."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")])
    moment = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(moment - datetime.timedelta(days=1))
            .not_valid_after(moment + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server = Receiver((201,))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.server.socket = server_context.wrap_socket(server.server.socket, server_side=True)
    try:
        client_context = ssl.create_default_context(cadata=cert_pem.decode())
        to_loopback = lambda host, port: ["127.0.0.1"]  # noqa: E731
        status, _ = delivery.post(f"https://hooks.test:{server.port}/in", "{}", {}, allow_private_targets=True,
                                  resolver=to_loopback, tls_context=client_context)
        assert status == 201 and server.requests[0]["headers"]["Host"] == f"hooks.test:{server.port}"
        with pytest.raises(ssl.SSLCertVerificationError):  # another name: the certificate does not match
            delivery.post(f"https://other.test:{server.port}/in", "{}", {}, allow_private_targets=True,
                          resolver=to_loopback, tls_context=client_context)
    finally:
        server.stop()
