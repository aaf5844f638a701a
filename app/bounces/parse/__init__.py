"""Read one returned message: a delivery status notification, a non-standard
bounce, an ARF complaint, an auto-reply, or none of these.

parse_message(raw_bytes) -> Report. It never raises for bad input: a broken
message gives a Report with is_bounce False and reason "unparseable".

Formats understood:
  * RFC 3464 DSNs (multipart/report; report-type=delivery-status, also the
    RFC 6533 message/global-delivery-status and mislabelled containers);
  * ARF feedback reports (RFC 5965 message/feedback-report, including DMARC
    failure reports, RFC 6591) and Amazon SES notifications mailed as JSON;
  * the prose of MTAs that send no DSN (qmail, Exim, old Postfix and
    Sendmail, Exchange/Notes, Yahoo, Japanese carriers ...): recipients and
    the server's words are found in the text before the returned message;
  * RFC 3834 auto-replies (Auto-Submitted, X-Autoreply, out-of-office
    subjects), reported as is_auto_reply, never as bounces.

The returned original (message/rfc822, text/rfc822-headers, or the copy
after the "below this line" marker of a text bounce) gives the Message-ID
and the X-Loft-Token header used to match the bounce to the Send.

This package's parse_message reads the message and hands it to the module of its format:
dsn.py, arf.py, ses.py or prose.py; mime.py reads headers, text and the returned original
for all of them, and report.py holds the Report they fill (and the webhooks' reports).
"""
import logging
import re
from email import policy

from app.bounces import classify
from app.bounces.parse.arf import is_unsubscribe_request
from app.bounces.parse.arf import parse_arf
from app.bounces.parse.arf import parse_unsubscribe_request
from app.bounces.parse.dsn import parse_dsn
from app.bounces.parse.mime import MAX_BYTES
from app.bounces.parse.mime import content_type
from app.bounces.parse.mime import cut_original
from app.bounces.parse.mime import fill_original
from app.bounces.parse.mime import header
from app.bounces.parse.mime import load
from app.bounces.parse.mime import original_message
from app.bounces.parse.mime import original_text
from app.bounces.parse.mime import text_of
from app.bounces.parse.mime import walk
from app.bounces.parse.prose import is_auto_reply
from app.bounces.parse.prose import looks_like_bounce
from app.bounces.parse.prose import parse_text
from app.bounces.parse.report import RecipientResult
from app.bounces.parse.report import Report
from app.bounces.parse.report import delivery_for
from app.bounces.parse.report import is_delivery
from app.bounces.parse.report import report_for
from app.bounces.parse.ses import parse_ses
from app.bounces.parse.ses import report_from_ses
from app.content.text import html_to_text

# The entry points the rest of Loft uses.
__all__ = ["RecipientResult", "Report", "delivery_for", "is_delivery", "parse_message", "report_for", "report_from_ses"]

log = logging.getLogger(__name__)

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status", "text/delivery-status",
             "message/delivery-status-notification")
ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers",
                  "message/global-headers", "text/rfc822")
ARF_TYPES = ("message/feedback-report",)


# --- Parsing -------------------------------------------------------------------------------

def parse_message(raw):
    """A Report for one message (bytes). Never raises."""
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001 - a hostile or broken message must never stop the intake
        log.exception("bounce parse failed")
        return Report(reason="unparseable")


def _parse(raw, depth=0):
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    msg = load(raw)
    report = Report(message_id=header(msg, "Message-ID"), subject=header(msg, "Subject"))
    raw_text = raw[:MAX_BYTES].decode("utf-8", "replace")
    parts = list(walk(msg))
    dsn_parts, arf_parts, originals, texts = [], [], [], []
    for ctype, part in parts:
        if ctype in DSN_TYPES:
            dsn_parts.append(part)
        elif ctype in ARF_TYPES:
            arf_parts.append(part)
        elif ctype in ORIGINAL_TYPES:
            originals.append(part)
        elif ctype.startswith("text/") or ctype == "message/partial":
            texts.append((ctype, part))
    original = original_message(originals)
    report_type = ""
    try:
        report_type = (msg.get_param("report-type") or "").lower() if content_type(msg) == "multipart/report" else ""
    except Exception:  # noqa: BLE001
        pass

    if arf_parts or report_type == "feedback-report":
        return parse_arf(report, msg, arf_parts, original, texts, raw_text)
    if is_unsubscribe_request(msg, report.subject):
        return parse_unsubscribe_request(report, msg)

    body_texts = [(ctype, text_of(part)) for ctype, part in texts]
    prose = "\n\n".join(html_to_text(t) if c == "text/html" else t for c, t in body_texts)

    ses = parse_ses(report, prose, msg)
    if ses is not None:
        fill_original(ses, original, raw_text)
        return ses

    dsn_texts = [text_of(part) for part in dsn_parts]
    if not dsn_texts and re.search(r"^Final-Recipient:", prose, re.I | re.M):
        dsn_texts = [prose[re.search(r"^(?:Reporting-MTA|Final-Recipient):", prose, re.I | re.M).start():]]
    if dsn_texts:
        parse_dsn(report, dsn_texts, prose)
        if report.results:
            report.format = "dsn"
            fill_original(report, original, original_text(prose, raw_text))
            classify_results(report, prose, msg)
            return report.summarise()

    nested = nested_bounce(originals, depth)
    if nested is not None:
        return nested

    if is_auto_reply(msg, report.subject) and not looks_like_bounce(msg, report.subject, prose):
        report.is_auto_reply = True
        report.format = "auto-reply"
        report.reason = "vacation"
        fill_original(report, original, "")
        return report

    if looks_like_bounce(msg, report.subject, prose) or dsn_parts:
        parse_text(report, msg, prose, original)
        report.format = "text"
        fill_original(report, original, original_text(prose, raw_text))
        classify_results(report, prose, msg)
        return report.summarise()

    report.reason = "not_bounce"
    return report


def nested_bounce(originals, depth):
    """A bounce forwarded as an attachment (a relay returning the DSN it got): parse the attached one."""
    if depth >= 2:
        return None
    for part in originals:
        try:
            payload = part.get_payload()
        except Exception:  # noqa: BLE001
            continue
        inner = payload[0] if isinstance(payload, list) and payload else None
        if inner is None or content_type(inner) != "multipart/report":
            continue
        try:
            raw = inner.as_bytes(policy=policy.compat32)
        except Exception:  # noqa: BLE001
            continue
        found = _parse(raw, depth + 1)
        if found.is_bounce:
            return found
    return None


# --- Classification of the results -----------------------------------------------------------------

def classify_results(report, prose, msg=None):
    context = cut_original(prose)
    # au/EZweb mark a message refused by the recipient's own filter with "X-SPASIGN: NG".
    refused_by_filter = msg is not None and header(msg, "X-SPASIGN").strip().upper() == "NG"
    for recipient in report.results:
        kind, reason, status = classify.classify(recipient.status, recipient.diagnostic, action=recipient.action,
                                                 command=recipient.command, context=context,
                                                 diagnostic_type=recipient.diagnostic_type,
                                                 recipient=recipient.email,
                                                 remote_mta=f"{recipient.remote_mta} {report.reporting_mta}".strip())
        if recipient.action == "delayed" and kind != "none":
            reason = "expired" if reason in ("onhold", "undefined", "systemerror", "networkerror") else reason
        if refused_by_filter and kind != "none":
            kind, reason = classify.kind_of("filtered"), "filtered"
        recipient.kind, recipient.reason, recipient.status = kind, reason, status or recipient.status
        recipient.hard = kind == "hard"
