"""Helpers of the bounce tests: a campaign really sent through a loopback SMTP server, and the
returned messages wrapped the way a bounce mailbox receives them (a DSN, an ARF complaint)."""
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.sending_support import TestSmtp
from tests.sending_support import make_account
from tests.sending_support import make_campaign


def send_campaign(team, emails):
    """A campaign really sent to `emails` through a loopback SMTP server; {email: raw message}."""
    smtp = TestSmtp()
    try:
        mailing_list = MailingList.create(team=team, name="Newsletter")
        for email in emails:
            contact = Contact.create(team=team, email=email, domain=email.rpartition("@")[2])
            Subscription.create(contact=contact, list=mailing_list)
        make_account(team, smtp.port)
        campaign = make_campaign(team, [mailing_list])
        ledger.freeze_audience(campaign)
        assert sending_tasks.run_campaign(campaign.id).outcome == "completed"
        return {recipient: data for _, recipient, data in smtp.handler.messages}
    finally:
        smtp.stop()


def headers_of(message):
    return message.split(b"\r\n\r\n")[0]


def dsn(recipient, status, diagnostic, returned, action="failed", headers_only=True):
    """A DSN the way a relay returns one to the bounce mailbox, with the original (or its headers)."""
    part = (b"Content-Type: text/rfc822-headers\r\n\r\n" + headers_of(returned) + b"\r\n") if headers_only \
        else (b"Content-Type: message/rfc822\r\n\r\n" + returned)
    return (b"From: Mail Delivery System <MAILER-DAEMON@relay.example.net>\r\nTo: news@acme.test\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\n\r\n"
            + f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
              f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n".encode()
            + b"--B\r\n" + part + b"\r\n--B--\r\n")


def arf(recipient, returned, feedback_type="abuse"):
    return (b"From: feedback@fbl.example.net\r\nTo: fbl@acme.test\r\nSubject: FW: complaint\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"
            b"--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
            b"--F\r\nContent-Type: message/feedback-report\r\n\r\n"
            + f"Feedback-Type: {feedback_type}\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
              f"Original-Rcpt-To: {recipient}\r\nSource-IP: 192.0.2.1\r\n\r\n".encode()
            + b"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers_of(returned) + b"\r\n--F--\r\n")
