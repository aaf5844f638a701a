"""Bounce classification by rule, on DSNs written here (not the shared corpus).

One case per reason family of the standards (RFC 3463 status codes, RFC 3464
structure) and per mistake issue 9 found on bounces Loft had never seen:
policy and spam refusals read as "user unknown", unknown users behind the
generic 5.0.0/5.5.0 codes of receivers that document them, network errors and
expired deliveries read as "unknown host", Japanese carrier formats not seen
as bounces. Each case says why the answer is right, so the behaviour is shown
on messages that are not the corpus.
"""
import pytest

from app.bounces import classify
from app.bounces.parse import parse_message

ORIGINAL = ("From: News <news@loft.example>\r\nTo: alice@example.com\r\nSubject: Hello\r\n"
            "Message-ID: <loft.1.2.abcdefghij@loft.example>\r\n\r\nHi Alice\r\n")


def dsn(status, diagnostic, remote="mx.example.com", reporting="mx.example.net", human="", action="failed",
        recipient="alice@example.com"):
    """A multipart/report DSN (RFC 3464) about one recipient, as bytes."""
    block = f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
    if remote:
        block += f"Remote-MTA: dns; {remote}\r\n"
    if diagnostic:
        block += f"Diagnostic-Code: smtp; {diagnostic}\r\n"
    text = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: news@loft.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\n{human or 'Your message could not be delivered.'}\r\n\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {reporting}\r\n\r\n{block}\r\n"
        f"--B\r\nContent-Type: message/rfc822\r\n\r\n{ORIGINAL}\r\n--B--\r\n")
    return text.encode()


def verdict(raw):
    report = parse_message(raw)
    assert report.is_bounce, report.as_json()
    return report.kind, report.reason


# --- RFC 3463: the status code decides the family, the words refine it --------------------------------

@pytest.mark.parametrize("status, diagnostic, kind, reason", [
    # X.1.x addressing: the address is dead
    ("5.1.1", "550 5.1.1 <alice@example.com>: Recipient address rejected: User unknown", "hard", "userunknown"),
    ("5.1.2", "550 5.1.2 Host unknown: example.com", "hard", "hostunknown"),
    ("5.1.6", "550 5.1.6 Recipient has moved", "hard", "hasmoved"),
    ("5.1.10", "556 5.1.10 Recipient address has null MX", "hard", "notaccept"),
    # X.2.x mailbox: there, but cannot take it now
    ("5.2.2", "552 5.2.2 Mailbox full", "soft", "mailboxfull"),
    ("4.2.2", "452 4.2.2 Over quota", "soft", "mailboxfull"),
    ("5.2.1", "550 5.2.1 The account has been disabled", "soft", "suspend"),
    # X.3 mail system, X.6 content: fix the message, the contact is not to blame
    ("5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size", "block", "mesgtoobig"),
    ("5.6.0", "554 5.6.0 Message contains invalid header", "block", "contenterror"),
    # X.4.x network and routing: temporary, never "unknown host"
    ("4.4.1", "421 4.4.1 Connection timed out", "soft", "networkerror"),
    ("5.4.7", "554 5.4.7 Delivery expired (message too old)", "soft", "expired"),
    # X.7.x security and policy: they refused *us*
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "block",
     "blocked"),
    ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering.", "block", "spamdetected"),
    ("5.7.1", "554 5.7.1 <alice@example.com>: Relay access denied", "block", "norelaying"),
    ("5.7.26", "550 5.7.26 Unauthenticated email from loft.example is not accepted due to domain's DMARC policy",
     "auth", "authfailure"),
    ("5.7.25", "550 5.7.25 The IP address sending this message does not have a PTR record setup", "block",
     "requireptr"),
])
def test_status_code_families(status, diagnostic, kind, reason):
    assert verdict(dsn(status, diagnostic)) == (kind, reason)


# --- Policy and content filtering is not an unknown user ----------------------------------------------

@pytest.mark.parametrize("status, diagnostic", [
    # Exchange/Office 365 append the generic 550 text to a policy refusal.
    ("5.7.1", "550 5.7.1 Message rejected due to content restrictions. Requested action not taken: "
              "mailbox unavailable"),
    ("5.7.1", "550 5.7.1 Delivery not authorized, message refused. Recipient address rejected"),
    ("5.7.1", "550 5.7.1 <alice@example.com>: Recipient address rejected: Message rejected by spam filter"),
    # no enhanced code, or only the generic one: the words say it was a filter
    ("5.0.0", "550 Message rejected by spam filter: mailbox unavailable"),
    ("5.0.0", "554 Message refused: listed in bl.example.net; user unknown"),
    ("", "550 Blocked by policy: address invalid for this sender"),
])
def test_policy_refusals_never_suppress_the_contact(status, diagnostic):
    kind, reason = verdict(dsn(status, diagnostic))
    assert kind != "hard", (kind, reason)


