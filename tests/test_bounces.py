"""Parsing and classifying single bounces: RFC 3464 DSNs built here with the
stdlib, non-standard prose, the pitfalls from the deliverability reference,
hostile input, and `flask bounces parse`."""
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.bounces import classify
from app.bounces.parse import parse_message

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

ORIGINAL = (b"From: News <news@loft.example>\r\nTo: alice@example.org\r\nSubject: Hello\r\n"
            b"Message-ID: <loft.7.42.abcdefghij@loft.example>\r\nX-Loft-Token: QmFzZTY0dG9rZW5fX19fX19fX18\r\n"
            b"\r\nHi Alice\r\n")


def dsn(recipients, original=ORIGINAL, headers_only=False, human="Your message could not be delivered."):
    """A multipart/report DSN as bytes (CRLF). recipients: [(address, action, status, diagnostic)]."""
    blocks = ["Reporting-MTA: dns; mx.example.net"]
    for address, action, code, diagnostic in recipients:
        block = f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {code}\r\n" \
                f"Remote-MTA: dns; mx.example.org"
        if diagnostic:
            block += f"\r\nDiagnostic-Code: smtp; {diagnostic}"
        blocks.append(block)
    if headers_only:
        returned = "Content-Type: text/rfc822-headers\r\n\r\n" + original.split(b"\r\n\r\n")[0].decode()
    else:
        returned = "Content-Type: message/rfc822\r\n\r\n" + original.decode()
    text = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: news@loft.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.1@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\n{human}\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n" + "\r\n\r\n".join(blocks) + "\r\n\r\n"
        f"--B\r\n{returned}\r\n--B--\r\n")
    return text.encode()


def one(status, diagnostic, action="failed"):
    return parse_message(dsn([("alice@example.org", action, status, diagnostic)]))


# --- RFC 3464 -------------------------------------------------------------------------

def test_hard_bounce_from_a_dsn_with_the_original_message():
    report = one("5.1.1", "550 5.1.1 <alice@example.org>: Recipient address rejected: User unknown")
    data = report.as_json()
    assert (data["is_bounce"], data["hard"], data["kind"], data["reason"], data["status"]) == \
        (True, True, "hard", "userunknown", "5.1.1")
    assert data["recipients"] == ["alice@example.org"]
    assert data["original_message_id"] == "<loft.7.42.abcdefghij@loft.example>"
    assert data["loft_token"] == "QmFzZTY0dG9rZW5fX19fX19fX18"
    assert data["remote_mta"] == "mx.example.org"
    assert data["format"] == "dsn"
    json.dumps(data)  # the CLI prints it


def test_token_and_message_id_from_returned_headers_only():
    report = parse_message(dsn([("alice@example.org", "failed", "5.1.1", "550 no such user")], headers_only=True))
    assert report.loft_token == "QmFzZTY0dG9rZW5fX19fX19fX18"
    assert report.original_message_id == "<loft.7.42.abcdefghij@loft.example>"


def test_multiple_recipients_each_get_their_own_verdict():
    report = parse_message(dsn([
        ("alice@example.org", "failed", "5.1.1", "550 5.1.1 user unknown"),
        ("bob@example.org", "failed", "5.2.2", "552 5.2.2 mailbox full"),
        ("carol@example.org", "failed", "5.7.1", "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org"),
    ]))
    assert [(r.email, r.kind) for r in report.results] == [
        ("alice@example.org", "hard"), ("bob@example.org", "soft"), ("carol@example.org", "block")]
    assert report.recipients == ["alice@example.org", "bob@example.org", "carol@example.org"]


def test_success_and_relayed_dsns_are_not_bounces():
    assert not one("2.0.0", "250 2.0.0 OK", action="delivered").is_bounce
    assert not one("2.0.0", "", action="relayed").is_bounce


def test_a_delay_notice_is_soft_and_marked_delayed():
    report = one("4.4.7", "421 4.4.7 connection timed out", action="delayed")
    assert report.is_bounce and not report.hard
    assert report.results[0].action == "delayed"


# --- Classification: the pitfalls of the deliverability reference (section 2.3) ------------

