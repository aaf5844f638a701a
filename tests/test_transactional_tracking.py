"""Open and click tracking of transactional messages, asked for per message (off by default), over real HTTP
through the app into a real SMTP server on loopback; the open pixel and click links are fetched through the
tracking paths a mail client would use. Also: what a GDPR erasure leaves of the messages to the address."""
import email
import email.policy
import re

import pytest
from playhouse.migrations import Runner

from app import tokens
from app.cli import MIGRATIONS_DIR
from app.consent import gdpr
from app.db import db
from app.models import AuditLog
from app.models import Contact
from app.models import Event
from app.models import SenderDomain
from app.models import Team
from app.models import TxEvent
from app.models import TxMessage
from app.models import utcnow
from app.senders import domains
from app.transactional import service
from app.transactional import tracking as tx_tracking
from tests.conftest import soup
from tests.sending_support import make_account

PIXEL = re.compile(r"/o/([A-Za-z0-9_-]+)\.gif")
CLICK = re.compile(r"/c/([A-Za-z0-9_-]+)/(\d+)")
HTML = ('<p>Your order. <a href="https://shop.example.com/orders/7">See it</a> or '
        '<a href="mailto:help@acme.test">write to us</a>. <a href="https://shop.example.com/help">Help</a></p>')
RECEIPT = {"to": "buyer@example.com", "subject": "Order 7", "html": HTML, "tags": ["receipt"]}


@pytest.fixture
def sink(ctx, admin, smtp):
    team = Team.get(Team.name == "Acme")
    team.default_from_email, team.default_from_name = "news@acme.test", "Acme"
    team.save()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    server = smtp()
    make_account(team, server.port)
    return server


def html_of(raw):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return message.get_body(("html",)).get_content()


def history(tx_id):
    return [(event.status, event.detail) for event in
            TxEvent.select().where(TxEvent.tx_message == tx_id).order_by(TxEvent.at, TxEvent.id)]


def events(type_):
    return list(Event.select().where(Event.type == type_).order_by(Event.id))


def test_a_tracked_message_records_its_first_open_and_each_links_first_click(api, sink, public):
    response = api.post("/api/v1/tx", json=dict(RECEIPT, track_opens=True, track_clicks=True))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/tx/{body['id']}"
    assert body["track_opens"] is True and body["track_clicks"] is True and body["opens"] == 0
    html = html_of(sink.handler.messages[0][2])
    [open_token] = PIXEL.findall(html)
    clicks = CLICK.findall(html)
    assert [place for _token, place in clicks] == ["1", "2"] and "mailto:help@acme.test" in html
    assert "shop.example.com" not in html  # the targets stay on the server
    assert tokens.verify("tx_open", open_token) == (api.key.team_id, body["id"])

    for _ in range(2):
        pixel = public.get(f"/o/{open_token}.gif", headers={"User-Agent": "Thunderbird"})
        assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
    click_token = clicks[0][0]
    for _ in range(2):
        redirect = public.get(f"/c/{click_token}/1")
        assert redirect.status_code == 302 and redirect.headers["Location"] == "https://shop.example.com/orders/7"
    assert public.get(f"/c/{click_token}/2").headers["Location"] == "https://shop.example.com/help"
    assert public.head(f"/c/{click_token}/2").status_code == 302  # a link scanner's look: not a click
    assert public.get(f"/c/{click_token}/3").status_code == 404

    steps = history(body["id"])
    assert [status for status, _detail in steps] == ["queued", "sent", "opened", "clicked", "clicked"]
    assert steps[3][1].startswith("clicked https://shop.example.com/orders/7")
    assert steps[4][1].startswith("clicked https://shop.example.com/help")
    read = api.get(response.headers["Location"]).get_json()
    assert read["opens"] == 2 and read["clicks"] == 3 and read["opened_at"] and read["clicked_at"]
    assert [event["status"] for event in read["history"]][2:] == ["opened", "clicked", "clicked"]
    assert [e.data["tx_id"] for e in events("tx_opened")] == [body["id"]]
    assert [e.data["url"] for e in events("tx_clicked")] == ["https://shop.example.com/orders/7",
                                                             "https://shop.example.com/help"]