def test_user_unknown_words_at_rcpt_with_a_policy_code_without_policy_words_is_still_dead():
    # RFC 5321: the answer to RCPT TO is about the recipient; the x.7 code alone does not change that.
    assert classify.classify("5.7.1", "550 5.7.1 User unknown", command="RCPT")[:2] == ("hard", "userunknown")
    assert classify.classify("5.7.1", "550 5.7.1 User unknown")[0] != "hard"


# --- Unknown users behind generic 5.0.0 / 5.5.0 codes ---------------------------------------------------

def test_generic_code_with_user_unknown_at_rcpt_is_hard():
    human = "... while talking to mx.example.com.:\r\n>>> RCPT To:<alice@example.com>\r\n<<< 550 User unknown"
    assert verdict(dsn("5.0.0", "550 User unknown", human=human)) == ("hard", "userunknown")


def test_generic_code_with_user_unknown_after_data_is_a_filter():
    human = "... while talking to mx.example.com.:\r\n>>> DATA\r\n<<< 550 User unknown"
    assert verdict(dsn("5.0.0", "550 User unknown", human=human))[0] == "soft"


def test_generic_code_without_the_smtp_step_stays_soft():
    # sisimai's reading, borne out by the labels: "User unknown" behind a generic 5.0.0/5.5.0 with
    # nothing saying it answered RCPT TO may be a content filter's words (it often answers after
    # DATA), even when the reply names the address. Only receivers that document otherwise
    # (au/KDDI, Outlook.com above) or an answer to RCPT TO make it a dead address.
    assert verdict(dsn("5.0.0", "550 <alice@example.com>: User unknown"))[0] == "soft"
    assert verdict(dsn("5.0.0", "550 User unknown"))[0] == "soft"


def test_user_unknown_behind_5_5_0_is_hard():
    # 5.5.0 is a protocol-class code a relay puts on a reply it could not map; the words decide.
    assert verdict(dsn("5.5.0", "mail.local: unknown user: alice")) == ("hard", "userunknown")
    assert verdict(dsn("5.5.0", "550 5.5.0 <alice@example.com>... User unknown")) == ("hard", "userunknown")


def test_links_and_addresses_are_not_policy_words():
    raw = dsn("5.2.1", "550 5.2.1 <filtered@example.com>: Recipient address rejected: User unknown. "
                       "See https://help.example.com/reason/#filtered",
              human="mx.example.com did not like our RCPT TO:", recipient="filtered@example.com")
    assert verdict(raw) == ("hard", "userunknown")


def test_oracle_messaging_server_rejected_address_means_rcpt():
    human = "Recipient address: alice@example.com\r\nReason: Remote SMTP server has rejected address"
    assert verdict(dsn("5.0.0", "550 <alice@example.com>: User unknown", human=human)) == ("hard", "userunknown")


def test_outlook_com_documents_5_5_0_mailbox_unavailable_as_no_such_user():
    # Microsoft: "550 5.5.0 Requested action not taken: mailbox unavailable" = recipient not found (like 5.1.10)
    raw = dsn("5.5.0", "550 Requested action not taken: mailbox unavailable", remote="",
              reporting="BAY004-MC1F22.hotmail.com")
    assert verdict(raw) == ("hard", "userunknown")
    # The same generic words from a receiver that documents nothing stay soft (sisimai's reading).
    assert verdict(dsn("5.0.0", "550 Requested action not taken: mailbox unavailable"))[0] == "soft"


def test_office365_access_denied_codes():
    raw = dsn("5.4.1", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
              remote="mail.protection.outlook.com")
    assert verdict(raw) == ("hard", "userunknown")
    raw = dsn("5.7.504", "550 5.7.504 Recipient address rejected: Access denied",
              remote="mail.protection.outlook.com")
    assert verdict(raw)[0] == "soft"


def test_kddi_au_says_who_refused_by_the_address_in_the_reply():
    # au: "550 <address>: User unknown" = no such mailbox; "550 : User unknown" = the user's own filter.
    assert verdict(dsn("5.0.0", "550 <alice@example.com>: User unknown", remote="lsean.ezweb.ne.jp")) == \
        ("hard", "userunknown")
    assert verdict(dsn("5.0.0", "550 : User unknown", remote="lsean.ezweb.ne.jp")) == ("soft", "filtered")


