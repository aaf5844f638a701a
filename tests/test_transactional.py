"""Transactional email through the service and its queue (in immediate mode here), into a real SMTP server
on loopback: what is checked and refused, what is sent (signed, no List-Unsubscribe), retries and failures,
and SMTP submission's submit_raw. The own-lane test with real consumers is tests/test_transactional_lane.py."""
import asyncio
import base64
import datetime
import email
import json
import email.policy

import dkim
import pytest

from app.bounces import outcomes
from app.bounces.parse import delivery_for
from app.bounces.parse import parse_message
from app.consent import suppression
from app.models import ApiKey
from app.models import Contact
from app.models import SenderDomain
from app.models import Template
from app.models import TxEvent
from app.models import TxMessage
from app.models import WebhookEndpoint
from app.models import utcnow
from app.security import encrypt
from app.senders import domains
from app.transactional import service
from app.webhooks import delivery
from tasks import transactional as tx_tasks
from tests.bounces_support import arf
from tests.bounces_support import dsn
from tests.sending_support import make_account
from tests.sending_support import make_team


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


def send(team, **message):
    """accept + queue, as POST /api/v1/tx does; the queue runs inline in the tests."""
    message.setdefault("to", "buyer@example.com")
    message.setdefault("subject", "Your receipt")
    if not {"markdown", "template_id"} & set(message):
        message.setdefault("html", "<p>Thanks for your order.</p>")
    tx = service.accept(team, api_key=None, message=message)
    tx_tasks.queue([tx])
    return TxMessage.get_by_id(tx.id)


def refusal(team, **message):
    with pytest.raises(service.TxError) as caught:
        send(team, **message)
    return caught.value.errors


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_a_message_is_personalised_sent_signed_and_has_its_history(team, sink):
    tx = send(team, to="ann@example.com", to_name="Ann", subject="Order {{ data.order.number }}",
              markdown="Hello {{ contact.first_name }}, your order of {{ data.order.items|length }} items ships.",
              data={"order": {"number": 1042, "items": ["tea", "cup"]}}, reply_to="help@acme.test",
              headers={"X-Order": "1042", "In-Reply-To": "<a@example.com>"}, tags=["receipt", "shop:eu"])

    assert tx.status == "sent" and tx.sent_at is not None and tx.error == ""
    assert [status for status, _at, _detail in service.status_history(tx)] == ["queued", "sent"]
    assert "250" in service.status_history(tx)[-1][2] or "queued" in service.status_history(tx)[-1][2]
    assert tx.tags == ["receipt", "shop:eu"] and tx.subject == "Order 1042"
    [(mail_from, rcpt, raw)] = sink.handler.messages
    assert (mail_from, rcpt) == ("news@acme.test", "ann@example.com")
    message = parsed(raw)
    assert message["Subject"] == "Order 1042"
    assert message["Reply-To"] == "help@acme.test" and message["X-Order"] == "1042"
    assert message["Message-ID"] == f"<{tx.message_id}>"
    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message
    text = message.get_body(("plain",)).get_content()
    assert "Hello Ann, your order of 2 items ships." in text
    assert "Unsubscribe" not in text and "1 Main Street" not in text  # no marketing footer
    row = SenderDomain.get(SenderDomain.domain == "acme.test")
    dns = {f"{row.dkim_selector}._domainkey.acme.test.".encode(): domains.dkim_record(row).encode()}
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name))


def test_a_template_of_the_team_is_the_body_and_its_name_the_default_subject(team, sink):
    template = Template.create(team=team, name="Password reset", kind="html",
                               body='<p>Reset: <a href="https://app.example.com/r/{{ data.token }}">here</a></p>')
    tx = send(team, subject=None, template_id=template.id, data={"token": "x"})
    message = parsed(sink.handler.messages[0][2])
    assert tx.template_id == template.id and message["Subject"] == "Password reset"
    assert 'href="https://app.example.com/r/x"' in message.get_body(("html",)).get_content()

    other = make_team("Other")
    foreign = Template.create(team=other, name="Theirs", kind="html", body="<p>x</p>")
    assert "template_id" in refusal(team, template_id=foreign.id)
    # The campaigns' sandbox: no field value may become a link's scheme.
    Template.update(body='<p><a href="{{ data.link }}">here</a></p>').where(Template.id == template.id).execute()
    assert "must start with https://" in refusal(team, template_id=template.id, data={"link": "javascript:x"})["template_id"]


