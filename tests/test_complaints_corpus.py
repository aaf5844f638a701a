"""Complaint parsing against ../shared/corpus/complaints: ARF (RFC 5965) reports
from sisimai's and mail-auth's test sets, DMARC failure reports (RFC 6591)
from parsedmarc's, an Amazon SES complaint mailed as JSON and an Apple Mail
unsubscribe request. expected.csv gives the feedback type and, for sisimai's
files, how many recipients the report names. Run with -s for the figures.
"""
import csv
from pathlib import Path

import pytest

from app.bounces.parse import parse_message

COMPLAINTS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "complaints"


def rows():
    if not (COMPLAINTS / "expected.csv").is_file():
        pytest.skip(f"complaint corpus not found at {COMPLAINTS} (../shared is absent)")
    with open(COMPLAINTS / "expected.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_complaint_is_read_with_its_feedback_type_and_recipients():
    found, wrong = 0, []
    labelled = rows()
    for row in labelled:
        report = parse_message((COMPLAINTS / row["file"]).read_bytes())
        expected_type = row["feedback_type"]
        ok = report.feedback_type == expected_type and not report.is_bounce
        # An auth-failure report is about our authentication, not a person's complaint.
        ok = ok and (report.kind == "auth" if expected_type == "auth-failure" else report.is_complaint)
        if row["recipients"]:
            ok = ok and len(report.recipients) == int(row["recipients"])
        if ok:
            found += 1
        else:
            wrong.append(f"  {row['file']}: expected {expected_type}/{row['recipients'] or '?'}; got "
                         f"{report.kind} {report.feedback_type} {report.recipients}")
    text = f"complaints: {found}/{len(labelled)} agree ({found / len(labelled):.1%})\n" + "\n".join(wrong)
    print("\n" + text)
    assert found == len(labelled), text


def test_arf_details_for_matching_the_send():
    rows()
    report = parse_message((COMPLAINTS / "sisimai" / "arf-21.eml").read_bytes())
    assert report.is_complaint and report.kind == "complaint" and report.feedback_type == "abuse"
    assert report.recipients == ["kijitora@example.org"]
    assert report.source_ip == "198.51.100.224"
    assert report.original_message_id.startswith("<") and report.original_message_id.endswith(">")
    many = parse_message((COMPLAINTS / "sisimai" / "arf-16.eml").read_bytes())
    assert len(many.recipients) == 7 and len(set(many.recipients)) == 7


def test_dmarc_failure_report_names_the_reported_message():
    rows()
    name = "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml"
    report = parse_message((COMPLAINTS / "parsedmarc" / "failure" / name).read_bytes())
    assert (report.kind, report.feedback_type, report.source_ip) == ("auth", "auth-failure", "10.10.10.10")
    assert report.recipients == ["peter.pan@domain.de"]
    assert not report.is_complaint


def test_amazon_ses_complaint_mailed_as_json():
    rows()
    report = parse_message((COMPLAINTS / "sisimai" / "lhost-amazonses-11.eml").read_bytes())
    assert (report.is_complaint, report.feedback_type, report.recipients) == \
        (True, "abuse", ["complaint@simulator.amazonses.com"])


def test_apple_mail_unsubscribe_request_is_an_opt_out():
    rows()
    report = parse_message((COMPLAINTS / "sisimai" / "arf-26.eml").read_bytes())
    assert (report.is_complaint, report.feedback_type, report.recipients, report.is_auto_reply) == \
        (True, "opt-out", ["example@icloud.com"], False)
