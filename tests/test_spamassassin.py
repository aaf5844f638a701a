"""The SpamAssassin score (app/deliverability/spamassassin.py) against a real spamd on loopback, and the
builder's "SpamAssassin score" card (app/campaigns/spam_score.py): score, threshold, rules, and words when
spamd is not there."""
import socket
import threading

import pytest

from app.deliverability import spamassassin
from app.deliverability.spamassassin import parse_address
from app.deliverability.spamassassin import parse_report
from app.deliverability.spamassassin import parse_response

# GTUBE (spamassassin.apache.org/gtube/): every SpamAssassin scores it 1000 with the rule GTUBE.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(body, subject="Our spring newsletter"):
    return ("From: Garden Club <news@example.com>\r\nTo: someone@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <loft.spam-test.4f1c2a9e@example.com>\r\n"
            "Date: Fri, 04 Dec 2026 05:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n\r\n' + body + "\r\n").encode()


def dead_port():
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_the_recorded_answer_of_the_real_spamd_parses(spamd):
    """The raw bytes spamd sends (status line, headers, report) give the same as check()."""
    raw = spamassassin._exchange("127.0.0.1", spamd.port, spamassassin.request_bytes(message(GTUBE)))
    assert raw.startswith(b"SPAMD/1.")
    parsed = parse_response(raw)
    assert parsed.is_spam and parsed.rules[0].name == "GTUBE"
    check = spamassassin.check(message(GTUBE), spamd.address)
    assert [rule.name for rule in parsed.rules] == [rule.name for rule in check.rules]


# --- the parser on answers in spamd's format ----------------------------------------------------------

# Recorded from spamd 4.0.1 (Debian 12, -L) for a GTUBE message; one description made long to wrap.
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
    b" 2.5 HTML_IMAGE_ONLY_16     BODY: HTML: images with 1200-1600 bytes of words and\n"
    b"                            a second line of description\n"
    b"-1.9 BAYES_00               BODY: Bayes spam probability is 0 to 1%\n\n\n")


def test_the_report_table_becomes_rules_highest_first():
    result = parse_response(RECORDED_REPORT)
    assert (result.is_spam, result.score, result.threshold) == (True, 1000.0, 5.0)
    assert [(rule.name, rule.score) for rule in result.rules] == [
        ("GTUBE", 1000.0), ("HTML_IMAGE_ONLY_16", 2.5), ("MSGID_SHORT", 0.0), ("NO_RECEIVED", -0.0),
        ("BAYES_00", -1.9)]
    assert result.rules[1].description == ("BODY: HTML: images with 1200-1600 bytes of words and "
                                           "a second line of description")
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


# --- unavailable, refused, oversize: a Result in words, never an exception ------------------------------

def test_nothing_listening_is_not_available_in_words():
    address = f"127.0.0.1:{dead_port()}"
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


def test_an_endless_answer_is_cut_off():
    port, _ = _one_shot_server(b"SPAMD/1.1 0 EX_OK\r\n" + b"X" * (spamassassin.MAX_RESPONSE_BYTES + 10))
    result = spamassassin.check(message("hello"), f"127.0.0.1:{port}")
    assert not result.available and "far longer" in result.problem
