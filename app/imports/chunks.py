"""Writing one chunk of an import: contacts, subscriptions, tags, new fields and the job's counters in one
transaction (commit_chunk), on a thread of its own while the next chunk is parsed (ChunkWriter).

The hot path is plain SQL through the peewee connection: peewee's insert_many builds every row through its query
machinery, which measured 4x slower than the whole rest of the import. Many-row INSERT ... ON CONFLICT DO NOTHING
(app.db.insert_values: a VALUES list on SQLite, arrays through unnest on PostgreSQL); on SQLite the new ids are known
from the rowids (see insert_contacts), elsewhere RETURNING gives them. The job's counters' UPDATE is guarded by the
chunk's starting row, so a second worker on the same job, or a replay of a committed chunk, changes nothing."""
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter

from flask import current_app
from flask import has_app_context
from peewee import Value

from app.contacts.export import neutralise
from app.contacts.tags import tag_rows
from app.db import close_db
from app.db import db
from app.db import insert_values
from app.db import is_sqlite
from app.db import max_id
from app.db import select_among
from app.db import update_rows
from app.imports import joins
from app.imports.rejects import BLOCKED_REASONS
from app.imports.rejects import TAG_DROPPED
from app.imports.rejects import partly
from app.imports.rejects import rejects_writer
from app.imports.rows import json_object
from app.models import BLOCKED_STATUSES
from app.models import Contact
from app.models import CustomField
from app.models import ImportJob
from app.models import Subscription
from app.models import utcnow

# Rows per statement: few, big statements matter with the writer thread, which after each
# one must win the GIL back from the parser (up to the interpreter's 5 ms switch interval).
# Plain multi-row VALUES only: SQLite 3.40 parses INSERT ... SELECT FROM (VALUES ...) in
# quadratic time (measured: 4.7 us a row at 2,000 rows, 17 us at 8,000; plain VALUES 0.5 us).
# 4,600 contacts x 7 values and 10,900 subscriptions x 3 values stay under SQLite's 32,766
# bound variables (PostgreSQL allows 65,535).
SQL_BATCH = 4600
SUBSCRIBE_BATCH = 10900


class Superseded(Exception):
    """Another run of the same job committed this chunk first."""


_by_email = itemgetter(1)


class ChunkWriter:
    """Commits chunks on a thread of its own while the caller parses the next chunk.

    sqlite3 releases the GIL while a statement runs, so on two cores the
    inserts of one chunk overlap the parsing of the next (a million rows:
    14.5 s instead of 15.9 s in one thread, measured). Chunks are still
    committed one at a time and in order, each in one transaction, and at
    most one is in flight: a crash loses at most the chunk being written,
    which a resume writes again. The thread has its own database connection (closed with the app context
    each chunk is written in, opened again by the next).
    """

    def __init__(self, plan, job, rejects_file, on_entered=None):
        self.plan = plan
        self.on_entered = on_entered
        # The writer thread works in the caller's app (its settings, and in tests its clock file): the automations
        # a chunk starts and the tick it asks for must see the same "now" as everything else.
        self.app = current_app._get_current_object() if has_app_context() else None
        self.job = job
        self.rows_file = rejects_file
        self.rows_writer = rejects_writer(rejects_file, job)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job.id}")
        self.pending = None
        self.committed = 0

    def submit(self, start, end, chunk, rejects, flags=None):
        # Sorting and the INSERT parameters are made here, while the writer is still busy with
        # the previous chunk: the writer thread does little but run SQL, so it rarely waits for the GIL.
        stamp, batches = prepare(self.plan.team_id, chunk)
        self._wait()
        # New custom fields found so far travel with this chunk; the parser knows their types from now on.
        new_fields, self.plan.new_fields = self.plan.new_fields, {}
        self.plan.field_types.update(new_fields)
        self.pending = self.pool.submit(self._commit, self.plan, self.job, start, end, chunk, stamp, batches,
                                        rejects, self.rows_writer, self.rows_file, new_fields, flags)

    def _commit(self, *chunk):
        with self.app.app_context() if self.app is not None else contextlib.nullcontext():
            entered = commit_chunk(*chunk)
            # Right after the chunk's commit: the runs it started move now, not after the whole import.
            if entered and self.on_entered is not None:
                self.on_entered(entered)
        return entered

    def _wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # the writer's exception, if any, is raised here
            self.committed += 1

    def close(self):
        try:
            self._wait()
        finally:
            self.pool.submit(close_db).result()  # the writer thread's own connection
            self.pool.shutdown()


