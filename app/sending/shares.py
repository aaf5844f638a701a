"""What the engine runs of a team share: each SMTP account's limits, held in the database.

Limits shared by every run, never only in one process's memory:
- Connections, the per-second rate and the per-domain limits are split evenly among the live runs of
  the team (lease.runs_of_team, re-read every SEND_SHARE_INTERVAL): a run that joined or died counts
  from the next re-read.
- Hourly and daily caps are exact: a run sends through a capped account only with a permit in hand.
  The daily cap of an account in warm-up is the lower of per_day and the warm-up's cap for the UTC day
  (app/senders/warmup.py), read in the same locked transaction as per_day.
  It takes permits in blocks (SEND_PERMIT_BLOCK, never more than is left) in one short transaction
  that serialises with every other run's take (take_permits): sent through the account in the
  rolling hour and day (the ledger, and the transactional messages sent through it) plus the permits
  live runs hold unused, against the caps. A permit
  is used in the transaction that records its message as sent (use_permits) and goes back to the run
  when the delivery did not happen. A run's permits die with it: they stop counting once its
  heartbeat is older than the lease, and go with its SendRun row.
- An account paused by any run (its own limit, repeated failures) is paused for every run at the
  next re-read.

  read_shares(team_id, campaign_id, settings)      (the run's database thread) one re-read
  apply_shares(lanes, domains, shares)             (the event loop) this run takes its share
  take_permits(run_id, account_id, block, ...)     (database thread) more permits for one lane
  use_permits(run_id, sent_per_account)            (database thread, inside the write of results)
  capped_in_words(accounts, lease_seconds)         why a run found every account out of permits
  prune(lease_seconds)                             (the minute task) what dead runs left behind
"""
import dataclasses
import datetime

from peewee import fn

from app.db import count_where
from app.db import db
from app.db import locked
from app.models import Send
from app.models import SendPermit
from app.models import SendRun
from app.models import SmtpAccount
from app.models import TxMessage
from app.models import utcnow
from app.senders import accounts as accounts_service
from app.senders import warmup
from app.sending import lease

ANOTHER_RUN_PAUSED = "another run of the team paused it (see Sending › SMTP accounts for why)"
CAPPED = "every SMTP account reached its hourly or daily limit"


@dataclasses.dataclass
class Shares:
    """One re-read of what the runs share."""
    team_runs: int  # live runs of the team's campaigns: each keeps its part of every account's limits
    campaign_runs: int  # live runs of this campaign
    active: set  # ids of the accounts any run may send through now (not paused by one of them)


def read_shares(team_id, campaign_id, settings, now=None):
    """(DB thread) The live runs of the team and of the campaign, and which accounts are active."""
    now = now or utcnow()
    return Shares(team_runs=lease.runs_of_team(team_id, settings.lease_seconds, now),
                  campaign_runs=lease.live_runs(campaign_id, settings.lease_seconds, now),
                  active={a.id for a in accounts_service.active_accounts(team_id)})


def apply_shares(lanes, domains, shares):
    """Give this run its share: each lane's connections and rate and the domain limits split among
    the team's runs, and the pauses another run stored. A lane refused permits asks again (the
    window moved, or a run ended or died). True when a lane was paused here."""
    paused = False
    for lane in lanes:
        lane.share(shares.team_runs)
        lane.permits_out = False
        if lane.id not in shares.active and not lane.paused:
            lane.paused = True
            lane.pause_reason = ANOTHER_RUN_PAUSED
            paused = True
    domains.runs = shares.team_runs
    return paused


# --- Permits: the hourly and daily caps ------------------------------------------------------------

def room(per_hour, per_day, hour, day):
    """How many more messages the caps allow when `hour` and `day` are already counted (None: no cap)."""
    left = [cap - counted for cap, counted in ((per_hour, hour), (per_day, day)) if cap]
    return max(0, min(left)) if left else None


