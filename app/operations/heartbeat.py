"""The consumers' heartbeat, and what the web side makes of it: is the worker running?

Each consumer process (tasks/operations.py) keeps one WorkerHeartbeat row fresh from one thread. The web side
asks `status()`: one query (the newest seen_at of the main queue's rows, indexed), cached a few seconds per
process. No row seen within LOFT_WORKER_STALE_SECONDS means sending and imports are paused: the banner on every
signed-in page, /health degraded, and, once per outage, an alert. The alert cannot go through the queue (its
worker is the one that is down): the web process that claims the outage (a conditional UPDATE of the one
WorkerAlert row, so two processes never both send) emails the instance administrators directly
(system_mail.send) on a thread of its own, and leaves a worker_down notice for each team's administrators.
"""
import dataclasses
import datetime
import logging
import threading
import time

from flask import current_app
from peewee import fn

from app import system_mail
from app.db import db
from app.models import Team
from app.models import User
from app.models import WorkerAlert
from app.models import WorkerHeartbeat
from app.models import utcnow
from app.notices import alerts
from app.notices import preferences

log = logging.getLogger(__name__)

MAIN_QUEUE = "loft"  # the queue whose worker sends campaigns and runs imports (the banner's subject)
KEEP_ROWS_FOR = datetime.timedelta(days=1)  # a stopped or vanished consumer's row stays this long on the page
WORKER_COMMAND = "huey_consumer wsgi.huey --workers 8 --max-delay 1 --flush-locks"


# --- The consumer's side ---------------------------------------------------------------------------

def started(host, pid, queue):
    """A consumer process begins: its row (the id it beats with). Rows gone quiet for a day are pruned here."""
    now = utcnow()
    WorkerHeartbeat.delete().where(WorkerHeartbeat.seen_at < now - KEEP_ROWS_FOR).execute()
    return WorkerHeartbeat.create(host=host[:200], pid=pid, queue=queue, started_at=now, seen_at=now).id


def beat(row_id, running):
    """The process is alive and runs `running` ([{name, id, started_at}]). A row pruned meanwhile (the clock
    jumped) is not recreated: the caller starts a new one when this returns False."""
    return bool(WorkerHeartbeat.update(seen_at=utcnow(), running=running)
                .where(WorkerHeartbeat.id == row_id).execute())


def stopped(row_id):
    now = utcnow()
    WorkerHeartbeat.update(seen_at=now, stopped_at=now, running=[]).where(WorkerHeartbeat.id == row_id).execute()


def workers():
    """Every consumer seen in the last day, newest first, for the queue page."""
    return list(WorkerHeartbeat.select().where(WorkerHeartbeat.seen_at >= utcnow() - KEEP_ROWS_FOR)
                .order_by(WorkerHeartbeat.queue, WorkerHeartbeat.seen_at.desc()))


def live_workers(stale_seconds):
    since = utcnow() - datetime.timedelta(seconds=stale_seconds)
    return [w for w in workers() if w.stopped_at is None and w.seen_at >= since]


def other_consumer_alive(queue, host, pid, stale_seconds):
    """Is a consumer process of `queue` other than (host, pid) alive (seen within `stale_seconds`)?"""
    since = utcnow() - datetime.timedelta(seconds=stale_seconds)
    return (WorkerHeartbeat.select().where((WorkerHeartbeat.queue == queue) & WorkerHeartbeat.stopped_at.is_null()
                                           & (WorkerHeartbeat.seen_at >= since)
                                           & ((WorkerHeartbeat.host != host[:200]) | (WorkerHeartbeat.pid != pid)))
            .exists())


# --- The web side ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WorkerStatus:
    down: bool
    last_seen: datetime.datetime | None = None  # the main queue's newest heartbeat, None: never seen
    stale_seconds: float = 60

    @property
    def reason(self):
        if not self.down:
            return ""
        if self.last_seen is None:
            return "no worker has ever run (start it: huey_consumer wsgi.huey)"
        return f"no worker seen since {self.last_seen:%Y-%m-%d %H:%M:%S} UTC (more than {self.stale_seconds:g} s)"


