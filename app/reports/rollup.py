"""The report aggregator: new Event rows, read by id, added up into small tables.

The sending engine and the tracking endpoints only insert Event rows (the
outbox pattern). This module reads the rows past its cursor
(ReportCursor "events") in batches of a few thousand and adds them to the
aggregates (CampaignStat, HourStat, LinkStat, DomainStat, CountryStat,
ClientStat, TeamDay, and AbStat for A/B campaigns) with INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO
UPDATE, so the work is done in SQL per batch, not in Python per event.

A batch is all or nothing: the upserts and the cursor move happen in one
transaction (IMMEDIATE, so two aggregators never read the same cursor), so
a crash or a second run never counts an event twice nor skips one.

Unique opens, clicks and bounces: send_mark keeps the id of the first human
open (or human click: a click proves the message was opened even with its
images blocked), first human click and first bounce event of each send; an
event counts as "unique" exactly when it is the one its send's mark points at. link_mark
does the same per send and link. Machine opens (privacy proxies) and scanner
clicks are counted apart and never make an open or click unique.

Countries and mail clients need Python (a GeoIP database, a User-Agent
classifier): SQL groups the new unique opens and clicks by address and by
User-Agent first, so Python looks at each distinct value of a batch once.

A/B tests: the first time the aggregator meets an event of a campaign with variants, it writes
where the campaign's test sample ends (AbSplit); from then on each of the campaign's unique opens
and clicks, unsubscribes and complaints is added to AbStat under its variant and part (the sample,
or the rest of the audience), which is what the report's A/B table reads.

New contacts per day come from a second cursor over Contact ids (imports do
not write an Event per contact).

retention() deletes raw events older than LOFT_EVENT_RETENTION_DAYS that the
cursor has passed; the aggregates (and TeamDay's daily totals) stay.

The statements are the same on SQLite and PostgreSQL except where they call app.db for the
parts spelled differently (JSON values, days and hours of a timestamp, an address's domain) and
for the upserts, id windows and conditional counts.
"""
import datetime
import logging
import time

from peewee import fn

from app import db as dialect
from app.db import db
from app.campaigns import stats
from app.models import AbSplit
from app.models import Campaign
from app.models import Contact
from app.models import ContactCount
from app.models import ContactStatus
from app.models import Event
from app.models import ReportCursor
from app.models import Variant
from app.models import utcnow
from app.reports import clients
from app.reports import geo

log = logging.getLogger(__name__)

BATCH = 20000  # events per transaction: about a tenth of a second of write lock
CONTACT_BATCH = 100000
COUNTED = ("sent", "bounced", "complained", "unsubscribed", "opened", "clicked")
NOT_A_BOUNCE = ("none", "delayed")  # outcomes records these as "bounced" events with this kind


def _cursor(name):
    ReportCursor.insert(name=name, last_id=0).on_conflict_ignore().execute()
    return ReportCursor.select(ReportCursor.last_id).where(ReportCursor.name == name).scalar()


def _move(name, last_id):
    ReportCursor.update(last_id=last_id).where(ReportCursor.name == name).execute()


def position():
    """(cursor, highest event id): how far the aggregator has read, and how far there is to read."""
    last = ReportCursor.select(ReportCursor.last_id).where(ReportCursor.name == "events").scalar() or 0
    return last, dialect.max_id("event")


_BATCH_TABLE = """CREATE TEMP TABLE IF NOT EXISTS report_batch (
    id INTEGER PRIMARY KEY, type TEXT, team_id INTEGER, campaign_id INTEGER, variant_id INTEGER,
    send_id INTEGER, hour TEXT, day TEXT, domain TEXT, flag INTEGER, link_id INTEGER, kind TEXT,
    first_open INTEGER DEFAULT 0, first_click INTEGER DEFAULT 0, first_bounce INTEGER DEFAULT 0,
    first_link INTEGER DEFAULT 0, ab INTEGER DEFAULT 0, rest INTEGER DEFAULT 0)"""