def counted(account_id, lease_seconds, now):
    """(sent in the last hour, sent in the last 24 hours, permits live runs hold unused) for the account.

    One statement, so one snapshot: a write that records sends and uses their permits commits both at
    once, and is seen either wholly or not at all (two statements could see the sends without their
    permits, or the reverse, and count a message twice or not at all)."""
    held = (SendPermit.select(fn.COALESCE(fn.SUM(SendPermit.held), 0))
            .join(SendRun, on=(SendPermit.run == SendRun.id))
            .where((SendPermit.account == account_id) & lease.alive(lease_seconds, now)))
    hour_ago, day_ago = now - datetime.timedelta(hours=1), now - datetime.timedelta(days=1)
    # Transactional messages sent through the account count against the same caps.
    tx_sent = TxMessage.select(fn.COUNT(TxMessage.id)).where(TxMessage.smtp_account == account_id)
    tx_day = tx_sent.where(TxMessage.sent_at >= day_ago)
    tx_hour = tx_sent.where(TxMessage.sent_at >= hour_ago)
    day, hour, holding, in_day, in_hour = (
        Send.select(fn.COUNT(Send.id), count_where(Send.sent_at >= hour_ago), held, tx_day, tx_hour)
        .where((Send.smtp_account == account_id) & (Send.sent_at >= day_ago))
        .tuples().get())
    return int(hour or 0) + int(in_hour or 0), int(day or 0) + int(in_day or 0), int(holding or 0)


WARMUP_FIELDS = (SmtpAccount.warmup_started_on, SmtpAccount.warmup_first_day, SmtpAccount.warmup_growth_percent)


def take_permits(run_id, account_id, block, lease_seconds, now=None):
    """(DB thread) Grant the run up to `block` more permits for the account: how many (0 when its caps
    are reached; `block` when it has no cap any more). The account row is locked first (PostgreSQL),
    so takes for one account never overlap; on SQLite the transaction holds the write lock."""
    now = now or utcnow()
    with db.atomic():
        account = (locked(SmtpAccount.select(SmtpAccount.per_hour, SmtpAccount.per_day, *WARMUP_FIELDS)
                          .where(SmtpAccount.id == account_id)).first())
        if account is None:
            return 0
        hour, day, holding = counted(account_id, lease_seconds, now)
        left = room(account.per_hour, warmup.daily_cap(account, now.date()), hour + holding, day + holding)
        granted = block if left is None else min(block, left)
        if granted:
            mine = (SendPermit.run == run_id) & (SendPermit.account == account_id)
            if not SendPermit.update(held=SendPermit.held + granted).where(mine).execute():
                SendPermit.insert(run=run_id, account=account_id, held=granted).execute()
    return granted


def use_permits(run_id, sent_per_account):
    """(DB thread, inside the transaction that records the sends) {account_id: messages recorded sent}:
    their permits are used up; from the commit on they count in the ledger instead."""
    for account_id, count in sent_per_account.items():
        (SendPermit.update(held=SendPermit.held - count)
         .where((SendPermit.run == run_id) & (SendPermit.account == account_id)).execute())


def prune(lease_seconds, now=None):
    """(The minute task) Remove what dead runs left: their permits, which stopped counting once their
    heartbeat passed the lease, and then their SendRun rows (lease.prune_dead_runs). A live run's rows
    stay, its permit rows too, used up or not. Returns (runs, permits) removed."""
    now = now or utcnow()
    with db.atomic():
        live = SendRun.select(SendRun.id).where(lease.alive(lease_seconds, now))
        permits = SendPermit.delete().where(SendPermit.run.not_in(live)).execute()
        runs = lease.prune_dead_runs(lease_seconds, now)
    return runs, permits


def capped_in_words(accounts, lease_seconds, now=None):
    """(DB thread) Why a run found every account out of permits: CAPPED, or, when a warm-up holds one
    back, each account's reason in words (the warm-up cap grows at the next UTC day)."""
    now = now or utcnow()
    parts, warming = [], 0
    for account in accounts:
        today_limit = warmup.limit(account, now.date())
        _hour, day, holding = counted(account.id, lease_seconds, now)
        if today_limit is not None and day + holding >= today_limit:
            warming += 1
            parts.append(f"“{account.name}” reached its warm-up limit for today ({today_limit:,} "
                         f"message{'' if today_limit == 1 else 's'})")
        else:
            parts.append(f"“{account.name}” reached its hourly or daily limit")
    if not warming:
        return CAPPED
    return "; ".join(parts) + ("; sending resumes tomorrow" if warming == len(parts)
                               else "; sending resumes when one of them has room again")
