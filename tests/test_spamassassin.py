"""The SpamAssassin score (app/deliverability/spamassassin.py) against a real spamd on loopback, and the
builder's "SpamAssassin score" card (app/campaigns/spam_score.py): score, threshold, rules, and words when
spamd is not there."""
import email
import email.policy
import socket
import threading

import pytest

from app import settings as instance_settings
from app.campaigns import spam_score
from app.deliverability import spamassassin
from app.deliverability.spamassassin import parse_address
from app.deliverability.spamassassin import parse_report
from app.deliverability.spamassassin import parse_response
from app.models import Campaign
from app.models import Contact
from app.models import RateLimitHit
from app.models import Team
from tests.accounts_support import make_member
from tests.campaigns_support import create_draft
from tests.conftest import soup
from tests.ports import free_port

# GTUBE (spamassassin.apache.org/gtube/): every SpamAssassin scores it 1000 with the rule GTUBE.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(body, subject="Our spring newsletter"):
    return ("From: Garden Club <news@example.com>\r\nTo: someone@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <loft.spam-test.4f1c2a9e@example.com>\r\n"
            "Date: Fri, 04 Dec 2026 05:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n\r\n' + body + "\r\n").encode()


# --- against the real spamd ---------------------------------------------------------------------------

def test_gtube_scores_as_spam_with_the_gtube_rule(spamd):
    result = spamassassin.check(message(GTUBE), spamd.address)
    assert result.available, result.problem
    assert result.is_spam
    assert result.score >= 1000 and result.threshold == 5.0
    assert result.rules[0].name == "GTUBE"  # highest score first
    assert result.rules[0].score == 1000.0
    assert "Generic Test for Unsolicited Bulk Email" in result.rules[0].description
    assert result.percent == 100


def test_a_plain_message_scores_low(spamd):
    result = spamassassin.check(message("Hello, here is what is new in the garden this month.\r\n"
                                        "The roses are out and the workshop is on Saturday."), spamd.address)
    assert result.available, result.problem
    assert not result.is_spam
    assert result.score < result.threshold
    assert "GTUBE" not in [rule.name for rule in result.rules]
    assert result.percent < 50


def test_report_rules_agree_with_the_symbols_command(spamd):
    """Two commands, two formats: the rule names parsed from REPORT's table are exactly SYMBOLS' list."""
    body = message("Dear friend, CLICK HERE to claim your FREE prize now!!! " + GTUBE, subject="YOU HAVE WON")
    report = spamassassin.check(body, spamd.address)
    symbols = spamassassin.check(body, spamd.address, command=b"SYMBOLS")
    assert report.available and symbols.available
    assert sorted(rule.name for rule in report.rules) == sorted(rule.name for rule in symbols.rules)
    assert report.score == symbols.score
    assert all(rule.description for rule in report.rules)


def test_a_wrapped_description_is_one_rule(spamd):
    """spamd wraps a long description onto an indented line: it stays the rule's, never a rule of its own."""
    html = ("From: a@example.com\r\nTo: b@example.com\r\nSubject: Offers\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html\r\n\r\n<html><body><font color=white>Our offers this week: see the "
            "shop</font></body></html>\r\n").encode()
    report = spamassassin.check(html, spamd.address)
    symbols = spamassassin.check(html, spamd.address, command=b"SYMBOLS")
    rules = {rule.name: rule for rule in report.rules}
    assert rules["HTML_FONT_LOW_CONTRAST"].description == "BODY: HTML font color similar or identical to background"
    assert sorted(rules) == sorted(rule.name for rule in symbols.rules)


def test_the_recorded_answer_of_the_real_spamd_parses(spamd):
    """The raw bytes spamd sends (status line, headers, report) give the same as check()."""
    raw = spamassassin._exchange("127.0.0.1", spamd.port, spamassassin.request_bytes(message(GTUBE)))
    assert raw.startswith(b"SPAMD/1.")
    parsed = parse_response(raw)
    assert parsed.is_spam and parsed.rules[0].name == "GTUBE"
    check = spamassassin.check(message(GTUBE), spamd.address)
    assert [rule.name for rule in parsed.rules] == [rule.name for rule in check.rules]


# --- the parser on answers in spamd's format ----------------------------------------------------------

# Recorded from spamd 4.0.1 (Debian 12, -L): a GTUBE message's answer, with the wrapped row and the BAYES_00 row
# of other answers (BAYES_00 from a spamd with a trained Bayes database) put in its table.
RECORDED_REPORT = (
    b"SPAMD/1.1 0 EX_OK\r\nContent-length: 878\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
    b"Spam detection software, running on the system \"vm\",\nhas identified this incoming email as possible spam.\n"
    b"\nContent preview:  XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE 2.5 NOT_A_RULE preview text\n   \n\n"
    b"Content analysis details:   (1000.0 points, 5.0 required)\n\n"
    b" pts rule name              description\n"
    b"---- ---------------------- --------------------------------------------------\n"
    b"-0.0 NO_RECEIVED            Informational: message has no Received headers\n"
    b" 0.0 MSGID_SHORT            Message-ID is unusually short\n"
    b"1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n"
    b" 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to\n"
    b"                            background\n"
    b"-1.9 BAYES_00               BODY: Bayes spam probability is 0 to 1%\n\n\n")


def test_the_report_table_becomes_rules_highest_first():
    result = parse_response(RECORDED_REPORT)
    assert (result.is_spam, result.score, result.threshold) == (True, 1000.0, 5.0)
    assert [(rule.name, rule.score) for rule in result.rules] == [
        ("GTUBE", 1000.0), ("HTML_FONT_LOW_CONTRAST", 0.7), ("MSGID_SHORT", 0.0), ("NO_RECEIVED", -0.0),
        ("BAYES_00", -1.9)]
    assert result.rules[1].description == "BODY: HTML font color similar or identical to background"
    assert "NOT_A_RULE" not in [rule.name for rule in result.rules]  # the preview is not the table


def test_a_negative_score_and_no_rules():
    result = parse_response(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.2 / 6.5\r\n\r\n")
    assert (result.is_spam, result.score, result.threshold, result.rules) == (False, -1.2, 6.5, [])
    assert result.percent == 0
    assert parse_report("no table here\n 1.0 RULE text") == []


@pytest.mark.parametrize("raw, words", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "SPAMD/1.x"),
    (b"SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n", "Bad header line"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "Spam:"),
    (b"", "SPAMD/1.x"),
])
def test_answers_that_are_not_a_report_are_refused_in_words(raw, words):
    with pytest.raises(spamassassin.SpamdAnswerError, match=words.replace(".", r"\.").replace("/", "/")):
        parse_response(raw)


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:783", ("127.0.0.1", 783)), ("localhost", ("localhost", 783)), ("[::1]:7830", ("::1", 7830)),
    ("::1", ("::1", 783)), ("spam.internal.test:10783", ("spam.internal.test", 10783)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "127.0.0.1:0", "127.0.0.1:99999", "host:port", "http://127.0.0.1:783",
                                  "a b:783", ":783", "[::1]x"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_address(text)


# --- unavailable, refused, oversize: a SpamVerdict in words, never an exception ------------------------------

def test_nothing_listening_is_not_available_in_words():
    address = f"127.0.0.1:{free_port()}"
    result = spamassassin.check(message("hello"), address)
    assert not result.available
    assert "spamd is not running" in result.problem and address in result.problem


def test_no_address_set_is_not_available():
    result = spamassassin.check(message("hello"), "")
    assert not result.available and "not set up" in result.problem


@pytest.mark.parametrize("address, words", [
    ("169.254.169.254:783", "link-local"), ("[fe80::1]:783", "link-local"), ("0.0.0.0:783", "unspecified"),
    ("224.0.0.1:783", "multicast"), ("[::ffff:169.254.169.254]:783", "link-local"),
])
def test_metadata_and_odd_addresses_are_never_connected(address, words, monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("connected")
    monkeypatch.setattr(spamassassin.socket, "create_connection", no_connection)
    result = spamassassin.check(message("hello"), address)
    assert not result.available and words in result.problem


def test_a_name_is_checked_by_what_it_resolves_to(monkeypatch):
    result = spamassassin.check(message("hello"), "spamd.example.test:783",
                                resolver=lambda host, port: ["127.0.0.1", "169.254.169.254"])
    assert not result.available and "169.254.169.254" in result.problem


def test_an_oversize_message_is_not_sent(spamd, monkeypatch):
    received = []
    monkeypatch.setattr(spamassassin, "_exchange", lambda *args: received.append(args))
    big = message("x" * (spamassassin.MAX_MESSAGE_BYTES + 10))
    result = spamassassin.check(big, spamd.address)
    assert not result.available and "at most 512 KB" in result.problem
    assert received == []


def _one_shot_server(answer, hold=False):
    """A loopback server that reads a request and answers `answer` (or never answers); returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            if hold:
                done.wait(10)
            else:
                connection.sendall(answer)
        listener.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


def test_a_server_that_is_not_spamd_is_not_available():
    port, _ = _one_shot_server(b"220 smtp.example.test ESMTP ready\r\n")
    result = spamassassin.check(message("hello"), f"127.0.0.1:{port}")
    assert not result.available and "SPAMD/1.x" in result.problem


def test_a_silent_server_times_out_in_words(monkeypatch):
    monkeypatch.setattr(spamassassin, "CHECK_TIMEOUT", 0.3)
    port, done = _one_shot_server(b"", hold=True)
    try:
        result = spamassassin.check(message("hello"), f"127.0.0.1:{port}")
    finally:
        done.set()
    assert not result.available and "did not answer in time" in result.problem


def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(monkeypatch):
    """Each byte in time, the whole answer never: the deadline is for the exchange, not one read."""
    monkeypatch.setattr(spamassassin, "CHECK_TIMEOUT", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            while not stop.wait(0.05):
                try:
                    connection.sendall(b"X")
                except OSError:
                    break
        listener.close()
    threading.Thread(target=drip, daemon=True).start()
    try:
        result = spamassassin.check(message("hello"), f"127.0.0.1:{listener.getsockname()[1]}")
    finally:
        stop.set()
    assert not result.available and "did not answer in time" in result.problem


def test_an_endless_answer_is_cut_off():
    port, _ = _one_shot_server(b"SPAMD/1.1 0 EX_OK\r\n" + b"X" * (spamassassin.MAX_RESPONSE_BYTES + 10))
    result = spamassassin.check(message("hello"), f"127.0.0.1:{port}")
    assert not result.available and "far longer" in result.problem


# --- the builder's card -------------------------------------------------------------------------------

def _card(response):
    return soup(response).select_one("#spam-score")


def test_the_card_scores_the_campaign_as_a_recipient_gets_it(app, web, ready_team, spamd):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = spamd.address
    campaign = create_draft(web, news, body=f"<p>Hi {{{{ contact.name }}}}</p><p>{GTUBE}</p>")
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    form = page.select_one("form#spam-score")
    assert form is not None and form.select_one("input[name=csrf_token]") is not None
    assert page.select_one("#h-spam-score").text == "SpamAssassin score"
    response = web.post(f"/campaigns/{campaign.id}/spam-score", {"contact": "reader1@example.com"}, htmx=True)
    assert response.status_code == 200
    card = _card(response)
    assert card.select_one("[data-spamassassin]")["data-spamassassin"] == "spam"
    rows = card.select("table.spam-rules tbody tr")
    assert rows[0]["data-rule"] == "GTUBE"
    scores = [float(row.select_one("td").text) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert "1000.0" in card.select_one(".spam-verdict").text and "5.0" in card.select_one(".spam-verdict").text
    assert card.select_one("svg.spam-meter title").text.startswith("Score 1000.0")
    assert RateLimitHit.select().where(RateLimitHit.bucket == "spam-score").count() == 1


def test_the_message_is_the_recipients_and_not_a_test(app, ready_team, web):
    team, news = ready_team
    campaign = create_draft(web, news)
    with app.app_context():
        raw = spam_score.rendered_message(team, Campaign.get_by_id(campaign.id),
                                          Contact.get(Contact.email == "reader1@example.com"))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Hello Reader 1"  # no "[Test]"
    assert parsed["To"] == "Reader 1 <reader1@example.com>" and parsed["DKIM-Signature"]  # signed like the real send
    assert parsed["List-Unsubscribe"]
    assert "Hi Reader 1" in parsed.get_body(("html",)).get_content()


def test_a_plain_campaign_scores_low_on_the_page(app, web, ready_team, spamd):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = spamd.address
    campaign = create_draft(web, news)
    card = _card(web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True))
    assert card.select_one("[data-spamassassin]")["data-spamassassin"] == "ok"
    assert "GTUBE" not in [row["data-rule"] for row in card.select("table.spam-rules tbody tr")]


def test_without_spamd_the_card_says_how_to_enable_it(app, web, ready_team):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = f"127.0.0.1:{free_port()}"
    campaign = create_draft(web, news)
    response = web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True)
    assert response.status_code == 200
    card = _card(response)
    assert card.select_one("[data-spamassassin]")["data-spamassassin"] == "unavailable"
    text = card.get_text(" ")
    assert "spamd is not running" in text and "apt install spamassassin spamc spamd" in text
    assert "spamd -L -i 127.0.0.1 -p 783" in text and "LOFT_SPAMD_ADDRESS" in text
    # Without htmx: the whole builder, the card with the same words.
    page = web.post(f"/campaigns/{campaign.id}/spam-score", {})
    assert "spamd is not running" in _card(page).get_text(" ")
    app.config["SPAMD_ADDRESS"] = ""
    off = _card(web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True))
    assert "not set up" in off.get_text(" ")


def test_checks_are_limited_per_team(app, web, ready_team, spamd):
    team, news = ready_team
    app.config.update(SPAMD_ADDRESS=spamd.address, SPAM_CHECKS_PER_HOUR=2)
    campaign = create_draft(web, news)
    for _ in range(2):
        assert web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True).status_code == 200
    refused = web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True)
    assert refused.status_code == 422
    assert "2 SpamAssassin checks for this hour" in _card(refused).select_one(".error").text


def test_roles_and_csrf(app, web, ready_team):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = f"127.0.0.1:{free_port()}"
    campaign = create_draft(web, news)
    _, guest = make_member(app, team, "guest")
    assert guest.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True).status_code == 403
    assert soup(guest.get(f"/campaigns/{campaign.id}")).select_one("#spam-score") is None
    _, author = make_member(app, team, "author")
    assert author.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True).status_code == 200
    no_token = web.client.post(f"/campaigns/{campaign.id}/spam-score", data={}, headers={"HX-Request": "true"})
    assert no_token.status_code in (400, 403)
    assert RateLimitHit.select().where(RateLimitHit.bucket == "spam-score").count() == 1  # the author's only


def test_another_teams_campaign_is_not_found(app, web, ready_team):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = f"127.0.0.1:{free_port()}"
    other = Team.create(name="Other")
    theirs = Campaign.create(team=other, name="Theirs", subject="Theirs", body="<p>theirs</p>", kind="html",
                             from_email="news@other.example")
    assert web.post(f"/campaigns/{theirs.id}/spam-score", {}, htmx=True).status_code == 404
    assert RateLimitHit.select().where(RateLimitHit.bucket == "spam-score").count() == 0
    assert Campaign.get_by_id(theirs.id).body == "<p>theirs</p>"


# --- the address is the instance administrator's setting ----------------------------------------------

def _settings_form(app, **changes):
    with app.app_context():
        values = instance_settings.get_settings()
    form = {key: values[key] for key in ("base_url", "default_from_name", "default_from_email", "postal_address",
                                         "smtp_host", "smtp_port", "smtp_tls", "smtp_username", "team_creation")}
    form.update(changes)
    return form


def test_the_instance_administrator_sets_the_address_and_the_card_uses_it(app, web, ready_team, spamd):
    team, news = ready_team
    app.config["SPAMD_ADDRESS"] = f"127.0.0.1:{free_port()}"  # the environment's value, overridden below
    page = soup(web.get("/admin/settings"))
    assert page.select_one("label[for=f-spamd_address]") is not None
    refused = web.post("/admin/settings", _settings_form(app, spamd_address="169.254.169.254:783"), htmx=True)
    assert refused.status_code == 422
    assert "link-local" in soup(refused).select_one("#e-spamd_address").text
    bad_port = web.post("/admin/settings", _settings_form(app, spamd_address="127.0.0.1:http"), htmx=True)
    assert "not a number" in soup(bad_port).select_one("#e-spamd_address").text
    with app.app_context():
        assert instance_settings.get_setting("spamd_address") == app.config["SPAMD_ADDRESS"]  # nothing saved
    assert web.post("/admin/settings", _settings_form(app, spamd_address=spamd.address)).status_code == 302
    campaign = create_draft(web, news, body=f"<p>{GTUBE}</p>")
    card = _card(web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True))
    assert card.select_one("[data-spamassassin]")["data-spamassassin"] == "spam"
    assert web.post("/admin/settings", _settings_form(app, spamd_address="")).status_code == 302
    off = _card(web.post(f"/campaigns/{campaign.id}/spam-score", {}, htmx=True))
    assert "not set up" in off.get_text(" ")


def test_a_team_administrator_cannot_set_the_address(app, ready_team):
    team, news = ready_team
    _, team_admin = make_member(app, team, "admin")
    answer = team_admin.post("/admin/settings", {"spamd_address": "203.0.113.5:783"})
    assert answer.status_code == 403
    with app.app_context():
        assert instance_settings.get_setting("spamd_address") == app.config["SPAMD_ADDRESS"]