RUNNING_INLINE = WorkerStatus(down=False)  # huey's immediate mode: tasks run in the web process itself
_cache = {}  # database -> (time.monotonic(), WorkerStatus)
_cache_lock = threading.Lock()


def status(immediate=False, now=None):
    """The main queue's worker: running or not (cached for a few seconds per process; `now` bypasses it)."""
    if immediate:
        return RUNNING_INLINE
    stale = current_app.config["WORKER_STALE_SECONDS"]
    key = id(db.obj)
    if now is None:
        with _cache_lock:
            cached = _cache.get(key)
        if cached and time.monotonic() - cached[0] < min(3.0, stale / 4):
            return cached[1]
    now = now or utcnow()
    last_seen = (WorkerHeartbeat.select(fn.MAX(WorkerHeartbeat.seen_at))
                 .where(WorkerHeartbeat.queue == MAIN_QUEUE).scalar())
    if isinstance(last_seen, str):  # SQLite hands an aggregate back as text
        last_seen = datetime.datetime.fromisoformat(last_seen)
    down = last_seen is None or (now - last_seen).total_seconds() > stale
    result = WorkerStatus(down=down, last_seen=last_seen, stale_seconds=stale)
    with _cache_lock:
        _cache[key] = (time.monotonic(), result)
    if down and last_seen is not None:
        _alert_once(result)
    return result


def forget():
    with _cache_lock:
        _cache.clear()


def claim_outage(outage):
    """True for the one process that may alert about `outage` (its key): a conditional UPDATE.

    The row is made on first use rather than by the migration, so a migrated but unused database holds no rows
    (flask db copy-to insists on an empty target)."""
    WorkerAlert.insert(id=1, outage="").on_conflict_ignore().execute()
    return bool(WorkerAlert.update(outage=outage, alerted_at=utcnow())
                .where((WorkerAlert.id == 1) & (WorkerAlert.outage != outage)).execute())


def _alert_once(result):
    # A fresh install whose worker never ran shows the banner but alerts nobody (last_seen is None): there is
    # no outage, only a step not taken yet. An outage is known by the last heartbeat before it, so the next
    # outage (after the worker came back and beat again) is a new one.
    outage = f"{MAIN_QUEUE}:{result.last_seen.isoformat()}"
    try:
        if not claim_outage(outage):
            return
    except Exception:  # a database that refuses the write: /health says so already
        log.exception("could not claim the worker-down alert")
        return
    app = current_app._get_current_object()
    threading.Thread(target=_send_alert, args=(app, result), daemon=True, name="worker-down-alert").start()


def _send_alert(app, result):
    with app.app_context():
        subject = "Loft: the worker is not running; sending and imports are paused"
        text = (f"Loft's worker (the huey consumer) has not been seen since {result.last_seen:%Y-%m-%d %H:%M} UTC. "
                f"Until it runs again, campaigns do not send, imports do not progress and Loft's own emails wait.\n\n"
                f"Start it: `make run` during development, the Procfile's worker line ({WORKER_COMMAND}), "
                f"or `systemctl restart loft-worker` under systemd. See docs/operations.md.")
        for team_id in Team.select(Team.id).tuples():
            try:
                alerts.notify(team_id[0], subject, text, kind="worker_down")
            except Exception:
                log.exception("could not leave the worker-down notice for team %s", team_id[0])
        for user in User.select().where(User.is_instance_admin == True):  # noqa: E712 (peewee expression)
            try:
                if not preferences.wants_email_anywhere(user, "worker_down"):
                    continue  # turned off in their notification preferences (every team of theirs)
                message = system_mail.compose("worker_down", user.email, subject, text=text,
                                              last_seen=result.last_seen, command=WORKER_COMMAND)
                system_mail.send(message["to"], message["subject"], message["text"], message["html"])
            except Exception:
                log.exception("could not email the worker-down alert to the instance administrator")
