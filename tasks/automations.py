"""Tasks of the automation engine: thin wrappers over app/automations/scheduler.py.

tick() runs every minute and moves every due run (waits that ended, runs just entered). A tick that claimed its
whole limit enqueues another at once, so a backlog drains in seconds rather than a thousand runs a minute.
advance_soon() is what triggers call after entering contacts: a welcome email leaves within seconds instead of
at the next minute. Two ticks at once are safe (each claims different runs with a lease), so neither is locked."""
import time

from huey import crontab

from app.automations import mail
from app.automations import scheduler
from tasks import huey
from tasks import retry_policy
from tasks import sending

LIMIT = 1000  # runs per tick: a bounded transaction and a task that ends within a minute


def run_tick(limit=LIMIT):
    moved = scheduler.tick(limit=limit)
    if moved >= limit:
        advance.schedule(delay=0)  # more are due: carry on now, in a task of its own (the queue stays fair)
    for campaign_id in mail.due_campaign_ids():
        # Email steps queued messages (each step's hidden campaign): the sending engine takes them now, not at its
        # minute tick; a campaign already being sent answers "busy" at once.
        sending.send_campaign(campaign_id)
    return moved


@retry_policy(0, 0, "periodic: the next minute claims whatever this tick left, leases expire by themselves")
@huey.periodic_task(crontab(minute="*"), name="automations.tick")
def tick():
    return run_tick()


@retry_policy(0, 0, "the minute tick picks up the same runs; a retry would only race it")
@huey.task(name="automations.advance")
def advance():
    return run_tick()


def advance_soon():
    """Enqueue a tick now (after contacts entered an automation)."""
    advance()


# Seconds between the ticks a long entry asks for (advance_as_they_enter). A tick that claims its full limit enqueues
# the next itself, so one kick starts a chain that keeps up with the entry; each further kick would start another
# chain beside it, and chains in parallel compete with sending for the cores and SQLite's write lock (a kick a
# second: the 100,000-run welcome burst went from 0.91 to 0.70-0.73 of a campaign's rate, docs/benchmarks.md).
KICK_EVERY = 60.0


def advance_as_they_enter(every=None):
    """For the work that enters many runs chunk by chunk (an import, a bulk action): a callable to call after each
    chunk's commit. The first call enqueues a tick at once, later ones at most once every KICK_EVERY seconds (the
    minute tick's pace), so welcome emails leave during a long import instead of after it. The caller still calls
    advance_soon() at the end, for runs a chain that ran dry (it claimed less than its limit) left behind."""
    every = KICK_EVERY if every is None else every
    last = [None]

    def kick(_entered=None):
        now = time.monotonic()
        if last[0] is None or now - last[0] >= every:
            last[0] = now
            advance()
    return kick