@pytest.mark.parametrize("status, diagnostic, kind, reason", [
    ("5.1.1", "550 5.1.1 The email account that you tried to reach does not exist.", "hard", "userunknown"),
    ("5.1.2", "550 5.1.2 Host unknown", "hard", "hostunknown"),
    ("5.1.10", "556 5.1.10 Recipient address has null MX", "hard", "notaccept"),
    ("5.0.0", "452-4.2.2 The recipient's inbox is out of storage space.", "soft", "mailboxfull"),
    ("5.4.7", "554 4.4.7 Message expired: unable to deliver in 840 minutes.<452-4.2.2 mailbox full>", "soft",
     "mailboxfull"),
    ("5.2.2", "552 5.2.2 Mailbox full", "soft", "mailboxfull"),
    ("4.4.1", "421 4.4.1 connection timed out", "soft", "networkerror"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "block",
     "blocked"),
    ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering.", "block", "spamdetected"),
    ("5.7.26", "550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail "
               "users. Authentication results: DMARC policy of loft.example is reject", "auth", "authfailure"),
    ("5.7.1", "550 5.7.1 SPF check failed: loft.example does not designate 192.0.2.1 as permitted sender",
     "auth", "authfailure"),
    ("5.7.25", "550 5.7.25 The IP address sending this message does not have a PTR record setup", "block",
     "requireptr"),
    ("5.7.1", "550 5.7.1 Message rejected: You have exceeded your daily sending limit", "limit", "accountlimit"),
    ("5.4.5", "550 5.4.5 Daily SMTP relay limit exceeded for user", "limit", "accountlimit"),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled.", "soft", "suspend"),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "block", "mesgtoobig"),
    ("5.7.1", "554 5.7.1 <alice@example.org>: Relay access denied", "block", "norelaying"),
])
def test_classification(status, diagnostic, kind, reason):
    got_kind, got_reason, _ = classify.classify(status, diagnostic)
    assert (got_kind, got_reason) == (kind, reason)


def test_user_unknown_after_data_is_a_filter_not_a_dead_address():
    # The server took RCPT TO, then refused the content with "user unknown": do not blame the address.
    assert classify.classify("5.0.0", "550 Unknown user alice@example.org", command="DATA")[0] == "soft"
    assert classify.classify("5.0.0", "550 Unknown user alice@example.org", command="RCPT")[0] == "hard"
    assert classify.classify("5.1.7", "550 5.1.7 No such domain", command="MAIL")[1] == "rejected"


def test_most_specific_status_wins():
    assert classify.best_status("5.0.0", "smtp; 452-4.2.2 over quota") == "4.2.2"
    assert classify.best_status("", "550 5.1.1 user unknown") == "5.1.1"
    assert classify.best_status("", "550 user unknown") == "5.0.0"
    assert classify.best_status("", "host 192.0.2.4.5 said nothing") == ""  # not a status code inside an IP


# --- Non-standard bounces, auto-replies, non-bounces ---------------------------------------

def test_qmail_style_prose_bounce():
    raw = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: news@loft.example\r\nSubject: failure notice\r\n\r\n"
           b"Hi. This is the qmail-send program at mx.example.net.\r\n"
           b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
           b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
           b"<alice@example.org>:\r\n192.0.2.1 does not like recipient.\r\n"
           b"Remote host said: 550 5.1.1 <alice@example.org>... User unknown\r\n"
           b"Giving up on 192.0.2.1.\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n" + ORIGINAL)
    report = parse_message(raw)
    assert (report.is_bounce, report.hard, report.recipients, report.format) == \
        (True, True, ["alice@example.org"], "text")
    assert report.loft_token == "QmFzZTY0dG9rZW5fX19fX19fX18"
    assert report.original_message_id == "<loft.7.42.abcdefghij@loft.example>"


def test_exim_style_prose_bounce_with_failed_recipients_header():
    raw = (b"X-Failed-Recipients: bob@example.org\r\nFrom: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n"
           b"To: news@loft.example\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n"
           b"This message was created automatically by mail delivery software.\r\n\r\n"
           b"A message that you sent could not be delivered to one or more of its\r\n"
           b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
           b"  bob@example.org\r\n    SMTP error from remote mail server after RCPT TO:<bob@example.org>:\r\n"
           b"    552 5.2.2 Mailbox quota exceeded\r\n\r\n"
           b"------ This is a copy of the message, including all the headers. ------\r\n\r\n" + ORIGINAL)
    report = parse_message(raw)
    assert (report.is_bounce, report.kind, report.reason, report.recipients) == \
        (True, "soft", "mailboxfull", ["bob@example.org"])


def test_an_html_only_bounce_is_read_through_the_one_html_to_text():
    """The same converter as the text part of campaign mail (app.content.text): no style sheet
    in the words, a link keeps its address, entities are decoded."""
    raw = (b"From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>\r\nTo: news@loft.example\r\n"
           b"Subject: Delivery Status Notification (Failure)\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><head><style>p { color: red }</style></head><body>"
           b"<h2>Address not found</h2><p>Your message wasn't delivered to <b>alice@example.org</b> because the "
           b"address couldn't be found.</p><p><a href=\"https://support.example.net/nosuchuser\">Learn more</a></p>"
           b"<p>The response from the remote server was:</p>"
           b"<p>550 5.1.1 &lt;alice@example.org&gt;: Recipient address rejected: User unknown</p></body></html>\r\n")
    report = parse_message(raw)
    assert (report.is_bounce, report.kind, report.reason, report.recipients) == \
        (True, "hard", "userunknown", ["alice@example.org"])
    assert "Learn more (https://support.example.net/nosuchuser)" in report.diagnostic
    assert "550 5.1.1 <alice@example.org>: Recipient address rejected" in report.diagnostic
    assert "color" not in report.diagnostic