def _load(lo, hi):
    """The batch's countable events, with their send, variant and recipient domain, into a temp table."""
    db.execute_sql(_BATCH_TABLE)
    dialect.empty_table("report_batch")
    types = ", ".join(f"'{t}'" for t in COUNTED)
    p = db.param
    data = "e.data"
    db.execute_sql(f"""
        INSERT INTO report_batch (id, type, team_id, campaign_id, variant_id, send_id, hour, day, domain,
                                  flag, link_id, kind, ab, rest)
        SELECT e.id, e.type, e.team_id, c.id, coalesce(s.variant_id, 0), s.id,
               {dialect.hour_text("e.at")}, {dialect.day_text("e.at")},
               CASE WHEN s.id IS NOT NULL THEN {dialect.email_domain("s.email")} END,
               CASE e.type WHEN 'opened' THEN {dialect.json_flag(data, "machine")}
                           WHEN 'clicked' THEN {dialect.json_flag(data, "bot")} ELSE 0 END,
               CASE e.type WHEN 'clicked' THEN {dialect.json_int(data, "link_id")} END,
               CASE e.type WHEN 'bounced' THEN coalesce({dialect.json_value(data, "kind")}, '') END,
               CASE WHEN ab.campaign_id IS NULL THEN 0 ELSE 1 END,
               CASE WHEN s.id > ab.last_test_send_id THEN 1 ELSE 0 END
        FROM event e
        LEFT JOIN campaign c ON c.id = e.campaign_id
        LEFT JOIN send s ON s.id = {dialect.json_int(data, "send")} AND s.campaign_id = e.campaign_id
        LEFT JOIN ab_split ab ON ab.campaign_id = c.id
        WHERE e.id > {p} AND e.id <= {p} AND e.type IN ({types})""", (lo, hi))


def _mark(column, flag, where):
    """Point each send's mark at its first qualifying event (if it has none yet), then flag the
    batch rows that are the marked ones: those are this batch's unique opens/clicks/bounces."""
    db.execute_sql(f"""
        INSERT INTO send_mark (send_id, {column})
        SELECT send_id, min(id) FROM report_batch WHERE send_id IS NOT NULL AND {where} GROUP BY send_id
        ON CONFLICT (send_id) DO UPDATE SET {column} = excluded.{column} WHERE send_mark.{column} IS NULL""")
    db.execute_sql(f"""
        UPDATE report_batch SET {flag} = 1
        WHERE send_id IS NOT NULL AND {where}
          AND id = (SELECT m.{column} FROM send_mark m WHERE m.send_id = report_batch.send_id)""")


HUMAN_OPEN = "type = 'opened' AND flag = 0"
HUMAN_CLICK = "type = 'clicked' AND flag = 0"
# A person who clicked has opened the message, even when the images stayed blocked (no pixel):
# their first human open or click makes the send's unique open, so click-to-open never passes 100 %.
OPENED_BY_PERSON = f"(({HUMAN_OPEN}) OR ({HUMAN_CLICK}))"
BOUNCE = "type = 'bounced' AND kind NOT IN ('none', 'delayed')"


def _split_ab_tests(lo, hi):
    """The campaigns with A/B variants whose events the aggregator meets for the first time: where
    their test sample ends (the rule applied at publish), before any of their events is counted."""
    met = (Event.select(Event.campaign_id).distinct()
           .where((Event.id > lo) & (Event.id <= hi) & Event.campaign_id.is_null(False)))
    for campaign in Campaign.select().where(Campaign.id.in_(met) & Campaign.id.in_(Variant.select(Variant.campaign))
                                            & Campaign.id.not_in(AbSplit.select(AbSplit.campaign))):
        cutoff = stats.sample_cutoff(campaign)
        AbSplit.insert(campaign=campaign.id, last_test_send_id=cutoff,
                       sample_sends=stats.sample_sizes(campaign.id, cutoff) if cutoff else None).execute()


