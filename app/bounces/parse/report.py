"""What Loft learns from one returned message or provider event: a Report with one RecipientResult
per address, and the reports built from a provider's structured events (webhooks)."""
import dataclasses

from app.bounces import classify
from app.bounces.parse.mime import clean_address


@dataclasses.dataclass
class RecipientResult:
    """What a bounce, complaint or delivery report says about one recipient address."""
    email: str
    action: str = "failed"
    status: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""
    remote_mta: str = ""
    command: str = ""
    kind: str = "none"
    reason: str = ""
    hard: bool = False

    def as_json(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    is_bounce: bool = False
    is_complaint: bool = False
    is_auto_reply: bool = False
    hard: bool = False
    kind: str = "none"
    reason: str = ""
    status: str = ""
    recipients: list = dataclasses.field(default_factory=list)
    diagnostic: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    original_message_id: str = ""
    original_to: str = ""
    loft_token: str = ""
    feedback_type: str = ""
    source_ip: str = ""
    format: str = "none"  # dsn, text, arf, ses, mailto (an unsubscribe request), auto-reply, webhook, none
    message_id: str = ""  # the report's own Message-ID (for deduplication)
    unsubscribe_token: str = ""  # from the subject of a List-Unsubscribe mailto request
    subject: str = ""
    results: list = dataclasses.field(default_factory=list)  # [RecipientResult], one per recipient

    def as_json(self):
        data = {
            "is_bounce": self.is_bounce, "hard": self.hard, "reason": self.reason, "recipients": self.recipients,
            "status": self.status, "kind": self.kind, "is_complaint": self.is_complaint,
            "is_auto_reply": self.is_auto_reply, "diagnostic": self.diagnostic, "remote_mta": self.remote_mta,
            "reporting_mta": self.reporting_mta, "original_message_id": self.original_message_id,
            "original_to": self.original_to, "loft_token": self.loft_token, "feedback_type": self.feedback_type,
            "source_ip": self.source_ip, "format": self.format, "message_id": self.message_id,
            "subject": self.subject, "unsubscribe_token": self.unsubscribe_token,
            "results": [r.as_json() for r in self.results],
        }
        return data

    def summarise(self):
        """Fill the top-level fields from the per-recipient results (the first one speaks for the report)."""
        self.recipients = [r.email for r in self.results]
        failed = [r for r in self.results if r.kind != "none"]
        if self.is_complaint or self.format == "arf":
            return self
        self.is_bounce = bool(failed)
        first = failed[0] if failed else (self.results[0] if self.results else None)
        if first is not None:
            self.kind, self.reason, self.status, self.hard = first.kind, first.reason, first.status, first.hard
            self.diagnostic, self.remote_mta = first.diagnostic, first.remote_mta
        return self


def report_for(email, status="", diagnostic="", action="failed", kind=None, message_id="", token="",
               feedback_type="", format="webhook"):
    """A Report about one recipient from a provider's structured event (a webhook), classified like a DSN.

    `feedback_type` ("abuse", "opt-out", ...) makes it a complaint; `kind` overrides the
    classification when the provider states it plainly (e.g. SES "Permanent" with no reply).
    """
    report = Report(format=format, original_message_id=message_id or "", loft_token=token or "")
    address = clean_address(email)
    if feedback_type:
        report.format, report.reason, report.feedback_type = "arf", "feedback", feedback_type.lower()
        report.kind = "auth" if report.feedback_type == "auth-failure" else "complaint"
        report.is_complaint = report.kind == "complaint"
        report.recipients = [address] if address else []
        report.results = [RecipientResult(email=address, kind=report.kind, reason="feedback")] if address else []
        return report
    # The provider delivered straight to the recipient's MX, so the receiver's own wording applies.
    found_kind, reason, code = classify.classify(status, diagnostic, action=action, recipient=address)
    if kind and kind != found_kind:
        found_kind, reason = kind, {"hard": "userunknown", "soft": "onhold"}.get(kind, reason)
    report.results = [RecipientResult(email=address, action=(action or "failed").lower(), status=code or status,
                                      diagnostic=diagnostic or "", kind=found_kind, reason=reason,
                                      hard=found_kind == "hard")]
    return report.summarise()


def delivery_for(email, message_id="", token=""):
    """A Report saying the provider delivered one message to `email` (its "delivered" event)."""
    report = Report(format="webhook", original_message_id=message_id or "", loft_token=token or "")
    address = clean_address(email)
    report.recipients = [address] if address else []
    report.results = [RecipientResult(email=address, action="delivered", status="2.0.0", kind="none",
                                      reason="delivered")
                      for address in report.recipients]
    report.reason = "delivered"
    return report


def is_delivery(report):
    """True for a report that only says messages were delivered (nothing failed)."""
    return bool(report.results) and all(r.action == "delivered" for r in report.results)