def test_out_of_office_reply_is_not_a_bounce():
    reply = EmailMessage()
    reply["From"] = "alice@example.org"
    reply["To"] = "news@loft.example"
    reply["Subject"] = "Automatic reply: Hello"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am away until Monday.")
    report = parse_message(reply.as_bytes())
    assert report.is_auto_reply and not report.is_bounce and report.kind == "none"


def test_an_ordinary_message_is_nothing():
    note = EmailMessage()
    note["From"] = "alice@example.org"
    note["To"] = "news@loft.example"
    note["Subject"] = "Thanks for the newsletter"
    note.set_content("It was lovely, the user unknown joke made me laugh.")
    report = parse_message(note.as_bytes())
    assert not report.is_bounce and not report.is_complaint and report.reason == "not_bounce"


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff" * 500, b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: "
    b"message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nStatus: 9.9.9.9\r\n",
    b"\xef\xbb\xbfFrom: MAILER-DAEMON\r\nSubject: =?bogus?Q?x?=\r\nContent-Type: text/plain; charset=nonsense\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!notbase64",
    b"From: <<<@@@>>>\r\nTo: ,,,\r\nMessage-ID: <\r\n\r\n" + b"A" * 100000,
])
def test_broken_input_never_raises(raw):
    report = parse_message(raw)
    assert report.reason != "unparseable"
    json.dumps(report.as_json())


def test_huge_message_is_capped():
    raw = dsn([("alice@example.org", "failed", "5.1.1", "550 user unknown")]) + b"x" * (6 * 1024 * 1024)
    assert parse_message(raw).hard


# --- flask bounces parse -------------------------------------------------------------------------

def test_cli_prints_the_json_for_one_message(app, tmp_path):
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn([("alice@example.org", "failed", "5.1.1", "550 5.1.1 user unknown")]))
    result = app.test_cli_runner().invoke(args=["bounces", "parse", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["is_bounce"], data["hard"], data["reason"], data["recipients"], data["status"]) == \
        (True, True, "userunknown", ["alice@example.org"], "5.1.1")


def test_cli_on_a_corpus_file(app):
    path = CORPUS / "bounces" / "lhost-postfix-05.eml"
    if not path.is_file():
        pytest.skip(f"corpus file not found: {path} (../shared is absent)")
    result = app.test_cli_runner().invoke(args=["bounces", "parse", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["is_bounce"] is True and data["hard"] is True and data["recipients"] == ["kijitora@example.org"]


def test_cli_directory_summary_and_usage_errors(app, tmp_path):
    (tmp_path / "a.eml").write_bytes(dsn([("alice@example.org", "failed", "5.1.1", "550 user unknown")]))
    (tmp_path / "b.eml").write_bytes(dsn([("bob@example.org", "failed", "5.2.2", "552 mailbox full")]))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["bounces", "parse", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [line["kind"] for line in lines[:2]] == ["hard", "soft"]
    assert lines[-1]["files"] == 2 and lines[-1]["bounces"] == 2 and lines[-1]["hard"] == 1
    refused = runner.invoke(args=["bounces", "parse"])
    assert refused.exit_code != 0 and "either a message file" in refused.output
    missing = runner.invoke(args=["bounces", "parse", str(tmp_path / "nope.eml")])
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_report_for_a_provider_event():
    from app.bounces.parse import report_for
    bounce = report_for("Alice@Example.org", status="5.1.1", diagnostic="smtp; 550 5.1.1 user unknown",
                        message_id="<loft.1.2.abcdefghij@loft.example>")
    assert (bounce.is_bounce, bounce.hard, bounce.recipients, bounce.original_message_id) == \
        (True, True, ["alice@example.org"], "<loft.1.2.abcdefghij@loft.example>")
    stated = report_for("bob@example.org", kind="hard")  # "Permanent", no reply text
    assert stated.hard and stated.kind == "hard"
    complaint = report_for("carol@example.org", feedback_type="abuse", token="tok")
    assert complaint.is_complaint and complaint.loft_token == "tok" and complaint.recipients == ["carol@example.org"]
    assert report_for("dan@example.org", status="4.2.2", diagnostic="452 mailbox full").kind == "soft"


def test_utf8_delivery_status_rfc6533():
    raw = ("From: MAILER-DAEMON@mx.example.net\r\nTo: news@loft.example\r\nSubject: Undelivered Mail\r\n"
           'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=global-delivery-status; boundary="B"\r\n'
           "\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNot delivered.\r\n\r\n"
           "--B\r\nContent-Type: message/global-delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
           "Final-Recipient: utf-8; 用户@例子.广告\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
           "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n"
           "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n"
           "--B\r\nContent-Type: message/global-headers\r\n\r\nMessage-ID: <loft.1.2.abcdefghij@x.example>\r\n"
           "X-Loft-Token: abcdefghijklmnop\r\n\r\n--B--\r\n").encode()
    report = parse_message(raw)
    assert report.recipients == ["用户@例子.广告", "bob@example.org"]
    assert [r.kind for r in report.results] == ["hard", "soft"]
    assert (report.original_message_id, report.loft_token) == ("<loft.1.2.abcdefghij@x.example>", "abcdefghijklmnop")
