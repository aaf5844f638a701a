"""A contact's timeline: its events, newest first, a page at a time, and each in a few words. The contact page's
Activity (activity()) also holds what its automations did, merged in time order."""
import datetime
import re
from types import SimpleNamespace

from app.automations import report as automation_report
from app.contacts.services import STATUS_LABELS
from app.models import Campaign
from app.models import Event

TIMELINE_PAGE = 25
EVENT_LABELS = {
    "created": "Added", "imported": "Imported", "updated": "Details changed", "status_changed": "Status changed",
    "subscribed": "Added to list", "confirmed": "Confirmed subscription", "unsubscribed": "Unsubscribed",
    "removed_from_list": "Removed from list", "queued": "Queued", "sent": "Sent", "delivered": "Delivered",
    "deferred": "Delivery deferred", "bounced": "Bounced", "opened": "Opened", "clicked": "Clicked",
    "complained": "Marked as spam",
}


def event_data(event):
    value = event.data
    return value if isinstance(value, dict) else {}


def timeline(contact, before=None, limit=TIMELINE_PAGE):
    """Events about the contact, newest first: (events, cursor of the next page or None).

    The cursor is an event id; the page continues below that event's
    (at, id), which the (contact, at) index serves in order.
    """
    query = Event.select().where(Event.contact == contact)
    if before:
        anchor = Event.get_or_none((Event.id == before) & (Event.contact == contact))
        if anchor is None:
            return [], None
        query = query.where((Event.at < anchor.at) | ((Event.at == anchor.at) & (Event.id < anchor.id)))
    events = list(query.order_by(Event.at.desc(), Event.id.desc()).limit(limit + 1))
    more = len(events) > limit
    events = events[:limit]
    _name_campaigns(contact.team_id, events)
    return events, (events[-1].id if more else None)


# The Activity's cursor names the last item shown: "<rank>-<id>-<at as 20 digits>". Events rank above the automation
# items at one moment (app/automations/report.py ranks those); the page continues below that (at, rank, id).
EVENT_RANK = 4
CURSOR = re.compile(r"^([1-4])-([0-9]{1,18})-([0-9]{20})$")


def _cursor_of(at, rank, ident):
    return f"{rank}-{ident}-{at:%Y%m%d%H%M%S%f}"


def _key_of(contact, cursor):
    """(at, rank, id) from a cursor, or None: from the newest. A bare number is an event id (links from before the
    merge); an event that is not this contact's gives no key and an empty page, as timeline() does."""
    cursor = (cursor or "").strip()
    if cursor.isdigit() and len(cursor) <= 18:
        anchor = Event.get_or_none((Event.id == int(cursor)) & (Event.contact == contact))
        return (anchor.at, EVENT_RANK, anchor.id) if anchor else False
    match = CURSOR.match(cursor)
    if not match:
        return None
    try:
        at = datetime.datetime.strptime(match.group(3), "%Y%m%d%H%M%S%f")
    except ValueError:
        return None
    return at, int(match.group(1)), int(match.group(2))


def activity(contact, before=None, limit=TIMELINE_PAGE):
    """The contact's events and automation items (entered, each step done, exited with the reason), newest first, a
    page at a time: (items, cursor of the next page or None). Each source is read with the same keyset condition and
    at most limit + 1 rows, so a page never skips or repeats an item; the query count does not grow with the items.
    An event item is the Event; an automation item has type "automation", automation_id, automation and text."""
    key = _key_of(contact, before)
    if key is False:
        return [], None
    events = Event.select().where(Event.contact == contact)
    if key is not None:
        at, rank, ident = key
        if rank == EVENT_RANK:
            events = events.where((Event.at < at) | ((Event.at == at) & (Event.id < ident)))
        else:  # below an automation item: an event at the same moment ranks above it, so it was shown already
            events = events.where(Event.at < at)
    rows = [(event.at, EVENT_RANK, event.id, event)
            for event in events.order_by(Event.at.desc(), Event.id.desc()).limit(limit + 1)]
    rows += [(item["at"], item["rank"], item["id"], SimpleNamespace(type="automation", **item))
             for item in automation_report.contact_items(contact, key, limit + 1)]
    rows.sort(key=lambda row: row[:3], reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    _name_campaigns(contact.team_id, [row[3] for row in rows if row[1] == EVENT_RANK])
    return [row[3] for row in rows], (_cursor_of(*rows[-1][:3]) if more else None)


def _name_campaigns(team_id, events):
    """Give each event its campaign's name (one query for the page), for describe_event."""
    ids = {e.campaign_id for e in events if e.campaign_id is not None}
    names = dict(Campaign.select(Campaign.id, Campaign.name)
                 .where((Campaign.id << ids) & (Campaign.team == team_id)).tuples()) if ids else {}
    for event in events:
        event.campaign_name = names.get(event.campaign_id)


def describe_event(event):
    """A short line about an event for the timeline (no personal data beyond what it already holds)."""
    data = event_data(event)
    if event.type in ("subscribed", "removed_from_list", "confirmed", "unsubscribed") and data.get("list"):
        text = f"“{data['list']}”"
        if data.get("source") and data["source"] != "manual":
            text += f" ({data['source']})"
        return text
    if event.type == "status_changed":
        old, new = data.get("from", ""), data.get("to", "")
        return f"{STATUS_LABELS.get(old, old)} → {STATUS_LABELS.get(new, new)}"
    if event.type == "updated" and data.get("fields"):
        return "Changed: " + ", ".join(data["fields"])
    if event.type in ("created", "imported") and data.get("source"):
        return f"Source: {data['source']}"
    parts = []
    if event.campaign_id is not None:
        name = getattr(event, "campaign_name", None)
        parts.append(f"“{name}”" if name else f"Campaign #{event.campaign_id}")
    parts += _activity_details(event.type, data)
    return " · ".join(parts)


# Where a bounce, complaint or delivery was learnt, in words.
FEEDBACK_SOURCES = {"smtp": "reply while sending", "imap": "bounce mailbox", "ses": "Amazon SES",
                    "sendgrid": "SendGrid", "postmark": "Postmark", "mailgun": "Mailgun", "generic": "webhook",
                    "mailto": "unsubscribe email"}
BOUNCE_KINDS = {"hard": "hard bounce", "soft": "soft bounce", "block": "blocked by policy (not the address)",
                "auth": "our authentication failed", "limit": "account limit reached", "delayed": "delayed"}


def _activity_details(type, data):
    """The few facts of a campaign event a person cares about: why it bounced, which link, a machine?"""
    source = FEEDBACK_SOURCES.get(data.get("source"), data.get("source"))
    if type in ("bounced", "deferred"):
        kind = BOUNCE_KINDS.get(data.get("kind"), data.get("kind") or "")
        words = " ".join(w for w in (data.get("status", ""), data.get("reason", "")) if w)
        return [p for p in (kind, words, f"via {source}" if source else "") if p]
    if type == "complained":
        return [p for p in (data.get("feedback_type") or "abuse", f"via {source}" if source else "") if p]
    if type == "delivered":
        return [f"confirmed by {source}"] if source else []
    if type == "opened":
        return ["machine open (privacy proxy), not counted"] if data.get("machine") else []
    if type == "clicked":
        link = str(data.get("url") or "")[:120]
        return [p for p in (link, "scanner, not counted" if data.get("bot") else "") if p]
    return []
