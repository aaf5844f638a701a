"""/api/v1/tx: transactional email (send one message, read one with its status history, list them), through
app/transactional/service.py; what it accepts goes out on the transactional queue, never behind a campaign."""
import datetime
from typing import Any
from typing import Literal

from flask import g
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictBool

from app.api import pagination
from app.api.contacts import utc
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.content.sandbox import MAX_SOURCE
from app.content.sandbox import MAX_SUBJECT
from app.models import TxMessage
from app.teams.context import team_object_or_404
from app.transactional import service
from tasks import transactional as tx_tasks

TxStatusName = Literal["queued", "sent", "delivered", "failed", "bounced"]


class AttachmentIn(Strict):
    filename: str = Field(max_length=200)
    content: str = Field(description="The file, base64-encoded. All attachments together: at most "
                                     "LOFT_TX_MAX_BYTES once decoded (2,500,000 bytes by default).")
    content_type: str | None = Field(None, max_length=130, description="e.g. application/pdf")


class TxIn(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: str = Field(max_length=320, description="One recipient address.")
    to_name: str | None = Field(None, max_length=200)
    from_: str | None = Field(None, alias="from", max_length=320, description=(
        "An address on a verified sender domain of the team; by default the team's sender."))
    from_name: str | None = Field(None, max_length=200)
    reply_to: str | None = Field(None, max_length=320)
    subject: str | None = Field(None, max_length=MAX_SUBJECT, description=(
        "Required unless template_id is given (then the template's name is the default). May use "
        "{{ data.… }}."))
    html: str | None = Field(None, max_length=MAX_SOURCE)
    markdown: str | None = Field(None, max_length=MAX_SOURCE)
    template_id: int | None = Field(None, description="A template of the team, instead of html or markdown.")
    data: dict[str, Any] | None = Field(None, description=(
        "Personalisation: {{ data.order.number }} in the subject and body, rendered in the same sandbox "
        "as campaigns. {{ contact.email }} and {{ contact.name }} are the recipient."))
    headers: dict[str, str] | None = Field(None, description=(
        "Extra headers: X-… (not X-Loft-…), In-Reply-To, References, Auto-Submitted, X-Priority, Importance."))
    tags: list[str] | None = Field(None, max_length=service.MAX_TAGS)
    attachments: list[AttachmentIn] | None = Field(None, max_length=service.MAX_ATTACHMENTS)
    track_opens: StrictBool | None = Field(None, description=(
        "Add the open pixel. Off unless asked (the instance default is LOFT_TX_TRACK_OPENS, off): a receipt "
        "or a password reset is not marketing to measure. The first open is the history's \"opened\" step "
        "and fires tx_opened."))
    track_clicks: StrictBool | None = Field(None, description=(
        "Send the web links through Loft's click redirect (default LOFT_TX_TRACK_CLICKS, off). The first "
        "click on each link is a \"clicked\" step in the history and fires tx_clicked."))


class TxEventOut(Schema):
    status: str = Field(description="queued (also after each temporary failure, with the server's words, "
                                    "and while its SMTP account is paused or at a cap), sent (with the SMTP "
                                    "reply), delivered (a provider said so), failed, bounced, complained, "
                                    "opened (the first open), clicked (the first click on each link).")
    at: datetime.datetime
    detail: str


class TxOut(Schema):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)
    id: int
    status: TxStatusName
    to: str
    from_: str = Field(alias="from")
    from_name: str
    reply_to: str
    subject: str
    tags: list[str]
    template_id: int | None
    message_id: str = Field(description="The Message-ID header, without angle brackets.")
    size: int = Field(description="Bytes of the message as built.")
    attempts: int
    error: str = Field(description="Why the last attempt failed, in the server's words.")
    created_at: datetime.datetime
    sent_at: datetime.datetime | None
    waiting: str = Field(description="Why a queued message is waiting: its SMTP account is paused or at its "
                                     "hourly or daily limit. Empty otherwise.")
    track_opens: bool
    track_clicks: bool
    opens: int = Field(description="Opens recorded (a message sent with track_opens).")
    clicks: int = Field(description="Clicks recorded (a message sent with track_clicks).")
    opened_at: datetime.datetime | None = Field(description="The first open.")
    clicked_at: datetime.datetime | None = Field(description="The first click.")
    history: list[TxEventOut] | None = Field(None, description="The status history (one message only).")


class TxPage(Schema):
    data: list[TxOut]
    next_cursor: str | None
    next: str | None


class TxQuery(pagination.PageQuery, Strict):
    status: TxStatusName | None = None


def tx_out(tx, history=False):
    events = None
    if history:
        events = [TxEventOut(status=status, at=utc(at), detail=detail)
                  for status, at, detail in service.status_history(tx)]
    return TxOut.model_validate(dict(
        id=tx.id, status=tx.status, to=tx.to_email, from_=tx.from_email, from_name=tx.from_name, reply_to=tx.reply_to,
        subject=tx.subject, tags=tx.tags or [], template_id=tx.template_id, message_id=tx.message_id, size=tx.size,
        attempts=tx.attempts, error=tx.error, created_at=utc(tx.created_at),
        sent_at=utc(tx.sent_at) if tx.sent_at else None, waiting=tx.waiting, track_opens=tx.track_opens,
        track_clicks=tx.track_clicks, opens=tx.opens, clicks=tx.clicks,
        opened_at=utc(tx.opened_at) if tx.opened_at else None, clicked_at=utc(tx.clicked_at) if tx.clicked_at else None,
        history=events))


@operation("/tx", "POST", "send", ok=TxOut, status=201, body=TxIn, tags=["transactional"], location="/tx/{id}")
def send_transactional(body):
    """Send one transactional message (queued on its own lane; see its status at /tx/{id})"""
    tx = service.accept(g.team, api_key=g.api_key, message=body.model_dump(by_alias=True, exclude_none=True))
    tx_tasks.queue([tx])
    return tx_out(TxMessage.get_by_id(tx.id), history=True)


@operation("/tx/<int:tx_id>", "GET", "view", ok=TxOut, tags=["transactional"])
def get_transactional(tx_id):
    """A transactional message with its status history"""
    return tx_out(team_object_or_404(TxMessage, tx_id), history=True)


@operation("/tx", "GET", "view", ok=TxPage, query=TxQuery, tags=["transactional"])
def list_transactional(query):
    """Transactional messages, newest first, optionally of one status"""
    rows = service.latest(g.team, status=query.status, before=pagination.decode(query.cursor), limit=query.limit)
    next_cursor, next_url = pagination.next_link(rows[-1].id if len(rows) == query.limit else None)
    return TxPage(data=[tx_out(tx) for tx in rows], next_cursor=next_cursor, next=next_url)