# --- Network errors and expired deliveries are not unknown hosts ----------------------------------------

@pytest.mark.parametrize("status, diagnostic, reason", [
    ("4.4.7", "Message expired: Host or domain name not found. Name service error for name=example.com type=MX",
     "expired"),
    ("5.4.7", "554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.0 Unable to lookup DNS>",
     "expired"),
    ("5.0.0", "Host or domain name not found. Name service error for name=example.com type=A: Host not found, "
              "try again", "networkerror"),
    ("5.4.4", "retry timeout exceeded: all hosts for example.com have been failing for a long time", "expired"),
    ("5.1.2", "Host or domain name not found. Name service error for name=example.com type=MX: Host not found, "
              "try again", "networkerror"),
    ("5.0.0", "connect to mx.example.com[192.0.2.1]:25: Connection refused", "networkerror"),
    ("5.0.0", "connect to mx.example.com[192.0.2.1]:25: No route to host", "networkerror"),
])
def test_network_and_expired_are_soft(status, diagnostic, reason):
    assert verdict(dsn(status, diagnostic)) == ("soft", reason)


def test_a_domain_that_does_not_exist_is_still_hard():
    assert verdict(dsn("5.1.2", "Host or domain name not found. Name service error for name=example.com type=MX: "
                                "Host not found")) == ("hard", "hostunknown")
    assert verdict(dsn("5.4.4", "Host or domain name not found. Name service error for name=example.com type=MX: "
                                "Host not found")) == ("hard", "hostunknown")


# --- Structure: formats without a DSN ---------------------------------------------------------------------

def test_japanese_carrier_bounce_in_undeclared_iso_2022_jp_is_a_bounce():
    # A carrier's text bounce: the Japanese body in ISO-2022-JP with no charset declared and no DSN part.
    body = "お客様が送信されたメールは、宛先が存在しないため配信できませんでした。\r\n\r\n<alice@example.com>\r\n"
    raw = (b"Return-Path: <>\r\nFrom: postmaster@mx.example.jp\r\nTo: news@loft.example\r\n"
           b"Subject: =?ISO-2022-JP?B?GyRCR1s/LiU3JWolZyVrGyhC?=\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain\r\n\r\n" + body.encode("iso-2022-jp") + b"\r\n" + ORIGINAL.encode())
    report = parse_message(raw)
    assert report.is_bounce and report.recipients == ["alice@example.com"]


def test_au_style_english_text_bounce():
    raw = (b"Return-Path: <>\r\nFrom: Postmaster@mx.example.jp\r\nTo: news@loft.example\r\n"
           b"Subject: Mail System Error - Returned Mail\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
           b"Each of the following recipients was rejected by a remote mail server.\r\n"
           b"    Recipient: <alice@example.com>\r\n    >>> RCPT TO:<alice@example.com>\r\n"
           b"    <<< 550 <alice@example.com>: User unknown\r\n")
    assert verdict(raw) == ("hard", "userunknown")


def test_product_names_are_not_reasons():
    # "InterScan Messaging Security Suite" names a product, not a security error.
    raw = (b"From: postmaster@mx.example.com\r\nTo: news@loft.example\r\nSubject: Mail could not be delivered\r\n"
           b"Content-Type: text/plain\r\n\r\n****** Message from InterScan Messaging Security Suite ******\r\n"
           b"Unable to deliver message to <alice@example.com>. Please check if address is correct.\r\n")
    assert verdict(raw) == ("hard", "userunknown")


# --- Receivers that document their own wording --------------------------------------------------------