def test_every_bad_field_is_named_and_nothing_is_stored(team, sink):
    errors = refusal(team, to=["a@example.com", "b@example.com"], reply_to="not an address",
                     headers={"Bcc": "spy@example.com", "X-Loft-Token": "x", "X-Fine": "ok"},
                     tags=["has space"], attachments=[{"filename": "a.pdf", "content": "%%%"}],
                     data=["not", "an", "object"], html=None, subject="", color="red")
    assert set(errors) == {"to", "reply_to", "headers.Bcc", "headers.X-Loft-Token", "tags", "attachments.0.content",
                           "data", "html", "subject", "color"}
    assert "one recipient" in errors["to"]
    assert "cannot be set" in errors["headers.Bcc"]
    for name in ("To", "From", "Received", "DKIM-Signature", "List-Unsubscribe"):
        assert f"headers.{name}" in refusal(team, headers={name: "x"})
    assert "html" in refusal(team, markdown="# both", html="<p>both</p>")  # one of them
    assert TxMessage.select().count() == 0 and TxEvent.select().count() == 0
    assert sink.handler.messages == []


def test_the_sender_must_be_on_a_verified_domain_of_the_team(team, sink):
    assert "not a verified sender domain" in refusal(team, **{"from": "ceo@elsewhere.example"})["from"]
    team.default_from_email = ""
    team.save()
    assert "no default sender" in refusal(team)["from"]
    tx = send(team, **{"from": "orders@mail.acme.test", "from_name": "Acme Orders"})  # a subdomain is covered
    assert parsed(sink.handler.messages[0][2])["From"] == "Acme Orders <orders@mail.acme.test>"
    assert tx.status == "sent"


def test_attachments_are_sent_and_their_total_is_limited(ctx, team, sink):
    pdf = b"%PDF-1.4 receipt"
    tx = send(team, attachments=[{"filename": "receipt.pdf", "content_type": "application/pdf",
                                  "content": base64.b64encode(pdf).decode()}])
    [attachment] = list(parsed(sink.handler.messages[0][2]).iter_attachments())
    assert attachment.get_filename() == "receipt.pdf" and attachment.get_content() == pdf
    assert tx.size == len(tx.raw)
    ctx.config["TX_MAX_BYTES"] = 1000
    big = base64.b64encode(b"x" * 600).decode()
    errors = refusal(team, attachments=[{"filename": "a.bin", "content": big}, {"filename": "b.bin", "content": big}])
    assert errors["attachments"] == "The attachments come to 1,200 bytes; at most 1,000 bytes in all."
    assert "attachments.0.filename" in refusal(team, attachments=[{"filename": "../etc/passwd", "content": big}])


def test_hard_bounces_complaints_and_suppressions_refuse_but_a_marketing_unsubscribe_does_not(team, sink):
    for status in ("bounced", "complained"):
        Contact.create(team=team, email=f"{status}@example.com", domain="example.com", status=status)
        assert f"Loft will not send to {status}@example.com" in refusal(team, to=f"{status}@example.com")["to"]
    suppression.suppress(team.id, "email", "blocked@example.com", reason="manual")
    assert "suppression list (manual)" in refusal(team, to="blocked@example.com")["to"]
    suppression.suppress(team.id, "domain", "spamtrap.example", reason="manual")
    assert "the domain spamtrap.example" in refusal(team, to="x@spamtrap.example")["to"]

    Contact.create(team=team, email="gone@example.com", domain="example.com", status="unsubscribed")
    suppression.suppress(team.id, "email", "gone@example.com", reason="unsubscribed")
    assert send(team, to="gone@example.com").status == "sent"
    assert [rcpt for _from, rcpt, _raw in sink.handler.messages] == ["gone@example.com"]
    assert Contact.select().where(Contact.email == "buyer@example.com").count() == 0  # no contact is made