def _aggregate(lo, hi):
    _split_ab_tests(lo, hi)
    _load(lo, hi)
    _mark("opened_id", "first_open", OPENED_BY_PERSON)
    _mark("clicked_id", "first_click", HUMAN_CLICK)
    _mark("bounced_id", "first_bounce", BOUNCE)
    db.execute_sql(f"""
        INSERT INTO link_mark (send_id, link_id, event_id)
        SELECT send_id, link_id, min(id) FROM report_batch
        WHERE send_id IS NOT NULL AND link_id IS NOT NULL AND {HUMAN_CLICK} GROUP BY send_id, link_id
        ON CONFLICT (send_id, link_id) DO NOTHING""")
    db.execute_sql(f"""
        UPDATE report_batch SET first_link = 1
        WHERE send_id IS NOT NULL AND link_id IS NOT NULL AND {HUMAN_CLICK}
          AND id = (SELECT m.event_id FROM link_mark m
                    WHERE m.send_id = report_batch.send_id AND m.link_id = report_batch.link_id)""")

    n = dialect.count_if
    dialect.upsert_adding("campaign_stat", ["campaign_id", "variant_id"],
                          ["sent", "bounced_hard", "bounced_soft", "bounced_other", "bounced_unique", "opens_total",
                           "opens_machine", "opens_unique", "clicks_total", "clicks_bot", "clicks_unique",
                           "unsubscribes", "complaints"], f"""
        SELECT campaign_id, variant_id,
               {n("type = 'sent'")}, {n("type = 'bounced' AND kind = 'hard'")},
               {n("type = 'bounced' AND kind = 'soft'")}, {n(BOUNCE + " AND kind NOT IN ('hard', 'soft')")},
               sum(first_bounce), {n(HUMAN_OPEN)}, {n("type = 'opened' AND flag != 0")}, sum(first_open),
               {n(HUMAN_CLICK)}, {n("type = 'clicked' AND flag != 0")}, sum(first_click),
               {n("type = 'unsubscribed'")}, {n("type = 'complained'")}
        FROM report_batch WHERE campaign_id IS NOT NULL GROUP BY campaign_id, variant_id""")
    dialect.upsert_adding("ab_stat", ["campaign_id", "variant_id", "rest"],
                          ["opens_unique", "clicks_unique", "unsubscribes", "complaints"], f"""
        SELECT campaign_id, variant_id, rest, sum(first_open), sum(first_click), {n("type = 'unsubscribed'")},
               {n("type = 'complained'")}
        FROM report_batch WHERE ab = 1 GROUP BY campaign_id, variant_id, rest""")
    dialect.upsert_adding("hour_stat", ["campaign_id", "hour"], ["opens", "clicks", "opens_unique", "clicks_unique"],
                          f"""
        SELECT campaign_id, hour, {n(HUMAN_OPEN)}, {n(HUMAN_CLICK)}, sum(first_open), sum(first_click)
        FROM report_batch WHERE campaign_id IS NOT NULL AND type IN ('opened', 'clicked') AND flag = 0
        GROUP BY campaign_id, hour""")
    dialect.upsert_adding("link_stat", ["campaign_id", "link_id"], ["clicks", "clicks_unique"], f"""
        SELECT campaign_id, link_id, count(*), sum(first_link)
        FROM report_batch WHERE campaign_id IS NOT NULL AND link_id IS NOT NULL AND {HUMAN_CLICK}
        GROUP BY campaign_id, link_id""")
    dialect.upsert_adding("domain_stat", ["campaign_id", "domain"], ["sent", "bounced", "opened", "clicked"], f"""
        SELECT campaign_id, domain, {n("type = 'sent'")}, sum(first_bounce), sum(first_open), sum(first_click)
        FROM report_batch WHERE campaign_id IS NOT NULL AND domain IS NOT NULL
          AND (type = 'sent' OR first_bounce = 1 OR first_open = 1 OR first_click = 1)
        GROUP BY campaign_id, domain""")
    dialect.upsert_adding("team_day", ["team_id", "day"],
                          ["sent", "opens", "clicks", "bounces", "complaints", "unsubscribes"], f"""
        SELECT team_id, day, {n("type = 'sent'")}, sum(first_open), sum(first_click), sum(first_bounce),
               {n("type = 'complained'")}, {n("type = 'unsubscribed'")}
        FROM report_batch GROUP BY team_id, day""")
    _countries_and_clients()


def _countries_and_clients():
    path = geo.configured_path()
    countries = {}
    rows = db.execute_sql(f"""
        SELECT b.campaign_id, {dialect.json_value("e.data", "ip")}, {dialect.json_value("e.data", "proxy")},
               sum(b.first_open), sum(b.first_click)
        FROM report_batch b JOIN event e ON e.id = b.id
        WHERE b.campaign_id IS NOT NULL AND (b.first_open = 1 OR b.first_click = 1)
        GROUP BY 1, 2, 3""").fetchall()
    for campaign_id, ip, proxy, opened, clicked in rows:
        # An image proxy (Gmail, Yahoo) fetches from its own servers: its address says nothing of the reader.
        code = "" if proxy else geo.country(ip, path)
        counts = countries.setdefault((campaign_id, code), [0, 0])
        counts[0] += opened
        counts[1] += clicked
    dialect.upsert_adding_rows("country_stat", ["campaign_id", "country"], ["opened", "clicked"],
                               [(c, code, o, k) for (c, code), (o, k) in countries.items()])
    kinds = {}
    rows = db.execute_sql(f"""
        SELECT b.campaign_id, {dialect.json_value("e.data", "ua")}, count(*)
        FROM report_batch b JOIN event e ON e.id = b.id
        WHERE b.campaign_id IS NOT NULL AND b.first_open = 1 AND b.type = 'opened'
        GROUP BY 1, 2""").fetchall()
    for campaign_id, ua, opened in rows:
        client, device = clients.classify(ua or "")
        kinds[(campaign_id, client, device)] = kinds.get((campaign_id, client, device), 0) + opened
    dialect.upsert_adding_rows("client_stat", ["campaign_id", "client", "device"], ["opened"],
                               [(c, client, device, n) for (c, client, device), n in kinds.items()])