def prepare(team_id, chunk):
    """(timestamp, INSERT batches) for a chunk: the rows that may become contacts (not those on the
    suppression list), sorted by address so the inserts walk the (team, email) index in order
    instead of jumping around it (a third less CPU for random addresses, measured)."""
    stamp = utcnow().isoformat(" ")
    fresh = sorted((row for row in chunk if not row[5]), key=_by_email)
    batches = []
    for start in range(0, len(fresh), SQL_BATCH):
        params = []
        for row in fresh[start:start + SQL_BATCH]:
            email = row[1]
            params += (team_id, email, email[email.rindex("@") + 1:], row[2], row[3], stamp, stamp)
        batches.append(params)
    return stamp, batches


def commit_chunk(plan, job, start, end, chunk, stamp, batches, rejects, writer, rejects_file, new_fields=None,
                  flags=None):
    """Write one chunk: contacts, subscriptions, new fields and the job's counters, all or nothing.

    Every row is offered to one INSERT ... ON CONFLICT DO NOTHING; those it
    did not insert already exist and are looked up (and in upsert mode
    updated). The rejected rows are appended to the rejects file before the
    commit; a resume trims the file back to the last committed row.
    """
    updated = skipped = 0
    with db.atomic():
        if new_fields:
            CustomField.insert_many(
                [{"team": plan.team_id, "key": key, "label": key, "type": field_type}
                 for key, field_type in new_fields.items()]).on_conflict_ignore().execute()
        created, new_emails, new_ids, after_id = insert_contacts(batches)
        # Usually every row offered became a new contact: only the ones on the suppression list remain.
        if new_emails is None:
            others = [row for row in chunk if row[5]]
        else:
            others = [row for row in chunk if row[1] not in new_emails]
        existing = (existing_contacts(plan.team_id, [row[1] for row in others], full=plan.mode == "upsert")
                    if others else {})
        imported_new = set(new_emails) if new_emails is not None else {row[1] for row in chunk if not row[5]}
        for number, email, name, attributes, cells, listed, dropped in chunk:
            if dropped and email in imported_new:
                rejects.append((number, "partial", partly(dropped), cells))
        subscribe = new_ids  # None on SQLite: the new contacts are the rows after `after_id`
        subscribe_existing = []
        changes = []
        for number, email, name, attributes, cells, listed, dropped in others:
            found = existing.get(email)
            if found is None:  # a new address, but on the suppression list
                rejects.append((number, "blocked", BLOCKED_REASONS["listed_new"], cells))
                continue
            contact_id, status = found[0], found[1]
            if dropped and plan.mode == "upsert":
                rejects.append((number, "partial", partly(dropped), cells))
            elif dropped and plan.tags is not None:
                # Tags reach existing contacts in either mode (like lists), so their bad names are reported.
                tag_dropped = [reason for reason in dropped if reason.startswith(TAG_DROPPED)]
                if tag_dropped:
                    rejects.append((number, "partial", partly(tag_dropped), cells))
            change = merge(found, name, attributes) if plan.mode == "upsert" else None
            if change:
                changes.append(change + (stamp, contact_id))
                updated += 1
            else:
                skipped += 1
            if status in BLOCKED_STATUSES or listed:
                reason = BLOCKED_REASONS[status if status in BLOCKED_STATUSES else "listed"]
                rejects.append((number, "blocked", reason, cells))
            else:
                subscribe_existing.append(contact_id)
        if changes:
            update_rows([Contact.name, Contact.attributes, Contact.updated_at], Contact.id).run(changes)
        for list_id in plan.list_ids:
            if subscribe is None:
                # The new contacts are the ids above after_id (see insert_contacts): one INSERT ... SELECT.
                new_contacts = Contact.select(Contact.id, Value(list_id), Value("subscribed"), Value(stamp)).where(
                    Contact.id > after_id)
                (Subscription.insert_from(new_contacts, [Subscription.contact, Subscription.list, Subscription.status,
                                                         Subscription.created_at]).on_conflict_ignore().execute())
                subscribe_to_list(subscribe_existing, list_id, stamp)
            else:
                subscribe_to_list(subscribe + subscribe_existing, list_id, stamp)
        if plan.tags is not None:
            tag_chunk(plan, chunk, imported_new, existing, after_id)
        if flags:
            flag_chunk(plan, flags, existing, after_id)
        kinds = {"rejected": 0, "duplicate": 0, "blocked": 0, "partial": 0}
        rejects.sort(key=lambda r: r[0])
        for number, kind, reason, cells in rejects:
            kinds[kind] += 1
            writer.writerow([number, reason] + [neutralise(c) for c in cells])
        rejects_file.flush()
        claimed = (ImportJob.update(processed_rows=end, created=ImportJob.created + created,
                                    updated=ImportJob.updated + updated, skipped=ImportJob.skipped + skipped,
                                    rejected=ImportJob.rejected + kinds["rejected"],
                                    duplicates=ImportJob.duplicates + kinds["duplicate"],
                                    blocked=ImportJob.blocked + kinds["blocked"],
                                    partial=ImportJob.partial + kinds["partial"], heartbeat_at=utcnow())
                   .where((ImportJob.id == job.id) & (ImportJob.processed_rows == start)
                          & (ImportJob.status == "running")).execute())
        if not claimed:
            raise Superseded()
    return joins.start_automations(plan.team_id, plan.list_ids, stamp, new_ids if new_ids is not None else after_id,
                                   subscribe_existing)


