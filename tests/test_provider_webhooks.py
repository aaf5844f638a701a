"""Provider webhooks (SES through SNS, SendGrid, Postmark, Mailgun, generic JSON): each request is
signed in the test with real keys the provider's way, POSTed through the Flask test client to the
team's URL, and must change the contact; a tampered, stale, replayed or unsigned one is refused and
changes nothing; another team's URL never touches this team's contacts. Plus the settings page."""
import base64
import datetime
import hashlib
import hmac
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.bounces import provider_webhooks as hooks
from app.models import Contact
from app.models import Event
from app.models import ProviderHook
from app.models import Team
from tests.accounts_support import make_member
from tests.bounces_support import send_campaign
from tests.conftest import soup
from tests.sending_support import make_team

ALICE, BOB = "alice@example.com", "bob@example.com"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"


@pytest.fixture
def acme(app, tmp_path):
    """Team Acme with a campaign really sent to Alice and Bob."""
    app.config["SNS_CERT_DIR"] = str(tmp_path / "sns-certs")
    app.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1)
    with app.app_context():
        team = make_team()
        raw = send_campaign(team, [ALICE, BOB])
    return team, raw


def enabled(app, team, provider, key=None):
    with app.app_context():
        hook = hooks.enable(team, provider)
        if key:
            hook = hooks.save_key(hook, key)
        return hook, hooks.secret_of(hook)


def status(app, team, email):
    with app.app_context():
        return Contact.get((Contact.team == team) & (Contact.email == email)).status


def received(app, hook):
    with app.app_context():
        return ProviderHook.get_by_id(hook.id).received_count


def url(hook):
    return f"/feedback/hooks/{hook.provider}/{hook.token}"


# --- Amazon SES through SNS ---------------------------------------------------------------------

