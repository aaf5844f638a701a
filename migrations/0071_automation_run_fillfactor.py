"""automation_run leaves 30 % of each page free on PostgreSQL (app.db.leave_room_for_updates), so the scheduler's
lease (claimed_until, which no index holds) is written as a heap-only update instead of new entries in the table's
four indexes: the claim of 10,000 due runs among a million went from 203 ms to 114 ms (docs/benchmarks.md).
Nothing changes on SQLite."""
from app.db import leave_room_for_updates

FILL = 70  # percent of each page filled by inserts; the rest is room for the row's own later versions


def up(migrator, db):
    leave_room_for_updates(db, "automation_run", FILL)


def down(migrator, db):
    leave_room_for_updates(db, "automation_run", 100)