def tag_chunk(plan, chunk, imported_new, existing, after_id):
    """Tag the chunk's contacts (new, and existing ones, blocked or not: a tag is no consent) with the
    good names of their Tags cells; the bad ones were reported when the row was parsed. One lookup
    of the new contacts' ids (on SQLite the id range above after_id, see insert_contacts) and a few
    multi-row INSERTs for the whole chunk."""
    at = plan.tags
    wanted = {}
    for row in chunk:
        raw = row[4][at]
        if raw and not raw.isspace() and (row[1] in imported_new or row[1] in existing):
            names = plan.split_tags(raw)[0]
            if names:
                wanted[row[1]] = names
    if not wanted:
        return
    ids = {email: found[0] for email, found in existing.items()}
    if after_id is not None:
        ids.update(db.execute(Contact.select(Contact.email, Contact.id).where(Contact.id > after_id)).fetchall())
    else:
        missing = [email for email in wanted if email not in existing]
        ids.update({email: found[0] for email, found in existing_contacts(plan.team_id, missing, full=False).items()})
    tag_rows(plan.team_id, {ids[email]: names for email, names in wanted.items() if email in ids})


def flag_chunk(plan, flags, existing, after_id):
    """Tag the chunk's contacts that address validation flagged ({email: tag name}, screening.screen),
    new ones and existing ones alike: the verdict is about the address."""
    ids = {email: found[0] for email, found in existing.items() if email in flags}
    if after_id is not None:  # SQLite: the new contacts are the ids above after_id (see insert_contacts)
        new = db.execute(Contact.select(Contact.email, Contact.id).where(Contact.id > after_id)).fetchall()
        ids.update((email, contact_id) for email, contact_id in new if email in flags)
    else:
        missing = [email for email in flags if email not in ids]
        ids.update({email: found[0] for email, found in existing_contacts(plan.team_id, missing, full=False).items()})
    tag_rows(plan.team_id, {contact_id: [flags[email]] for email, contact_id in ids.items()})