@pytest.fixture
def sns_key(app, acme):
    """A key and self-signed certificate put in the SNS certificate cache, as if fetched from Amazon."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    with app.app_context():
        path = hooks.cert_cache_path(CERT_URL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key


def sns(key, kind, message, version="2", **extra):
    envelope = {"Type": kind, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
                "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback", "Message": message,
                "Timestamp": "2026-11-23T10:00:00.000Z", "SignatureVersion": version, "SigningCertURL": CERT_URL}
    envelope.update(extra)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(hooks.sns_string_to_sign(envelope), padding.PKCS1v15(), digest)
    envelope["Signature"] = base64.b64encode(signature).decode()
    return envelope


def ses_bounce(email, bounce_type="Permanent", message_id=""):
    return json.dumps({"notificationType": "Bounce",
                       "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                                  "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                                         "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
                       "mail": {"destination": [email], "headers": [{"name": "Message-ID", "value": message_id}]}})


def ses_complaint(email):
    return json.dumps({"notificationType": "Complaint",
                       "complaint": {"complainedRecipients": [{"emailAddress": email}],
                                     "complaintFeedbackType": "abuse"}, "mail": {"destination": [email]}})


def test_ses_bounce_and_complaint_with_sns_signatures_v1_and_v2(app, client, acme, sns_key):
    team, raw = acme
    hook, _ = enabled(app, team, "ses")
    response = client.post(url(hook), data=json.dumps(sns(sns_key, "Notification", ses_bounce(ALICE), "1")),
                           content_type="text/plain; charset=UTF-8")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["applied"] == 1
    assert status(app, team, ALICE) == "bounced"
    response = client.post(url(hook), data=json.dumps(sns(sns_key, "Notification", ses_complaint(BOB), "2")))
    assert response.status_code == 200 and status(app, team, BOB) == "complained"
    assert received(app, hook) == 2


def test_ses_transient_bounce_is_soft(app, client, acme, sns_key):
    team, _ = acme
    hook, _ = enabled(app, team, "ses")
    message = json.dumps({"notificationType": "Bounce", "bounce": {
        "bounceType": "Transient", "bounceSubType": "MailboxFull",
        "bouncedRecipients": [{"emailAddress": ALICE}]}, "mail": {"destination": [ALICE]}})
    assert client.post(url(hook), data=json.dumps(sns(sns_key, "Notification", message))).status_code == 200
    assert status(app, team, ALICE) == "active"  # one soft bounce does not suppress
    with app.app_context():
        [event] = Event.select().where(Event.type == "bounced")
        assert (event.data["kind"], event.data["source"]) == ("soft", "ses")


def test_ses_tampered_or_foreign_certificate_is_refused(app, client, acme, sns_key):
    team, _ = acme
    hook, _ = enabled(app, team, "ses")
    signed = sns(sns_key, "Notification", ses_bounce(BOB))
    tampered = dict(signed, Message=ses_bounce(ALICE))
    response = client.post(url(hook), data=json.dumps(tampered))
    assert (response.status_code, response.get_json()["error"]) == (401, "SNS signature does not verify")
    foreign = dict(signed, SigningCertURL="https://evil.example.com/sns.pem")
    response = client.post(url(hook), data=json.dumps(foreign))
    assert response.status_code == 401 and "not an Amazon SNS certificate" in response.get_json()["error"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = client.post(url(hook), data=json.dumps(sns(other_key, "Notification", ses_bounce(ALICE))))
    assert response.status_code == 401
    assert client.post(url(hook), data="{not json").status_code == 400
    assert status(app, team, ALICE) == "active" and status(app, team, BOB) == "active"
    assert received(app, hook) == 0


def test_ses_subscription_is_confirmed_only_on_amazon(app, client, acme, sns_key, monkeypatch):
    team, _ = acme
    hook, _ = enabled(app, team, "ses")
    visited = []
    # The one network call: recorded here instead of reaching Amazon (the signature check above is real).
    monkeypatch.setattr(hooks, "https_get", lambda target, **kw: visited.append(target) or b"<ok/>")
    evil = sns(sns_key, "SubscriptionConfirmation", "confirm", Token="t",
               SubscribeURL="https://169.254.169.254/latest/meta-data/")
    response = client.post(url(hook), data=json.dumps(evil))
    assert response.status_code == 400 and visited == []
    good_url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn&Token=t"
    response = client.post(url(hook), data=json.dumps(sns(sns_key, "SubscriptionConfirmation", "confirm", Token="t",
                                                          SubscribeURL=good_url)))
    assert response.status_code == 200 and response.get_json()["subscription"] == "confirmed"
    assert visited == [good_url]


# --- SendGrid -----------------------------------------------------------------------------------

def sendgrid_keys():
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return key, public


def sendgrid_post(client, hook, key, events, tamper=False):
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    if tamper:
        body = body.replace(b"bounce", b"Bounce")
    return client.post(url(hook), data=body, content_type="application/json",
                       headers={"X-Twilio-Email-Event-Webhook-Signature": signature,
                                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})


def test_sendgrid_signed_events(app, client, acme):
    team, _ = acme
    key, public = sendgrid_keys()
    hook, _ = enabled(app, team, "sendgrid", public)
    events = [{"email": ALICE, "event": "bounce", "type": "bounce", "status": "5.1.1",
               "reason": "550 5.1.1 The email account that you tried to reach does not exist"},
              {"email": BOB, "event": "spamreport"}, {"email": ALICE, "event": "open"}]
    response = sendgrid_post(client, hook, key, events, tamper=True)
    assert response.status_code == 401 and status(app, team, ALICE) == "active"
    response = sendgrid_post(client, hook, *sendgrid_keys()[:1], events)  # signed with someone else's key
    assert response.status_code == 401
    response = sendgrid_post(client, hook, key, events)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert status(app, team, ALICE) == "bounced" and status(app, team, BOB) == "complained"


def test_sendgrid_blocked_does_not_blame_the_contact(app, client, acme):
    team, _ = acme
    key, public = sendgrid_keys()
    hook, _ = enabled(app, team, "sendgrid", public)
    events = [{"email": ALICE, "event": "bounce", "type": "blocked", "status": "5.7.1",
               "reason": "550 5.7.1 Message rejected due to local policy"}]
    assert sendgrid_post(client, hook, key, events).status_code == 200
    assert status(app, team, ALICE) == "active"


# --- Postmark -----------------------------------------------------------------------------------

def test_postmark_basic_auth(app, client, acme):
    team, _ = acme
    hook, password = enabled(app, team, "postmark")
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": ALICE,
              "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}
    complaint = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": BOB}
    wrong = base64.b64encode(f"{hook.username}:not-it".encode()).decode()
    response = client.post(url(hook), json=bounce, headers={"Authorization": f"Basic {wrong}"})
    assert response.status_code == 401 and status(app, team, ALICE) == "active"
    assert client.post(url(hook), json=bounce).status_code == 401
    right = base64.b64encode(f"{hook.username}:{password}".encode()).decode()
    assert client.post(url(hook), json=bounce, headers={"Authorization": f"Basic {right}"}).status_code == 200
    assert client.post(url(hook), json=complaint, headers={"Authorization": f"Basic {right}"}).status_code == 200
    assert status(app, team, ALICE) == "bounced" and status(app, team, BOB) == "complained"


def test_postmark_soft_bounce_and_auto_responder(app, client, acme):
    team, _ = acme
    hook, password = enabled(app, team, "postmark")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{hook.username}:{password}".encode()).decode()}
    soft = {"RecordType": "Bounce", "Type": "SoftBounce", "Email": ALICE, "Details": "452 4.2.2 Mailbox full"}
    away = {"RecordType": "Bounce", "Type": "AutoResponder", "Email": BOB, "Details": "I am away"}
    assert client.post(url(hook), json=soft, headers=auth).get_json()["applied"] == 1
    ignored = client.post(url(hook), json=away, headers=auth).get_json()
    assert (ignored["reports"], ignored["ignored"]) == (0, "Bounce")
    assert status(app, team, ALICE) == "active" and status(app, team, BOB) == "active"
    with app.app_context():
        assert [e.data["kind"] for e in Event.select().where(Event.type == "bounced")] == ["soft"]


# --- Mailgun ------------------------------------------------------------------------------------

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"


def mailgun_body(event, key=MAILGUN_KEY, timestamp=None, token="tok-1"):
    timestamp = str(timestamp or int(time.time()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event}


def test_mailgun_signed_failures_and_complaints_stale_and_replayed(app, client, acme):
    team, _ = acme
    hook, _ = enabled(app, team, "mailgun", MAILGUN_KEY)
    failed = {"event": "failed", "severity": "permanent", "recipient": ALICE,
              "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"}}
    forged = mailgun_body(failed, key="key-not-the-right-one-at-all-000000")
    assert client.post(url(hook), json=forged).status_code == 401
    stale = mailgun_body(failed, timestamp=int(time.time()) - 3600)
    assert client.post(url(hook), json=stale).status_code == 403
    assert status(app, team, ALICE) == "active"
    good = mailgun_body(failed)
    assert client.post(url(hook), json=good).status_code == 200
    assert status(app, team, ALICE) == "bounced"
    replay = client.post(url(hook), json=good)
    assert (replay.status_code, replay.get_json()["error"]) == (403, "replayed request")
    complained = mailgun_body({"event": "complained", "recipient": BOB}, token="tok-2")
    assert client.post(url(hook), json=complained).status_code == 200
    assert status(app, team, BOB) == "complained"


def test_mailgun_temporary_failure_is_soft(app, client, acme):
    team, _ = acme
    hook, _ = enabled(app, team, "mailgun", MAILGUN_KEY)
    event = {"event": "failed", "severity": "temporary", "recipient": ALICE,
             "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}}
    assert client.post(url(hook), json=mailgun_body(event)).status_code == 200
    assert status(app, team, ALICE) == "active"
    with app.app_context():
        assert [e.data["kind"] for e in Event.select().where(Event.type == "bounced")] == ["soft"]


# --- Generic JSON ---------------------------------------------------------------------------------

def generic_post(client, hook, secret, payload, timestamp=None, tamper=False):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = str(timestamp or int(time.time()))
    signature = hooks.generic_signature(secret, timestamp, body)
    if tamper:
        body = body.replace(b"bob", b"alice")
    return client.post(url(hook), data=body, content_type="application/json",
                       headers={"X-Loft-Timestamp": timestamp, "X-Loft-Signature": "sha256=" + signature})


def test_generic_json_signed_tampered_malformed_replayed(app, client, acme):
    team, _ = acme
    hook, secret = enabled(app, team, "generic")
    bounce = {"type": "bounce", "email": BOB, "hard": True, "status": "5.1.1", "reason": "user unknown"}
    response = generic_post(client, hook, secret, bounce, tamper=True)
    assert (response.status_code, response.get_json()["error"]) == (401, "signature does not verify")
    assert status(app, team, ALICE) == "active"
    assert generic_post(client, hook, secret, b"{broken").status_code == 400
    assert generic_post(client, hook, secret, {"type": "bounce"}).status_code == 400
    assert generic_post(client, hook, secret, bounce, timestamp=int(time.time()) - 3600).status_code == 403
    timestamp = str(int(time.time()))
    body = json.dumps(bounce).encode()
    signed = {"X-Loft-Timestamp": timestamp, "X-Loft-Signature": hooks.generic_signature(secret, timestamp, body)}
    first = client.post(url(hook), data=body, content_type="application/json", headers=signed)
    assert first.status_code == 200 and status(app, team, BOB) == "bounced"
    replay = client.post(url(hook), data=body, content_type="application/json", headers=signed)
    assert (replay.status_code, replay.get_json()["error"]) == (403, "replayed request")
    complaint = {"type": "complaint", "email": ALICE}
    assert generic_post(client, hook, secret, complaint).status_code == 200
    assert status(app, team, ALICE) == "complained"
    with app.app_context():
        assert ProviderHook.get_by_id(hook.id).received_count == 2


def test_another_teams_url_cannot_touch_this_teams_contacts(app, client, acme):
    team, _ = acme
    with app.app_context():
        other = make_team("Other")
    theirs, their_secret = enabled(app, other, "generic")
    mine, _ = enabled(app, team, "generic")
    payload = {"type": "bounce", "email": ALICE, "hard": True, "status": "5.1.1"}
    response = generic_post(client, theirs, their_secret, payload)  # valid for Other: Other never mailed Alice
    assert response.status_code == 200 and response.get_json()["applied"] == 0
    assert status(app, team, ALICE) == "active"
    # Other's secret on Acme's URL does not verify; an unknown token or the wrong provider is not found.
    assert generic_post(client, mine, their_secret, payload).status_code == 401
    assert client.post(f"/feedback/hooks/generic/{theirs.token}x", json=payload).status_code == 404
    assert client.post(f"/feedback/hooks/mailgun/{theirs.token}", json=payload).status_code == 404
    assert status(app, team, ALICE) == "active"


# --- Deliveries ---------------------------------------------------------------------------------

def delivered_events(app, team):
    with app.app_context():
        rows = Event.select().where((Event.team == team) & (Event.type == "delivered")).order_by(Event.id)
        return [(e.data["source"], e.contact.email) for e in rows]


def test_every_provider_reports_deliveries_once_and_they_reach_outgoing_webhooks(app, client, acme, sns_key):
    from app.models import Send
    from app.models import WebhookDelivery
    from app.webhooks import delivery as outgoing
    from app.webhooks import services as endpoints
    from tests.webhooks_support import Receiver

    team, _ = acme
    receiver = Receiver()
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the receiver is on loopback
    try:
        with app.app_context():
            endpoint = endpoints.create_endpoint(team, {"url": receiver.url, "event_types": ["delivered"]},
                                                 allow_private=True)
            outgoing.dispatch()  # the dispatcher starts after the events already there
        generic, secret = enabled(app, team, "generic")
        # Two timestamps a second apart, fixed before either post: read at each post, the two could be the same
        # second, and the second post was then refused as a replay (CI, once).
        first = int(time.time())
        assert generic_post(client, generic, secret, {"type": "delivered", "email": ALICE},
                            timestamp=first).status_code == 200
        again = generic_post(client, generic, secret, {"type": "delivered", "email": ALICE}, timestamp=first - 1)
        assert again.get_json()["applied"] == 0  # the same delivery twice is one event
        ses = json.dumps({"notificationType": "Delivery", "delivery": {"recipients": [BOB]},
                          "mail": {"destination": [BOB]}})
        hook, _ = enabled(app, team, "ses")
        assert client.post(url(hook), data=json.dumps(sns(sns_key, "Notification", ses))).status_code == 200
        assert delivered_events(app, team) == [("generic", ALICE), ("ses", BOB)]
        for provider in ("sendgrid", "postmark", "mailgun"):
            with app.app_context():
                Event.delete().where(Event.type == "delivered").execute()
            if provider == "sendgrid":
                key, public = sendgrid_keys()
                hook, _ = enabled(app, team, "sendgrid", public)
                response = sendgrid_post(client, hook, key, [{"email": BOB, "event": "delivered"}])
            elif provider == "postmark":
                hook, password = enabled(app, team, "postmark")
                auth = base64.b64encode(f"{hook.username}:{password}".encode()).decode()
                response = client.post(url(hook), json={"RecordType": "Delivery", "Recipient": BOB},
                                       headers={"Authorization": f"Basic {auth}"})
            else:
                hook, _ = enabled(app, team, "mailgun", MAILGUN_KEY)
                response = client.post(url(hook), json=mailgun_body({"event": "delivered", "recipient": BOB},
                                                                    token="tok-d"))
            assert response.status_code == 200 and response.get_json()["applied"] == 1, provider
            assert delivered_events(app, team) == [(provider, BOB)]
        with app.app_context():
            # Delivery is news about a message already sent: the ledger and the contact stay as they were.
            assert {s.status for s in Send.select()} == {"sent"}
            assert outgoing.dispatch() >= 1
            outgoing.send_due()
            assert WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint,
                                                  WebhookDelivery.status == "delivered").count() >= 1
        payloads = [json.loads(r["body"]) for r in receiver.requests]
        assert {p["type"] for p in payloads} == {"delivered"}
        assert BOB in {p["contact"]["email"] for p in payloads}
    finally:
        receiver.stop()
    assert status(app, team, ALICE) == "active" and status(app, team, BOB) == "active"


# --- Settings page ------------------------------------------------------------------------------

def test_settings_page_create_key_rotate_and_roles(app, web, admin):
    page = soup(web.get("/feedback/webhooks"))
    assert [h.get_text(strip=True) for h in page.select("section.hook h2")] == list(hooks.PROVIDERS.values())
    card = soup(web.post("/feedback/webhooks/generic/enable", htmx=True))
    hook_url = card.select_one("code.hook-url").get_text()
    assert hook_url.startswith("http://loft.test/feedback/hooks/generic/")
    secret = card.select_one("code.hook-secret").get_text()
    with app.app_context():
        hook = ProviderHook.get(ProviderHook.provider == "generic")
        assert hooks.secret_of(hook) == secret and hook.secret != secret  # stored encrypted
    rotated = soup(web.post("/feedback/webhooks/generic/rotate", htmx=True))
    assert rotated.select_one("code.hook-url").get_text() != hook_url
    assert rotated.select_one("code.hook-secret").get_text() != secret
    assert web.client.post(hook_url.removeprefix("http://loft.test"), json={}).status_code == 404

    web.post("/feedback/webhooks/sendgrid/enable")
    bad = web.post("/feedback/webhooks/sendgrid/key", {"key": "not a key"}, htmx=True)
    assert bad.status_code == 422 and "verification key" in soup(bad).select_one(".flash-error").get_text()
    good = web.post("/feedback/webhooks/sendgrid/key", {"key": sendgrid_keys()[1]}, htmx=True)
    assert "A key is saved" in soup(good).select_one("#key-sendgrid-help").get_text()
    postmark = soup(web.post("/feedback/webhooks/postmark/enable", htmx=True))
    assert postmark.select_one("code.hook-url").get_text().startswith("http://loft:")
    assert web.post("/feedback/webhooks/nosuch/enable").status_code == 404

    with app.app_context():
        acme = Team.get(Team.name == "Acme")
    _, author = make_member(app, acme, "author")
    assert author.get("/feedback/webhooks").status_code == 403
    assert author.post("/feedback/webhooks/generic/rotate").status_code == 403
    off = web.post("/feedback/webhooks/generic/delete", htmx=True)
    assert soup(off).select_one("#hook-generic form button").get_text().startswith("Create")


@pytest.mark.parametrize("depth", [50, 100_000])
def test_deeply_nested_json_is_refused_with_400(app, client, acme, sns_key, depth):
    """Deep nesting made the JSON parser (or code walking its result) raise RecursionError: a 500."""
    team, _ = acme
    deep = "[" * depth + "]" * depth
    generic, secret = enabled(app, team, "generic")
    response = generic_post(client, generic, secret, deep.encode())
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "JSON" in response.get_json()["error"]
    ses, _ = enabled(app, team, "ses")
    assert client.post(url(ses), data=deep).status_code == 400  # before any signature is checked
    inner = json.dumps(sns(sns_key, "Notification", '{"bounce": ' + deep + "}"))
    assert client.post(url(ses), data=inner).status_code == 400  # signed, deep inside the SES Message
    assert status(app, team, ALICE) == "active" and status(app, team, BOB) == "active"
    with app.app_context():
        assert ProviderHook.get_by_id(ses.id).received_count == 0
        assert "JSON" in ProviderHook.get_by_id(generic.id).last_error