def test_a_temporary_refusal_is_retried_later_and_a_permanent_one_fails_with_the_servers_words(ctx, smtp, team):
    server = smtp(always_451=("later@",), reject=("nobody@",))
    make_account(team, server.port)
    tx = service.accept(team, api_key=None, message={"to": "later@example.com", "subject": "S", "html": "<p>x</p>"})
    outcome = service.deliver(tx.id)
    assert outcome.status == "queued" and outcome.retry_in == ctx.config["TX_RETRY_DELAYS"][0]
    history = service.status_history(tx)
    assert history[-1][0] == "queued" and "451 4.3.0" in history[-1][2] and "trying again in" in history[-1][2]
    ctx.config["TX_RETRY_DELAYS"] = (1,)
    assert service.deliver(tx.id).status == "failed"  # the second attempt was the last
    assert "451" in TxMessage.get_by_id(tx.id).error

    tx = service.accept(team, api_key=None, message={"to": "nobody@example.com", "subject": "S", "html": "<p>x</p>"})
    outcome = service.deliver(tx.id)
    assert outcome.status == "failed" and outcome.retry_in is None
    failed = TxMessage.get_by_id(tx.id)
    assert failed.status == "failed" and "550 5.1.1" in failed.error and "User unknown" in failed.error
    assert service.deliver(tx.id).status == "failed"  # a repeated task leaves it alone
    assert TxMessage.get_by_id(tx.id).attempts == 1
    assert [s for s, _at, _d in service.status_history(failed)] == ["queued", "failed"]


def test_the_account_marked_for_transactional_mail_is_used(team, smtp):
    bulk, transactional = smtp(), smtp()
    make_account(team, bulk.port, name="Bulk")
    make_account(team, transactional.port, name="Receipts", transactional=True)
    tx = send(team)
    assert bulk.handler.messages == [] and len(transactional.handler.messages) == 1
    assert "Receipts" in service.status_history(tx)[-1][2]


def test_without_an_smtp_account_the_message_waits_for_one(team):
    tx = send(team)
    assert tx.status == "queued" and "no active SMTP account" in service.status_history(tx)[-1][2]


def test_submit_raw_checks_the_same_rules_and_makes_one_message_per_recipient(team, sink):
    raw = (b"From: Acme <news@acme.test>\r\nTo: ann@example.com\r\nBcc: hidden@example.com\r\n"
           b"Subject: Your code\r\nList-Unsubscribe: <mailto:x@acme.test>\r\nDKIM-Signature: v=1; forged\r\n"
           b"\r\nYour code is 1234.\r\n")
    key = ApiKey.create(team=team, name="shop", role="manager", prefix="loft_test", key_hash="0" * 64)
    sent = service.submit_raw(key, mail_from="news@acme.test", recipients=["ann@example.com", "bob@example.com"],
                              raw=raw)
    tx_tasks.queue(sent)
    assert [tx.to_email for tx in sent] == ["ann@example.com", "bob@example.com"]
    assert {tx.api_key_id for tx in sent} == {key.id}
    assert {rcpt for _from, rcpt, _raw in sink.handler.messages} == {"ann@example.com", "bob@example.com"}
    for _from, _rcpt, delivered in sink.handler.messages:
        message = parsed(delivered)
        assert message["Bcc"] is None and message["List-Unsubscribe"] is None
        assert message.get_all("DKIM-Signature") and len(message.get_all("DKIM-Signature")) == 1
        assert message["Message-ID"] and message["Subject"] == "Your code"

    Contact.create(team=team, email="bounced@example.com", domain="example.com", status="bounced")
    before = TxMessage.select().count()
    with pytest.raises(service.TxError) as caught:
        service.submit_raw(key, mail_from="", recipients=["ok@example.com", "bounced@example.com"], raw=raw)
    assert "bounced@example.com" in caught.value.message
    with pytest.raises(service.TxError) as caught:
        service.submit_raw(key, mail_from="", recipients=["ok@example.com"],
                           raw=raw.replace(b"news@acme.test", b"ceo@elsewhere.example"))
    assert "from" in caught.value.errors
    with pytest.raises(service.TxError) as caught:
        service.submit_raw(key, mail_from="", recipients=[f"r{i}@example.com" for i in range(51)], raw=raw)
    assert caught.value.errors == {"recipients": "At most 50 recipients per message."}
    assert TxMessage.select().count() == before  # all or none


def test_another_teams_message_is_not_found(team, sink):
    tx = send(team)
    other = make_team("Other")
    assert service.get_message(other, tx.id) is None
    assert service.get_message(team, tx.id).id == tx.id
    assert [row.id for row in service.latest(team, status="sent")] == [tx.id]
    assert service.latest(other) == [] and service.latest(team, status="failed") == []


