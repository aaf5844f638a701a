"""Amazon SES notifications (Bounce, Complaint, Delivery): JSON mailed to the bounce mailbox, or
posted to the SES webhook."""
import json
import re

from app.bounces import classify
from app.bounces.parse.mime import TOKEN_HEADER
from app.bounces.parse.mime import clean_address
from app.bounces.parse.report import RecipientResult
from app.bounces.parse.report import Report


def parse_ses(report, prose, msg):
    if '"notificationType"' not in prose and '"eventType"' not in prose:
        return None
    data = None
    text = re.sub(r"!\r?\n ", "", prose)  # sendmail's 990-character line breaks inside the JSON
    start = text.find("{")
    while start >= 0 and data is None:
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("Message"), str):  # an SNS envelope around the notification
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    result = report_from_ses(data)
    if result is None:
        return None
    result.message_id, result.subject = report.message_id, report.subject
    return result


def report_from_ses(data):
    """A Report from an Amazon SES notification (Bounce, Complaint, Delivery); None for other types."""
    kind = (data.get("notificationType") or data.get("eventType") or "").lower()
    mail = data.get("mail") or {}
    report = Report(format="ses")
    headers = {h.get("name", "").lower(): h.get("value", "") for h in mail.get("headers") or [] if isinstance(h, dict)}
    report.original_message_id = headers.get("message-id", "")
    report.loft_token = headers.get(TOKEN_HEADER.lower(), "")
    report.source_ip = (mail.get("sourceIp") or "")
    if kind == "bounce":
        bounce = data.get("bounce") or {}
        permanent = (bounce.get("bounceType") or "").lower() == "permanent"
        subtype = (bounce.get("bounceSubType") or "").lower()
        for item in bounce.get("bouncedRecipients") or []:
            address = clean_address(item.get("emailAddress", ""))
            diagnostic = item.get("diagnosticCode") or ""
            status = item.get("status") or ""
            recipient = RecipientResult(email=address, status=status, diagnostic=diagnostic,
                                        action=item.get("action") or "failed",
                                        remote_mta=bounce.get("remoteMtaIp") or bounce.get("reportingMTA") or "")
            kind_, reason, code = classify.classify(status, diagnostic, action=recipient.action, recipient=address,
                                                    remote_mta=bounce.get("reportingMTA") or "")
            if subtype in ("suppressed", "onaccountsuppressionlist"):
                kind_, reason = "hard", "suppressed"
            elif not diagnostic and not status:
                kind_, reason = ("hard", "userunknown") if permanent and subtype in ("general", "noemail") \
                    else ("soft", "onhold")
            recipient.kind, recipient.reason, recipient.status = kind_, reason, code or status
            recipient.hard = kind_ == "hard"
            report.results.append(recipient)
        return report.summarise()
    if kind == "complaint":
        complaint = data.get("complaint") or {}
        report.format = "arf"
        report.is_complaint = True
        report.kind = "complaint"
        report.reason = "feedback"
        report.feedback_type = (complaint.get("complaintFeedbackType") or "abuse").lower()
        report.recipients = [clean_address(r.get("emailAddress", ""))
                             for r in complaint.get("complainedRecipients") or [] if isinstance(r, dict)]
        report.results = [RecipientResult(email=a, kind="complaint", reason="feedback") for a in report.recipients if a]
        return report
    if kind == "delivery":
        delivery = data.get("delivery") or {}
        report.recipients = [clean_address(a) for a in delivery.get("recipients") or []]
        report.results = [RecipientResult(email=a, action="delivered", status="2.0.0", kind="none", reason="delivered")
                          for a in report.recipients if a]
        report.summarise()
        report.reason = "delivered"
        return report
    return None