@pytest.mark.parametrize("remote, status, diagnostic, kind, reason", [
    # Yahoo: "dd ... is no longer valid" is a disabled account; "doesn't have a ... account" is none at all
    ("mta6.am0.yahoodns.net", "5.0.0", "554 delivery error: dd alice@example.com is no longer valid. [-20]",
     "soft", "suspend"),
    ("mta6.am0.yahoodns.net", "5.0.0", "554 delivery error: dd This user doesn't have a yahoo.com account "
                                       "(alice@example.com) [0]", "hard", "userunknown"),
    # iCloud
    ("mx01.mail.icloud.com", "5.1.1", "550 5.1.1 <alice@example.com>: inactive email address", "hard",
     "userunknown"),
    ("mx01.mail.icloud.com", "5.7.1", "550 5.7.1 [CS01] Message rejected due to local policy", "block",
     "policyviolation"),
    # Orange / La Poste: the number after the label says why
    ("smtp-in.orange.fr", "5.1.1", "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid recipient. "
                                   "OFR_416 [416]", "hard", "userunknown"),
    ("smtp-in.laposte.net", "5.5.0", "550 5.5.0 Boite du destinataire archivee. Archived recipient. LPN007_420",
     "soft", "suspend"),
    # Cox: "recipient rejected" is its word for no such account
    ("mx.east.cox.net", "5.0.0", "550 recipient rejected", "hard", "userunknown"),
    # Tencent: the access-denied wording is its rate limit
    ("mx3.qq.com", "5.0.0", "550 Mailbox unavailable or access denined", "block", "speeding"),
])
def test_receiver_documented_wording(remote, status, diagnostic, kind, reason):
    assert verdict(dsn(status, diagnostic, remote=remote)) == (kind, reason)


def test_receiver_is_judged_by_the_recipient_domain_before_relays():
    # A Yahoo address reported by an iCloud relay: Yahoo's wording applies.
    raw = dsn("5.0.0", "554 delivery error: dd alice@yahoo.example is no longer valid.", remote="",
              reporting="relay.me.com", recipient="alice@yahoo.com")
    assert verdict(raw) == ("soft", "suspend")


# --- Japanese carrier formats (no DSN, Japanese subjects) ----------------------------------------------

KDDI = ("From: no-reply@.dion.ne.jp\r\nTo: news@loft.example\r\n"
        "Subject: =?ISO-2022-JP?B?GyRCJWEhPCVrJE44WyRtJEckOSEjGyhC?=\r\nContent-Type: text/plain\r\n\r\n"
        "Your mail sent on: Thu, 29 Apr 2010 11:04:47 +0900\r\n"
        "    Could not be delivered to: <alice@example.com>\r\n    {why}\r\n")


@pytest.mark.parametrize("why, kind, reason", [
    ("As their mailbox is full.", "soft", "mailboxfull"),
    ("As the remote domain doesnt exist.", "hard", "hostunknown"),
    ("Due to the following SMTP relay error.", "block", "norelaying"),
])
def test_au_kddi_format_with_a_japanese_subject_is_a_bounce(why, kind, reason):
    report = parse_message(KDDI.format(why=why).encode())
    assert (report.is_bounce, report.kind, report.reason, report.recipients) == \
        (True, kind, reason, ["alice@example.com"])


def test_ezweb_spasign_ng_marks_the_recipients_own_filter():
    raw = (b"Return-Path: <>\r\nFrom: Postmaster@mx.example.jp\r\nTo: news@loft.example\r\nX-SPASIGN: NG\r\n"
           b"Subject: Mail System Error - Returned Mail\r\nContent-Type: text/plain\r\n\r\n"
           b"<alice@example.com>: 550 user unknown (in reply to RCPT TO command)\r\n")
    assert verdict(raw) == ("soft", "filtered")


def test_an_ordinary_message_from_a_no_reply_sender_is_not_a_bounce():
    raw = (b"From: no-reply@.dion.ne.jp\r\nTo: news@loft.example\r\nSubject: Your invoice\r\n"
           b"Content-Type: text/plain\r\n\r\nThank you for your order.\r\n")
    assert not parse_message(raw).is_bounce


def test_provider_events_read_the_receivers_wording_too():
    # A webhook event (SES, Postmark, ...) carries the recipient's MX reply; Yahoo's "no longer valid"
    # is a disabled account there as well.
    from app.bounces.parse import report_for
    report = report_for("alice@yahoo.com", "5.0.0", "554 delivery error: dd alice@yahoo.com is no longer valid.")
    assert (report.kind, report.reason) == ("soft", "suspend")


# --- A recipient refused by name at RCPT TO -----------------------------------------------------------

def test_recipient_address_rejected_access_denied_at_rcpt_is_the_recipient():
    # Postfix access(5) REJECT on a recipient answers "<addr>: Recipient address rejected: Access denied";
    # the refused thing is the recipient address, so at RCPT TO the address cannot be reached.
    diagnostic = "554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied"
    assert classify.classify("5.7.1", diagnostic, command="RCPT")[:2] == ("hard", "userunknown")
    human = ("<alice@example.com>: host mx.example.com[192.0.2.9] said: " + diagnostic +
             " (in reply to RCPT TO command)")
    assert verdict(dsn("5.7.1", diagnostic, human=human)) == ("hard", "userunknown")


