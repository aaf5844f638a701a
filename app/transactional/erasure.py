"""What a GDPR erasure does to the transactional messages sent to the erased address.

    erase_address(team_id, address, hint)   anonymise the team's messages to `address`; returns how many
    messages_to(team_id, address)           those messages, for the contact's export

A message stays, so the team's counts (sent, bounced, opened) do not change, but it keeps nothing personal:
the address becomes its hint ("p…@example.com", as on the suppression list), the message itself (`raw`), its
subject, Reply-To and tracked links are dropped, and the address is replaced by the hint in its history and in
the tx_* events outgoing webhooks read. What the team's own staff put on it (From, tags, Message-ID) stays.
"""
from peewee import fn

from app.db import db
from app.models import Event
from app.models import EventType
from app.models import TxEvent
from app.models import TxMessage

TX_EVENT_TYPES = (EventType.TX_SENT, EventType.TX_FAILED, EventType.TX_BOUNCED, EventType.TX_OPENED,
                  EventType.TX_CLICKED)


def messages_to(team_id, address):
    """The team's messages to `address` (without their bodies), oldest first."""
    fields = [field for field in TxMessage._meta.sorted_fields if field.name != "raw"]
    return list(TxMessage.select(*fields)
                .where((TxMessage.team == team_id) & (TxMessage.to_email == address)).order_by(TxMessage.id))


def erase_address(team_id, address, hint):
    """Anonymise the team's transactional messages to `address` (a normalised address), inside the caller's
    transaction when there is one. Returns how many messages were anonymised."""
    with db.atomic():
        ids = [row.id for row in TxMessage.select(TxMessage.id)
               .where((TxMessage.team == team_id) & (TxMessage.to_email == address))]
        if not ids:
            return 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            (TxMessage.update(to_email=hint, raw=b"", subject="", reply_to="", links=[],
                              error=fn.REPLACE(TxMessage.error, address, hint))
             .where(TxMessage.id.in_(chunk)).execute())
            (TxEvent.update(detail=fn.REPLACE(TxEvent.detail, address, hint))
             .where(TxEvent.tx_message.in_(chunk)).execute())
        erased = set(ids)
        mentions = (Event.select(Event.id, Event.data)
                    .where((Event.team == team_id) & Event.contact.is_null() & Event.type.in_(TX_EVENT_TYPES)
                           & Event.data.cast("TEXT").contains(address)))
        for row in mentions:
            data = row.data if isinstance(row.data, dict) else {}
            if data.get("tx_id") in erased:
                # Type, time and message id stay for the counts; the subject and the server's words go.
                Event.update(data={"tx_id": data["tx_id"], "to": hint}).where(Event.id == row.id).execute()
    return len(ids)