def test_a_bounce_report_naming_the_message_joins_its_history_and_suppresses_a_hard_bounce(team, sink):
    tx = send(team, to="gone@example.com")
    returned = sink.handler.messages[0][2]
    report = parse_message(dsn("gone@example.com", "5.1.1", "550 5.1.1 <gone@example.com>: User unknown", returned))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["tx_id"] == tx.id and applied["kind"] == "hard" and not applied["duplicate"]
    bounced = TxMessage.get_by_id(tx.id)
    assert bounced.status == "bounced" and "User unknown" in bounced.error
    assert [s for s, _at, _d in service.status_history(bounced)] == ["queued", "sent", "bounced"]
    assert outcomes.apply(team.id, report, "imap")[0]["duplicate"]  # the same report twice: once
    assert "suppression list (bounced)" in refusal(team, to="gone@example.com")["to"]

    other = send(team, to="fine@example.com")
    complaint = parse_message(arf("fine@example.com", sink.handler.messages[1][2]))
    assert outcomes.apply(team.id, complaint, "imap")[0]["kind"] == "complaint"
    assert service.status_history(other)[-1][0] == "complained"
    assert TxMessage.get_by_id(other.id).status == "sent"  # it was delivered; the person complained
    assert "suppression list (complained)" in refusal(team, to="fine@example.com")["to"]
    # Another team's report never touches this team's message.
    stranger = make_team("Other")
    assert outcomes.apply(stranger.id, report, "imap") == []


def test_outgoing_webhooks_fire_for_transactional_messages(ctx, team, smtp, receiver):
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the receiver listens on loopback
    server = smtp(reject=("nobody@",))
    make_account(team, server.port)
    hook = receiver(200)
    WebhookEndpoint.create(team=team, url=hook.url, event_types=["tx_sent", "tx_failed", "tx_bounced"],
                           secret=encrypt("whsec_test"))
    delivery.dispatch()  # the dispatcher's cursor starts at the events that exist
    sent = send(team, tags=["receipt"])
    failed = send(team, to="nobody@example.com")
    send(team, to="later@example.com", subject="ignored")  # sent too; counted below
    delivery.dispatch()
    delivery.send_due(workers=1)
    payloads = [json.loads(request["body"]) for request in hook.requests]
    by_tx = {(p["type"], p["data"]["tx_id"]) for p in payloads}
    assert ("tx_sent", sent.id) in by_tx and ("tx_failed", failed.id) in by_tx and len(payloads) == 3
    first = next(p for p in payloads if p["data"]["tx_id"] == sent.id)
    assert first["contact"] is None and first["campaign_id"] is None
    assert first["data"]["to"] == "buyer@example.com" and first["data"]["tags"] == ["receipt"]
    assert first["data"]["message_id"] == sent.message_id


def test_a_message_left_queued_is_queued_again_and_sent_once(ctx, team, sink):
    tx = service.accept(team, api_key=None, message={"to": "buyer@example.com", "subject": "S", "html": "<p>x</p>"})
    # Never queued (as if the queue lost its task): nothing happens until it is older than the last retry.
    assert service.stalled_ids() == []
    later = utcnow() + datetime.timedelta(seconds=max(ctx.config["TX_RETRY_DELAYS"]) + service.STALL_MARGIN + 1)
    assert service.stalled_ids(now=later) == [tx.id]
    TxEvent.update(at=utcnow() - datetime.timedelta(days=1)).execute()
    TxMessage.update(created_at=utcnow() - datetime.timedelta(days=1)).execute()
    assert tx_tasks.requeue_stalled.call_local() == 1
    assert TxMessage.get_by_id(tx.id).status == "sent" and len(sink.handler.messages) == 1
    assert tx_tasks.requeue_stalled.call_local() == 0 and len(sink.handler.messages) == 1


def test_a_providers_delivered_report_moves_a_sent_message_to_delivered(team, sink):
    tx = send(team)
    report = delivery_for("buyer@example.com", message_id=f"<{tx.message_id}>")
    [recorded] = outcomes.record_delivery(team.id, report, "ses")
    assert recorded["tx_id"] == tx.id and recorded["kind"] == "delivered" and not recorded["duplicate"]
    assert outcomes.record_delivery(team.id, report, "ses")[0]["duplicate"]
    assert TxMessage.get_by_id(tx.id).status == "delivered"
    assert [s for s, _at, _d in service.status_history(tx)] == ["queued", "sent", "delivered"]


def test_a_message_is_sent_from_a_thread_that_runs_an_event_loop(team, sink):
    # An aiosmtpd handler (SMTP submission) runs on an event loop: asyncio.run cannot nest there.
    tx = service.accept(team, api_key=None, message={"to": "buyer@example.com", "subject": "S", "html": "<p>x</p>"})

    async def on_a_loop():
        return service.deliver(tx.id)
    assert asyncio.run(on_a_loop()).status == "sent"
    assert len(sink.handler.messages) == 1