@pytest.mark.parametrize("diagnostic, command", [
    ("554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied", "DATA"),  # after the content
    ("554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied", ""),  # step unknown
    ("554 5.7.1 <news@loft.example>: Sender address rejected: Access denied", "RCPT"),  # our sender
    ("550 5.7.1 <alice@example.com>... Access denied", "RCPT"),  # no word that the recipient is refused
    ("554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied; client [192.0.2.1] "
     "blocked using bl.example.net", "RCPT"),  # a blocklist named beside it
])
def test_access_denied_that_is_not_the_recipients_own_stays_policy(diagnostic, command):
    assert classify.classify("5.7.1", diagnostic, command=command)[0] != "hard"


# --- Advice to fix the address is not a passing fault -------------------------------------------------

def test_check_the_domain_and_try_again_is_not_a_temporary_failure():
    # "Please check the domain and try again" tells the sender the address is wrong; "try again" there
    # is advice after a correction, not a transient DNS or network trouble to wait out.
    diagnostic = ("554 Your message could not be delivered because the domain is not reachable. "
                  "Please check the domain and try again")
    assert classify.classify("5.5.0", diagnostic)[:2] == ("hard", "hostunknown")
    assert verdict(dsn("5.5.0", diagnostic)) == ("hard", "hostunknown")


@pytest.mark.parametrize("diagnostic", [
    "451 4.4.0 Host not found for example.com, try again later",  # a lookup that failed for now
    "550 Host unknown: lookup timed out, please try again",
    "550 Host unknown: please check your DNS and try again later",  # "later" still says to wait
])
def test_try_again_without_fixing_anything_stays_temporary(diagnostic):
    assert classify.classify("", diagnostic)[:2] == ("soft", "networkerror")


# --- The reporter's own words when no reply is quoted -------------------------------------------------

def test_reporter_saying_the_address_could_not_be_found_is_hard_without_a_reply():
    # A DSN with no Diagnostic-Code (only a bare 5.0.0) whose human part says the address itself could
    # not be found: the reporting system looked the mailbox up, so the address is dead.
    human = ("** Address not found **\r\n\r\nYour message wasn't delivered to alice@example.com because the "
             "address couldn't be found. Check for typos or unnecessary spaces and try again.")
    assert verdict(dsn("5.0.0", "", remote="", human=human)) == ("hard", "userunknown")


def test_loose_unknown_user_words_in_the_prose_without_a_reply_stay_soft():
    # The same bare DSN whose prose only mentions an unknown user somewhere cannot tell a missing mailbox
    # from a filter's refusal; and a domain that could not be found is not an unknown user either.
    human = "Delivery to alice@example.com failed: unknown user or content refused."
    assert verdict(dsn("5.0.0", "", remote="", human=human))[0] == "soft"
    human = ("Your message wasn't delivered to alice@example.com because the domain example.com couldn't be "
             "found.")
    assert verdict(dsn("5.0.0", "", remote="", human=human))[1] != "userunknown"


# --- Reply codes given as a labelled field --------------------------------------------------------------

def zoho_style(line):
    return ("From: mailer-daemon@mail.zoho.example\r\nTo: news@loft.example\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="Z"\r\n\r\n'
            "--Z\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
            "This message was created automatically by mail delivery software.\r\n"
            "A message that you sent could not be delivered to one or more of its recipients. "
            f"This is a permanent error.\r\n\r\n{line}\r\n\r\n\r\n"
            "Received:from mail.example.net by mx.example.net\r\n" + ORIGINAL + "--Z--\r\n").encode()


def test_labelled_error_code_is_the_reply_code():
    assert classify.find_reply("alice@example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :x") == 550
    assert classify.find_reply("Error, ERROR_CODE :421, ERROR_CODE :, Host not reachable.") == 421


def test_generic_reply_in_an_error_code_field_without_the_step_stays_soft():
    # The bare 550 with RFC 5321's generic "mailbox unavailable" and nothing naming the SMTP step is the
    # same case as "550 5.0.0 ... mailbox unavailable" in a DSN: a filter's refusal cannot be ruled out.
    raw = zoho_style("alice@example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :Requested action not "
                     "taken: mailbox unavailable")
    assert verdict(raw)[0] == "soft"
    raw = zoho_style("alice@example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <alice@example.com>: "
                     "Recipient address rejected: User unknown")
    assert verdict(raw) == ("hard", "userunknown")