def existing_contacts(team_id, emails, full):
    """{email: (id, status[, name, attributes])} of the team's contacts among `emails`."""
    columns = [Contact.id, Contact.email, Contact.status] + ([Contact.name, Contact.attributes] if full else [])
    found = {}
    for start in range(0, len(emails), SQL_BATCH):
        batch = emails[start:start + SQL_BATCH]
        cursor = select_among(columns, Contact.team, Contact.email, len(batch)).run([team_id] + batch)
        for row in cursor.fetchall():
            found[row[1]] = (row[0], row[2]) + tuple(row[3:])
    return found


def insert_contacts(batches):
    """Offer the rows to INSERT ... ON CONFLICT DO NOTHING.

    Returns (how many were inserted, their addresses, their ids, after_id).
    On SQLite the addresses are None when every row offered was inserted, the
    ids are None, and the new contacts are exactly those with an id above
    after_id: the transaction holds the write lock, so nobody else inserts. This
    spares RETURNING, whose rows come back one sqlite3_step at a time, and the
    sqlite3 module lets go of the GIL and must win it back from the parser
    thread at every step (up to 5 ms each): seconds per million rows (measured).
    Elsewhere (PostgreSQL) RETURNING gives the ids.
    """
    if not is_sqlite():
        ids = {}
        for params in batches:
            ids.update(insert_sql(len(params) // 7, True).run(params).fetchall())
        return len(ids), set(ids), list(ids.values()), None
    after_id = max_id("contact")
    offered = inserted = 0
    for params in batches:
        offered += len(params) // 7
        inserted += insert_sql(len(params) // 7, False).run(params).rowcount
    if inserted == offered:
        return inserted, None, None, after_id
    # The cursor's own rows: peewee's row wrapper costs more than the query at 10,000 rows (measured).
    new = db.execute(Contact.select(Contact.email).where(Contact.id > after_id)).fetchall()
    return inserted, {email for (email,) in new}, None, after_id


def insert_sql(rows, returning):
    """The INSERT of `rows` new contacts (7 parameters each), skipping addresses the team has."""
    return insert_values([Contact.team, Contact.email, Contact.domain, Contact.name, Contact.attributes,
                          Contact.created_at, Contact.updated_at], rows,
                         fixed={Contact.status: "active", Contact.source: "import", Contact.consent_source: "",
                                Contact.consent_ip: "", Contact.consent_text: ""},
                         conflict=[Contact.team, Contact.email],
                         returning=[Contact.email, Contact.id] if returning else ())


def subscribe_to_list(contact_ids, list_id, stamp):
    """Subscribe contacts to a list; an existing subscription (even an unsubscribed one) is left as it is."""
    for start in range(0, len(contact_ids), SUBSCRIBE_BATCH):
        params = []
        for contact_id in contact_ids[start:start + SUBSCRIBE_BATCH]:
            params += (contact_id, list_id, stamp)
        insert_values([Subscription.contact, Subscription.list, Subscription.created_at], len(params) // 3,
                      fixed={Subscription.status: "subscribed"},
                      conflict=[Subscription.contact, Subscription.list]).run(params)


def merge(found, name, attributes):
    """(name, attributes JSON) when the file changes an existing contact, else None.
    Empty cells never erase what is stored; the status is never touched."""
    _, _, old_name, stored = found
    old = Contact.attributes.python_value(stored)  # JSON text from SQLite, a dict from PostgreSQL's jsonb
    if not isinstance(old, dict):
        old = {}
    attributes = json.loads(attributes) if attributes != "{}" else None
    merged = {**old, **attributes} if attributes else old
    new_name = name or old_name
    if new_name == old_name and merged == old:
        return None
    return new_name, json_object(merged)
