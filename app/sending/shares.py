"""What the engine runs of a team share: each SMTP account's limits, held in the database.

Limits shared by every run: an account's connections, its per-second rate and the per-domain limits
are split evenly among the live runs of the team (lease.runs_of_team, re-read every
SEND_SHARE_INTERVAL), its hourly and daily caps are re-counted from the ledger, and an account paused
by any run (its own limit, repeated failures) is paused for every run at the next re-read. Nothing of
it lives only in one process's memory.

  read_shares(team_id, campaign_id, lane_ids, settings)   (the run's database thread) one re-read
  apply_shares(lanes, domains, shares)                    (the event loop) this run takes its share
"""
import dataclasses

from app.models import utcnow
from app.senders import accounts as accounts_service
from app.sending import lease

ANOTHER_RUN_PAUSED = "another run of the team paused it (see Sending › SMTP accounts for why)"


@dataclasses.dataclass
class Shares:
    """One re-read of what the runs share."""
    team_runs: int  # live runs of the team's campaigns: each keeps its part of every account's limits
    campaign_runs: int  # live runs of this campaign
    used: dict  # accounts.sent_counts: {account_id: {"hour": n, "day": n}} from the ledger
    active: set  # ids of the accounts any run may send through now (not paused by one of them)


def read_shares(team_id, campaign_id, lane_ids, settings, now=None):
    """(DB thread) The live runs, the ledger's counts of the run's accounts and which are active."""
    now = now or utcnow()
    return Shares(team_runs=lease.runs_of_team(team_id, settings.lease_seconds, now),
                  campaign_runs=lease.live_runs(campaign_id, settings.lease_seconds, now),
                  used=accounts_service.sent_counts(list(lane_ids), now),
                  active={a.id for a in accounts_service.active_accounts(team_id)})


def apply_shares(lanes, domains, shares):
    """Give this run its share: each lane's connections and rate and the domain limits split among
    the team's runs, the caps counted from the ledger (this run's unwritten sends are in its own
    counts, hence the max), and the pauses another run stored. True when a lane was paused here."""
    paused = False
    for lane in lanes:
        lane.share(shares.team_runs)
        counted = shares.used.get(lane.id, {})
        lane.hour = max(lane.hour, counted.get("hour", 0))
        lane.day = max(lane.day, counted.get("day", 0))
        if lane.id not in shares.active and not lane.paused:
            lane.paused = True
            lane.pause_reason = ANOTHER_RUN_PAUSED
            paused = True
    domains.runs = shares.team_runs
    return paused
