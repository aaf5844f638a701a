"""RFC 3464 delivery status notifications: one RecipientResult per field block, completed from the
human-readable part, and the SMTP command a failure answered."""
import re

from app.bounces import classify
from app.bounces.parse.mime import ADDRESS
from app.bounces.parse.mime import clean_address
from app.bounces.parse.mime import cut_original
from app.bounces.parse.mime import field_blocks
from app.bounces.parse.mime import get_field
from app.bounces.parse.mime import typed_value
from app.bounces.parse.mime import unfold
from app.bounces.parse.report import RecipientResult


def parse_dsn(report, dsn_texts, prose):
    for text in dsn_texts:
        blocks = field_blocks(text)
        if not blocks:
            continue
        per_message = blocks[0] if not get_field(blocks[0], "Final-Recipient") else []
        if per_message:
            report.reporting_mta = typed_value(get_field(per_message, "Reporting-MTA"))[1]
        for block in blocks:
            final = get_field(block, "Final-Recipient") or get_field(block, "Original-Recipient") \
                or get_field(block, "X-Actual-Recipient")
            address = clean_address(typed_value(final)[1]) if final else ""
            if not address:
                continue
            diagnostic_type, diagnostic = typed_value(get_field(block, "Diagnostic-Code"))
            recipient = RecipientResult(
                email=address,
                action=(get_field(block, "Action") or "failed").split()[0].lower().strip(";,"),
                status=(classify.find_status(get_field(block, "Status")) or [get_field(block, "Status").strip()])[0],
                diagnostic=unfold(diagnostic),
                diagnostic_type=diagnostic_type.upper(),
                remote_mta=typed_value(get_field(block, "Remote-MTA"))[1],
            )
            existing = next((r for r in report.results if r.email == address), None)
            if existing is not None:  # the same recipient twice (Original- and Final-): keep the richer one
                if not existing.diagnostic and recipient.diagnostic:
                    existing.diagnostic = recipient.diagnostic
                continue
            report.results.append(recipient)
    # Diagnostic missing in the DSN, or only the first line of a multi-line reply ("550-5.7.1 ..."
    # as Sendmail writes it): take this recipient's lines from the human-readable part.
    for recipient in report.results:
        nearby = cut_original(prose) if len(report.results) == 1 else prose_about(prose, recipient.email)
        if not recipient.diagnostic or len(recipient.diagnostic) < 12:
            extra = prose_about(prose, recipient.email)
            if extra:
                recipient.diagnostic = (recipient.diagnostic + " " + extra).strip()
        elif re.match(r"^[45]\d\d-", recipient.diagnostic) and nearby:
            recipient.diagnostic = (recipient.diagnostic + " " + unfold(nearby)[:1500]).strip()
        recipient.command = recipient.command or smtp_command(recipient.diagnostic + "\n" + nearby)


def prose_about(prose, address, width=600):
    """The words following `address` in the human-readable text, up to the next address."""
    text = cut_original(prose or "")
    lower = text.lower()
    at = lower.find(address.lower())
    if at < 0:
        return ""
    rest = text[at + len(address):at + len(address) + width]
    for following in ADDRESS.finditer(rest):
        if following.group(0).lower().rstrip(".") != address.lower():
            rest = rest[:following.start()]
            break
    return unfold(rest).strip(" :>-\n")


COMMAND_PHRASES = (
    (r"IN REPLY TO (RCPT|DATA|MAIL|END OF DATA|EHLO|HELO)\b", None),
    (r"AFTER (?:PIPELINED )?(RCPT|DATA|MAIL|END OF DATA|EHLO|HELO)\b", None),
    # qmail: "... does not like recipient." / "... does not like sender." / "Connected to ... but sender was rejected."
    (r"DOES NOT LIKE RECIPIENT", "RCPT"),
    (r"DOES NOT LIKE SENDER|BUT SENDER WAS REJECTED", "MAIL"),
    (r"FAILED ON DATA COMMAND|FAILED AFTER I SENT THE MESSAGE", "DATA"),
    (r"\b(RCPT|DATA|MAIL) (?:TO |FROM )?COMMAND\b", None),
    (r"SMTP:(RCPT|DATA|MAIL)\b", None),
    (r"\[(RCPT_TO|MAIL_FROM|DATA)\]", None),
    (r"MOST PROGRESS WAS (RCPT|DATA|MAIL)", None),
    (r"(?:DID NOT|DIDN'T) LIKE (?:OUR )?(RCPT|DATA|MAIL)", None),
    (r"\bRCPT:\s*<", "RCPT"),
    (r"-+SMTP COMMAND\s+(RCPT|DATA|MAIL)", None),
    # Oracle/Sun Messaging Server: "Reason: Remote SMTP server has rejected address" (refused at RCPT)
    (r"SERVER HAS REJECTED (?:THE )?ADDRESS", "RCPT"),
)


def smtp_command(text):
    """The SMTP command a failure answered (RCPT, DATA, MAIL, HELO), when the bounce says so."""
    text = (text or "").upper()
    transcript = re.findall(r"^\s*>>>\s*(RCPT|DATA|MAIL|EHLO|HELO)\b", text, re.M)
    if transcript:
        return _command(transcript[-1])
    hits = []
    for pattern, fixed in COMMAND_PHRASES:
        match = re.search(pattern, text)
        if match:
            hits.append((match.start(), fixed or match.group(1)))
    if hits:
        return _command(min(hits)[1])
    return ""


def _command(word):
    word = word.replace("_", " ")
    if word.startswith("RCPT"):
        return "RCPT"
    if word.startswith("MAIL"):
        return "MAIL"
    if "DATA" in word:
        return "DATA"
    return "HELO"