def test_a_message_is_not_tracked_unless_asked(api, sink, public, ctx):
    body = api.post("/api/v1/tx", json=RECEIPT).get_json()
    html = html_of(sink.handler.messages[0][2])
    assert not PIXEL.search(html) and not CLICK.search(html) and 'href="https://shop.example.com/orders/7"' in html
    assert body["track_opens"] is False and body["track_clicks"] is False
    # A genuine token for a message that did not ask records nothing.
    assert public.get(f"/o/{tokens.sign('tx_open', api.key.team_id, body['id'])}.gif").status_code == 200
    assert public.get(f"/c/{tokens.sign('tx_click', api.key.team_id, body['id'])}/1").status_code == 404
    assert TxMessage.get_by_id(body["id"]).opens == 0 and events("tx_opened") == []

    ctx.config["TX_TRACK_OPENS"] = True  # the instance's default, when a message does not say
    tracked = api.post("/api/v1/tx", json=RECEIPT).get_json()
    assert tracked["track_opens"] is True and tracked["track_clicks"] is False
    assert PIXEL.search(html_of(sink.handler.messages[1][2])) and not CLICK.search(html_of(sink.handler.messages[1][2]))
    assert api.post("/api/v1/tx", json=dict(RECEIPT, track_opens=False)).get_json()["track_opens"] is False
    refused = api.post("/api/v1/tx", json=dict(RECEIPT, track_clicks="yes"))
    assert refused.status_code == 422 and "track_clicks" in str(refused.get_json())


def test_forged_and_other_teams_tokens_record_nothing(api, api_key_for, sink, public):
    tx_id = api.post("/api/v1/tx", json=dict(RECEIPT, track_opens=True, track_clicks=True)).get_json()["id"]
    other = Team.create(name="Other")
    genuine = tokens.sign("tx_open", api.key.team_id, tx_id)
    forged = [
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # a changed tag
        tokens.sign("open", tx_id),  # a campaign's open token for the same number
        tokens.sign("tx_click", api.key.team_id, tx_id),  # another purpose
        tokens.sign("tx_open", other.id, tx_id),  # names another team
    ]
    for token in forged:
        assert public.get(f"/o/{token}.gif").status_code == 200  # the pixel is always served
    for token in (tokens.sign("tx_open", api.key.team_id, tx_id), tokens.sign("tx_click", other.id, tx_id),
                  tokens.sign("click", tx_id)):
        assert public.get(f"/c/{token}/1").status_code == 404
    tx = TxMessage.get_by_id(tx_id)
    assert tx.opens == tx.clicks == 0 and tx.opened_at is None
    assert [status for status, _ in history(tx_id)] == ["queued", "sent"]
    assert events("tx_opened") == events("tx_clicked") == []


def test_the_page_shows_opens_and_clicks(api, sink, public, web):
    tracked = api.post("/api/v1/tx", json=dict(RECEIPT, track_opens=True)).get_json()
    plain = api.post("/api/v1/tx", json=RECEIPT).get_json()
    [token] = PIXEL.findall(html_of(sink.handler.messages[0][2]))
    public.get(f"/o/{token}.gif")
    page = soup(web.get(f"/transactional/{tracked['id']}"))
    assert "1 open (first" in page.select_one("#tx-tracking").text
    assert [item["data-status"] for item in page.select("#tx-history li")] == ["queued", "sent", "opened"]
    assert "Off" in soup(web.get(f"/transactional/{plain['id']}")).select_one("#tx-tracking").text
    rows = {row.select_one("td[data-label=To] a")["href"]: row.select_one("td[data-label=Opened]").text.strip()
            for row in soup(web.get("/transactional/")).select("tbody tr")}
    assert rows == {f"/transactional/{tracked['id']}": "Opened", f"/transactional/{plain['id']}": "Not tracked"}