def run_batch(batch=BATCH):
    """Count the next `batch` events; returns how many event ids it moved past (0: up to date)."""
    with db.atomic():
        lo = _cursor("events")
        hi = dialect.id_window_end("event", lo, batch)
        if hi is None:
            return 0
        _aggregate(lo, hi)
        _move("events", hi)
    return hi - lo


def run_contacts(batch=CONTACT_BATCH):
    """Add new contacts to TeamDay.new_contacts; returns how many contact ids it moved past."""
    with db.atomic():
        lo = _cursor("contacts")
        hi = dialect.id_window_end("contact", lo, batch)
        if hi is None:
            return 0
        p = db.param
        dialect.upsert_adding("team_day", ["team_id", "day"], ["new_contacts"], f"""
            SELECT team_id, {dialect.day_text("created_at")}, count(*) FROM contact WHERE id > {p} AND id <= {p}
            GROUP BY 1, 2""", (lo, hi))
        _move("contacts", hi)
    return hi - lo


def count_contacts(now=None):
    """Every team's contacts, in all and active, into ContactCount (what the dashboard shows): one
    GROUP BY over the (team, status, id) index, run by the minute task rather than per page view.
    Returns the number of teams counted."""
    now = now or utcnow()
    counts = {}
    for team_id, status, count in (Contact.select(Contact.team, Contact.status, fn.COUNT(Contact.id))
                                   .group_by(Contact.team, Contact.status).tuples()):
        total, active = counts.get(team_id, (0, 0))
        counts[team_id] = (total + count, active + (count if status == ContactStatus.ACTIVE else 0))
    with db.atomic():
        for team_id, (total, active) in counts.items():
            (ContactCount.insert(team=team_id, total=total, active=active, counted_at=now)
             .on_conflict(conflict_target=[ContactCount.team],
                          update={ContactCount.total: total, ContactCount.active: active,
                                  ContactCount.counted_at: now}).execute())
        ContactCount.update(total=0, active=0, counted_at=now).where(
            ContactCount.team.not_in(list(counts))).execute()
    return len(counts)


def run(max_seconds=None, batch=BATCH):
    """Count every new event (and contact), batch after batch; with `max_seconds`, stop after
    the batch that passes it. Returns the number of event ids moved past."""
    started = time.monotonic()
    total = 0

    def out_of_time():
        return max_seconds is not None and time.monotonic() - started >= max_seconds

    while run_contacts() and not out_of_time():
        pass
    while True:
        moved = run_batch(batch)
        total += moved
        if not moved or out_of_time():
            return total


def catch_up(max_seconds=0.3):
    """Bring the numbers up to date for someone looking at a report, within a time budget.
    Returns (cursor, highest event id) afterwards: a gap means counting is still going on."""
    last, top = position()
    if top > last:
        try:
            run(max_seconds=max_seconds, batch=min(BATCH, 5000))
        except Exception:  # noqa: BLE001 - a busy database must not break the page; the minute task catches up
            log.exception("report catch-up failed")
        last, top = position()
    return last, top


def retention(days, now=None, chunk=10000):
    """Delete raw events older than `days` days that the aggregator has counted; returns how many.
    Short transactions of `chunk` rows each, so the tracking endpoints never wait long.

    The newest event always stays: SQLite gives a new row max(id) + 1, so deleting the newest rows
    would hand their ids out again, below the cursors of this aggregator and the webhook dispatcher,
    and those events would never be counted or sent."""
    cutoff = str((now or utcnow()) - datetime.timedelta(days=days))  # Event.at is stored as this text
    deleted = 0
    while True:
        with db.atomic():
            last = _cursor("events")
            count = db.execute_sql(
                f"DELETE FROM event WHERE id IN (SELECT id FROM event WHERE id <= {db.param} AND at < {db.param} "
                f"AND id < (SELECT MAX(id) FROM event) ORDER BY id LIMIT {db.param})",
                (last, cutoff, chunk)).rowcount
        deleted += count
        if count < chunk:
            return deleted

