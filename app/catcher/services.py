"""The Outbox: messages caught by the local mail catcher, parsed for display."""
import email
import email.policy

from app.db import db
from app.models import CaughtMessage

PAGE_SIZE = 50


def store_message(mail_from, recipients, raw):
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(parsed.get("Subject", "") or "")
    with db.atomic():
        return CaughtMessage.create(mail_from=mail_from or "", recipients=list(recipients),
                                    subject=subject[:998], size=len(raw), raw=raw)


def recent_messages(before_id=None, query=""):
    """A page of messages, newest first, keyset-paginated by id."""
    rows = CaughtMessage.select(CaughtMessage.id, CaughtMessage.received_at, CaughtMessage.mail_from,
                                CaughtMessage.recipients, CaughtMessage.subject, CaughtMessage.size)
    if before_id:
        rows = rows.where(CaughtMessage.id < before_id)
    if query:
        rows = rows.where(CaughtMessage.subject.contains(query) | CaughtMessage.recipients.cast("TEXT").contains(query))
    rows = list(rows.order_by(CaughtMessage.id.desc()).limit(PAGE_SIZE + 1))
    for row in rows:
        row.recipient_list = row.recipients
    return rows[:PAGE_SIZE], (rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None)


def get_message(message_id):
    return CaughtMessage.get_or_none(CaughtMessage.id == message_id)


def parse(message):
    """Headers, text part and HTML part of a caught message."""
    parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return {
        "headers": [(name, str(value)) for name, value in parsed.items()],
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
        "recipients": message.recipients,
    }


def clear():
    return CaughtMessage.delete().execute()
