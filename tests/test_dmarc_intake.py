"""DMARC aggregate reports arriving in a bounce mailbox: stored once, moved, other mail untouched."""
import gzip
from email.message import EmailMessage
from pathlib import Path

import pytest

from app import security
from app.bounces import imap
from app.models import BounceMailbox
from app.models import DmarcRecord
from app.models import DmarcReport
from app.models import Team
from tests.dmarc_support import email_with
from tests.dmarc_support import report_xml
from tests.dmarc_support import zipped
from tests.imap_server import ImapServer

USER, PASSWORD = "ada@icloud.com", "abcd-efgh-ijkl-mnop"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dmarc"


@pytest.fixture
def server():
    imap_server = ImapServer(user=USER, password=PASSWORD)
    yield imap_server
    imap_server.stop()


def mailbox_for(team, port):
    return BounceMailbox.create(team=team, name="Bounces", host="127.0.0.1", port=port, security="none",
                                username=USER, password=security.encrypt(PASSWORD))


def personal_mail_with_xml():
    note = EmailMessage()
    note["From"], note["To"], note["Subject"] = "friend@example.com", USER, "The sitemap you asked for"
    note.set_content("Here it is.")
    note.add_attachment(b"<urlset><url>https://example.com/</url></urlset>", maintype="application",
                        subtype="xml", filename="sitemap.xml")
    return note.as_bytes()


def test_reports_in_the_mailbox_are_stored_once_and_moved(ctx, server):
    team = Team.create(name="Acme")
    other = Team.create(name="Other")
    server.add(email_with(gzip.compress(report_xml(records=3))))
    server.add(email_with(zipped([("r.xml", report_xml(records=3))]), "application/zip", "r.zip"))  # the same report
    server.add(email_with(gzip.compress(report_xml(records=2, report_id="r-2", org="google.com"))))
    server.add(personal_mail_with_xml())
    server.add(email_with(gzip.compress(b"<feedback>" + b" " * (8 * 1024 * 1024))))  # a bomb: refused, left
    box = mailbox_for(team, server.port)

    summary = imap.check_mailbox(box.id)

    assert (summary["dmarc_reports"], summary["dmarc_duplicates"], summary["other"], summary["moved"]) == (2, 1, 2, 3)
    assert sorted(DmarcReport.select(DmarcReport.report_id).where(DmarcReport.team == team.id).tuples()) == [
        ("r-1",), ("r-2",)]
    assert DmarcRecord.select().where(DmarcRecord.team == team.id).count() == 5
    assert not DmarcReport.select().where(DmarcReport.team == other.id).exists()
    assert {r.origin for r in DmarcReport.select()} == {"mailbox"}
    assert len(server.raw_messages("Loft/Processed")) == 3
    assert len(server.raw_messages("INBOX")) == 2  # the person's mail and the refused file stay
    words = imap.summary_in_words(imap.last_summary(BounceMailbox.get_by_id(box.id)))
    assert "2 DMARC reports, 1 DMARC report already stored moved" in words


def test_corpus_report_emails_through_the_mailbox(ctx, server):
    if not CORPUS.is_dir():
        pytest.skip(f"DMARC corpus not found at {CORPUS} (../shared is absent)")
    team = Team.create(name="Acme")
    names = ["mail-auth/100.eml", "mail-auth/101.eml", "mail-auth/103.eml", "parsedmarc/aggregate/twilight.eml",
             "parsedmarc/aggregate/mimecast-weird-gzip.eml", "andreialecu/email/email-source-with-gz.txt"]
    for name in names:
        server.add((CORPUS / name).read_bytes())
    summary = imap.check_mailbox(mailbox_for(team, server.port).id)
    assert summary["dmarc_reports"] == len(names)
    assert {r.org_name for r in DmarcReport.select()} == {"google.com", '"backschues.NET', "Outlook.com", "Mimecast",
                                                          "AMAZON-SES"}