def test_smtp_submission_asks_for_tracking_with_a_header_that_does_not_go_out(api, sink):
    raw = (b"From: Acme <orders@acme.test>\r\nTo: buyer@example.com\r\nSubject: Your code\r\n"
           b"X-Loft-Track: opens, clicks\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b'<html><body><p><a href="https://shop.example.com/a">A</a></p></body></html>\r\n')
    txs = service.submit_raw(api.key, mail_from="orders@acme.test", recipients=["a@example.com", "b@example.com"],
                             raw=raw)
    assert [tx.track_opens and tx.track_clicks for tx in txs] == [True, True]
    stored = [TxMessage.get_by_id(tx.id) for tx in txs]
    for tx in stored:
        message = email.message_from_bytes(bytes(tx.raw), policy=email.policy.default)
        assert message["X-Loft-Track"] is None
        html = message.get_body(("html",)).get_content()
        [token] = PIXEL.findall(html)
        assert tokens.verify("tx_open", token) == (api.key.team_id, tx.id)  # each copy its own tokens
        assert html.index(f"/o/{token}.gif") < html.index("</body>")
        assert CLICK.findall(html)[0][1] == "1" and tx.links == ["https://shop.example.com/a"]
        assert tx.size == len(bytes(tx.raw))

    plain = service.submit_raw(api.key, mail_from="", recipients=["c@example.com"],
                               raw=raw.replace(b"X-Loft-Track: opens, clicks\r\n", b""))
    assert not plain[0].track_opens and b"/o/" not in bytes(TxMessage.get_by_id(plain[0].id).raw)
    with pytest.raises(service.TxError) as refused:
        service.submit_raw(api.key, mail_from="", recipients=["d@example.com"],
                           raw=raw.replace(b"opens, clicks", b"everything"))
    assert "X-Loft-Track" in str(refused.value.errors)
    assert TxMessage.select().where(TxMessage.to_email == "d@example.com").count() == 0


def test_the_header_words(ctx):
    assert tx_tracking.header_choice(None) is None
    assert tx_tracking.header_choice("Opens") == (True, False)
    assert tx_tracking.header_choice("clicks,opens") == (True, True)
    assert tx_tracking.header_choice("none") == (False, False)
    for wrong in ("", "opens, none", "pixel"):
        with pytest.raises(ValueError):
            tx_tracking.header_choice(wrong)


def test_erasure_anonymises_the_addresses_messages_and_keeps_the_counts(api, sink, public, admin):
    team = api.key.team
    contact = Contact.create(team=team, email="pat@example.com", domain="example.com")
    mine = [api.post("/api/v1/tx", json=dict(RECEIPT, to="pat@example.com", subject="For Pat", reply_to="pat@example.com",
                                              track_opens=True)).get_json()["id"] for _ in range(2)]
    other = api.post("/api/v1/tx", json=dict(RECEIPT, to="sam@example.com", track_opens=True)).get_json()["id"]
    [token, *_] = PIXEL.findall(html_of(sink.handler.messages[0][2]))
    public.get(f"/o/{token}.gif")
    TxEvent.create(tx_message=mine[1], status="bounced", detail="hard: 550 pat@example.com: no such user")
    export = gdpr.export_data(team, contact)
    assert [tx["subject"] for tx in export["transactional_messages"]] == ["For Pat", "For Pat"]

    hint = gdpr.erase(team, admin, contact, "pat@example.com")

    for tx in TxMessage.select().where(TxMessage.id.in_(mine)):
        assert tx.to_email == hint and bytes(tx.raw) == b"" and tx.subject == "" and tx.reply_to == ""
        assert tx.status == "sent" and tx.size > 0  # the counts stay
    assert TxMessage.get_by_id(mine[0]).opens == 1
    assert all("pat@example.com" not in detail for tx_id in mine for _status, detail in history(tx_id))
    assert any(hint in detail for _status, detail in history(mine[1]))
    sent = {e.data["tx_id"]: e.data for e in events("tx_sent")}
    assert sent[mine[0]] == {"tx_id": mine[0], "to": hint} and sent[other]["to"] == "sam@example.com"
    assert events("tx_opened")[0].data == {"tx_id": mine[0], "to": hint}
    survivor = TxMessage.get_by_id(other)
    assert survivor.to_email == "sam@example.com" and survivor.subject == "Order 7" and bytes(survivor.raw)
    [audit] = AuditLog.select().where(AuditLog.action == "contact.erased")
    assert audit.data["tx_messages_anonymised"] == 2
    # The erased address is refused from now on (it is on the suppression list, reason "erased").
    refused = api.post("/api/v1/tx", json=dict(RECEIPT, to="pat@example.com"))
    assert refused.status_code == 422 and "suppression list" in refused.get_json()["errors"]["to"]


def test_the_migration_goes_down_and_up_again(app, sink):
    kept = TxMessage.create(team=Team.get(Team.name == "Acme"), from_email="news@acme.test", to_email="a@example.com",
                            message_id="m@acme.test", raw=b"x", track_opens=True, links=["https://a.example.com/"])
    runner = Runner(db.obj, MIGRATIONS_DIR)
    # Later migrations go down first (newest first) and come back up after it, oldest first.
    rolled = runner.down(target="0057_tx_tracking_and_accounts")
    assert rolled[-1] == "0057_tx_tracking_and_accounts" and rolled == sorted(rolled, reverse=True)
    assert "track_opens" not in {column.name for column in db.get_columns("tx_message")}
    assert runner.up() == rolled[::-1]
    again = TxMessage.get_by_id(kept.id)
    assert (again.track_opens, again.links, again.opens, again.smtp_account_id) == (False, [], 0, None)


def test_an_address_that_is_no_contact_is_erased_from_the_transactional_page(api, api_key_for, sink, web, admin):
    other_team = api_key_for("admin", Team.create(name="Other"))
    mine = api.post("/api/v1/tx", json=dict(RECEIPT, to="Buyer@Example.com", subject="For the buyer")).get_json()
    theirs = other_team.post("/api/v1/tx", json=dict(RECEIPT, to="buyer@example.com"))
    assert theirs.status_code == 422  # the other team has no verified sender: its message is never stored
    Contact.create(team=api.key.team, email="member@example.com", domain="example.com")

    page = soup(web.get("/transactional/"))
    assert page.select_one("#tx-erase-link")["href"] == "/transactional/erase"
    assert "Erase an address" in soup(web.get("/transactional/erase")).text
    wrong = web.post("/transactional/erase", {"email": "not an address"})
    assert wrong.status_code == 422 and "Type one email address" in soup(wrong).select_one("#tx-erase").text
    member = web.post("/transactional/erase", {"email": "member@example.com"})
    assert member.status_code == 422 and "contact page" in member.get_data(as_text=True)

    done = web.post("/transactional/erase", {"email": " BUYER@example.com "})
    assert done.status_code == 302 and done.headers["Location"] == "/transactional/"
    tx = TxMessage.get_by_id(mine["id"])
    assert tx.to_email == "b…@example.com" and tx.subject == "" and bytes(tx.raw) == b"" and tx.status == "sent"
    [audit] = AuditLog.select().where(AuditLog.action == "address.erased")
    assert audit.data == {"hint": "b…@example.com", "tx_messages_anonymised": 1}
    refused = api.post("/api/v1/tx", json=RECEIPT)
    assert refused.status_code == 422 and "erased" in refused.get_json()["errors"]["to"]
    # Another team's messages to the same address are not touched.
    outsider = Team.get(Team.name == "Other")
    TxMessage.create(team=outsider, from_email="x@other.test", to_email="buyer@example.com", message_id="o@other.test",
                     raw=b"kept", subject="Theirs")
    web.post("/transactional/erase", {"email": "buyer@example.com"})
    assert TxMessage.get(TxMessage.team == outsider).to_email == "buyer@example.com"
