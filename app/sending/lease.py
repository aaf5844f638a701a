"""The runs of a campaign: several engine runs, on any number of workers, send one campaign at once.

Each run holds a SendRun row (a random token) and renews its heartbeat every second; a run that stops
renewing (kill -9, power loss) is presumed dead after SEND_LEASE_SECONDS, and the next run that looks
removes its row. The claims a run holds on Send rows carry their own expiry (ledger.claim), so a dead
run's sends go back to the queue by themselves, whoever notices first.

The live rows also say how many runs share each SMTP account of a team (runs_of_team): the engine gives
every run its share of the account's connections, rate and per-domain limits (app/sending/lanes.py),
and only live runs' permits count against an account's hourly and daily caps (app/sending/shares.py).

Within one process a campaign has at most one run (first_in_process): the threads of a consumer share
one interpreter lock, so a second run there would only split the first one's CPU; more runs come from
other processes.
"""
import contextlib
import datetime
import threading

from peewee import fn

from app.models import Campaign
from app.models import SendRun
from app.models import utcnow


_in_process = set()  # campaigns a run of this process is sending now
_in_process_lock = threading.Lock()


@contextlib.contextmanager
def first_in_process(campaign_id):
    """True inside for the first run of the campaign in this process, False for any other while it
    lasts: a process-local guard, on top of the runs in the database."""
    with _in_process_lock:
        first = campaign_id not in _in_process
        _in_process.add(campaign_id)
    try:
        yield first
    finally:
        if first:
            with _in_process_lock:
                _in_process.discard(campaign_id)


def _stale(lease_seconds, now):
    return now - datetime.timedelta(seconds=lease_seconds)


def alive(lease_seconds, now=None):
    """The condition on SendRun rows of the runs still alive (renewed within the lease)."""
    return SendRun.heartbeat_at >= _stale(lease_seconds, now or utcnow())


def join_run(campaign_id, token, max_runs, lease_seconds, now=None):
    """Start a run of the campaign: its SendRun id, or None when `max_runs` live runs already send it.

    Insert first, then count the live runs that joined before this one: of several runs joining
    together the earliest ones stay and the others leave, so the limit holds without a lock.
    """
    now = now or utcnow()
    team_id = Campaign.select(Campaign.team).where(Campaign.id == campaign_id).scalar()
    if team_id is None:
        return None
    SendRun.delete().where((SendRun.campaign == campaign_id)
                           & (SendRun.heartbeat_at < _stale(lease_seconds, now))).execute()
    run = SendRun.create(team=team_id, campaign=campaign_id, token=token, heartbeat_at=now)
    earlier = (SendRun.select(fn.COUNT(SendRun.id))
               .where((SendRun.campaign == campaign_id) & (SendRun.id < run.id)
                      & (SendRun.heartbeat_at >= _stale(lease_seconds, now))).scalar())
    if earlier >= max(1, max_runs):
        SendRun.delete().where(SendRun.id == run.id).execute()
        return None
    return run.id


def renew_run(token, now=None):
    """Renew the run's heartbeat; False when its row is gone (it was presumed dead and removed)."""
    return bool(SendRun.update(heartbeat_at=now or utcnow()).where(SendRun.token == token).execute())


def leave_run(token):
    SendRun.delete().where(SendRun.token == token).execute()


def prune_dead_runs(lease_seconds, now=None):
    """Remove the rows of every run presumed dead (no renewal within the lease); returns how many.
    A run that ends removes its own row and join_run clears a campaign's dead runs when another run
    joins it, so what is left here is a killed worker's run of a campaign nobody sends again. A run
    that was only slow finds its row gone at its next renewal and stops, as after join_run."""
    return SendRun.delete().where(SendRun.heartbeat_at < _stale(lease_seconds, now or utcnow())).execute()


def live_runs(campaign_id, lease_seconds, now=None):
    return (SendRun.select().where((SendRun.campaign == campaign_id)
                                   & (SendRun.heartbeat_at >= _stale(lease_seconds, now or utcnow()))).count())


def runs_of_team(team_id, lease_seconds, now=None):
    """Live runs of all the team's campaigns: they share the team's SMTP accounts (at least 1)."""
    count = (SendRun.select().where((SendRun.team == team_id)
                                    & (SendRun.heartbeat_at >= _stale(lease_seconds, now or utcnow()))).count())
    return max(1, count)


def run_free_in(campaign_id, lease_seconds, now=None):
    """Seconds until the oldest heartbeat among the campaign's runs runs out (0 when one already has)."""
    beat = SendRun.select(fn.MIN(SendRun.heartbeat_at)).where(SendRun.campaign == campaign_id).scalar()
    if beat is None:
        return 0.0
    if isinstance(beat, str):  # an aggregate of a DateTimeField comes back as text on SQLite
        beat = datetime.datetime.fromisoformat(beat)
    return max(0.0, (beat + datetime.timedelta(seconds=lease_seconds) - (now or utcnow())).total_seconds())
