"""Complaints: ARF feedback reports (RFC 5965, and the DMARC failure reports of RFC 6591), and
List-Unsubscribe mailto requests, reported like an ARF opt-out."""
import re

from app.bounces.parse.mime import clean_address
from app.bounces.parse.mime import field_blocks
from app.bounces.parse.mime import fill_original
from app.bounces.parse.mime import get_field
from app.bounces.parse.mime import header
from app.bounces.parse.mime import original_from_text
from app.bounces.parse.mime import original_text
from app.bounces.parse.mime import text_of
from app.bounces.parse.report import RecipientResult


def parse_arf(report, msg, arf_parts, original, texts, raw_text):
    report.format = "arf"
    report.reason = "feedback"
    fields = []
    for part in arf_parts:
        for block in field_blocks(text_of(part)):
            fields.extend(block)
    prose = "\n".join(text_of(part) for ctype, part in texts)
    if not fields:
        # A failure report without its machine-readable part (e.g. Exim's plain-text DMARC report).
        fields = [b for block in field_blocks(prose) for b in block]
    feedback_type = (get_field(fields, "Feedback-Type") or "").strip().lower()
    if not feedback_type:
        feedback_type = "auth-failure" if re.search(r"dmarc|dkim|spf|authentication", raw_text[:20000], re.I) \
            else "abuse"
    report.feedback_type = feedback_type
    report.source_ip = get_field(fields, "Source-IP")
    recipients = [clean_address(value) for key, value in fields if key.lower() in ("original-rcpt-to", "removal-recipient")]
    recipients = [r for r in recipients if r]
    fill_original(report, original, original_text(prose, raw_text))
    if not recipients and report.original_to:
        recipients = [report.original_to]
    if not recipients and original is None:
        loose = original_from_text(prose)
        to = clean_address(header(loose, "To")) if loose is not None else ""
        if to:
            recipients = [to]
    seen = []
    for address in recipients:
        if address not in seen:
            seen.append(address)
    report.recipients = seen
    if feedback_type == "auth-failure":
        kind = "auth"
    elif feedback_type in ("not-spam",):
        kind = "none"
    else:
        kind = "complaint"
    report.kind = kind
    report.is_complaint = kind == "complaint"
    report.results = [RecipientResult(email=a, kind=kind, reason="feedback") for a in seen]
    report.reason = "feedback" if kind == "complaint" else feedback_type
    return report


def is_unsubscribe_request(msg, subject):
    """A List-Unsubscribe mailto request (Apple Mail marks its own with X-Apple-Unsubscribe)."""
    if header(msg, "X-Apple-Unsubscribe").lower() == "true":
        return True
    return bool(re.match(r"^\s*unsubscribe\s+[A-Za-z0-9_-]{16,}\s*$", subject or "", re.I))


def parse_unsubscribe_request(report, msg):
    """An opt-out by mail: reported like an ARF "opt-out" for the person who sent it."""
    report.format = "mailto"
    report.kind = "complaint"
    report.is_complaint = True
    report.feedback_type = "opt-out"
    report.reason = "feedback"
    token = re.search(r"unsubscribe\s+([A-Za-z0-9_-]{16,})", report.subject or "", re.I)
    report.unsubscribe_token = token.group(1) if token else ""
    sender = clean_address(header(msg, "Reply-To") or header(msg, "From"))
    report.recipients = [sender] if sender else []
    report.results = [RecipientResult(email=sender, kind="complaint", reason="feedback")] if sender else []
    return report
