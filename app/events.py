"""The one writer of Event rows (the contact timeline, reports, webhooks and segments read them).

    record(team, contact, type, data, campaign_id=, at=)   one event, now or at `at`
    record_many(rows)                                      many events of any types, one executemany
    record_for(team, contact_ids, type, data, at=)         one event of the same type and data per contact
    record_from(query)                                     INSERT ... SELECT: the rows come from a query
    write(cursor, rows)                                    the fast path: ready rows on the caller's cursor

`type` is an EventType (app.models) or its string; record, record_many and
record_for refuse a type that is not declared there. `data` is a dict, stored
in the JSON column Event.data (personal parts are removed on erasure, app.consent.gdpr).

Every function runs inside the caller's transaction when there is one. The
bulk writers send one prepared statement through executemany instead of
peewee's insert_many, which builds SQL text in Python for each row (about
50 µs a row, five times slower). `write` is the path of the two writers whose
speed is measured (the send engine's results flush and the tracking recorder's
group commit, docs/benchmarks.md): its rows are already in the database's
form, (team_id, contact_id, campaign_id, type, at, Event.data.db_value(data)); the one thing
done per row is `at`'s conversion by Event.at.db_value (app.db.Many).
"""
from app.db import db
from app.db import insert_many
from app.models import Event
from app.models import EventType
from app.models import utcnow

# The columns of the fast path, in the order of its row tuples.
COLUMNS = (Event.team, Event.contact, Event.campaign_id, Event.type, Event.at, Event.data)


def statement():
    """The fast path's INSERT INTO "event" (...) VALUES (...), built by app.db from Event._meta."""
    return insert_many(COLUMNS)


def write(cursor, rows):
    """Insert `rows` (tuples in COLUMNS order, values as the database stores them: ids, a type
    string, `at` a datetime or its text, data as Event.data.db_value(data)) with one executemany on `cursor`,
    inside the caller's transaction. Returns how many rows were given."""
    if rows:
        statement().run(rows, cursor)
    return len(rows)


def _id(value):
    return getattr(value, "id", value)


def _type(value):
    return EventType(value).value


def _row(team, contact, campaign_id, type, at, data):
    return (_id(team), _id(contact), campaign_id, _type(type), at or utcnow(),
            Event.data.db_value(data or {}))


def record(team, contact, type, data=None, campaign_id=None, at=None):
    """Write one event of `type` about `contact` (a Contact, an id or None); returns its id."""
    return Event.insert(team=_id(team), contact=_id(contact), campaign_id=campaign_id, type=_type(type),
                        at=at or utcnow(), data=data or {}).execute()


def record_many(rows):
    """Write events given as (team, contact, campaign_id, type, at, data dict) tuples in one
    executemany (`at` None means now). Returns how many were written."""
    rows = [_row(*row) for row in rows]
    if not rows:
        return 0
    with db.atomic():
        return write(db.cursor(), rows)


def record_for(team, contact_ids, type, data=None, at=None, campaign_id=None):
    """One event of `type` with the same `data` for each contact id; returns how many were written."""
    payload, when = Event.data.db_value(data or {}), at or utcnow()
    type, team_id = _type(type), _id(team)
    rows = [(team_id, contact_id, campaign_id, type, when, payload) for contact_id in contact_ids]
    if not rows:
        return 0
    with db.atomic():
        return write(db.cursor(), rows)


def record_from(query):
    """INSERT ... SELECT: `query` selects (team id, contact id, type, at, Event.data.db_value(data)) for each
    event, so a set of any size is written by the database in one statement."""
    return Event.insert_from(query, [Event.team, Event.contact, Event.type, Event.at, Event.data]).execute()
