"""What the engine runs of a team share: each SMTP account's limits, held in the database.

Limits shared by every run, never only in one process's memory:
- Connections, the per-second rate and the per-domain limits are split evenly among the live runs of
  the team (lease.runs_of_team, re-read every SEND_SHARE_INTERVAL): a run that joined or died counts
  from the next re-read.
- Hourly and daily caps are exact: a run sends through a capped account only with a permit in hand.
  The daily cap of an account in warm-up is the lower of per_day and the warm-up's cap for the UTC day
  (app/senders/warmup.py), read in the same locked transaction as per_day. A sender domain with a
  warm-up plan caps the campaigns From it the same way: the take locks the domain's row after the
  account's (always in that order) and grants no more than both have room for; the domain counts what
  was sent From it through any of the team's accounts, and the permits held by the live runs of the
  campaigns From it.
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
  capped_in_words(accounts, lease_seconds, domain) why a run found every account out of permits
  allowance_back_at(accounts, domain, ...)         when a warm-up plan that holds a campaign back lets it send again
  prune(lease_seconds)                             (the minute task) what dead runs left behind
"""
import dataclasses
import datetime

from peewee import fn

from app.db import count_where
from app.db import db
from app.db import locked
from app.models import Campaign
from app.models import Send
from app.models import SenderDomain
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


WARMUP_FIELDS = (SmtpAccount.warmup_started_on, SmtpAccount.warmup_first_day, SmtpAccount.warmup_growth_percent,
                 SmtpAccount.warmup_preset, SmtpAccount.warmup_target)


def domain_counted(domain, lease_seconds, now):
    """(sent From the domain in the last 24 hours, permits the live runs of campaigns From it hold), in
    one statement for one snapshot, as counted() does for an account."""
    sends, tx = warmup.domain_sends(domain, now - datetime.timedelta(days=1))
    held = (SendPermit.select(fn.COALESCE(fn.SUM(SendPermit.held), 0))
            .join(SendRun, on=(SendPermit.run == SendRun.id))
            .join(Campaign, on=(SendRun.campaign == Campaign.id))
            .where((Campaign.team == domain.team_id) & warmup.from_domain(Campaign.from_email, domain.domain)
                   & lease.alive(lease_seconds, now)))
    day, in_tx, holding = sends.select(fn.COUNT(Send.id), tx.select(fn.COUNT(TxMessage.id)), held).tuples().get()
    return int(day or 0) + int(in_tx or 0), int(holding or 0)


def domain_room(domain_id, lease_seconds, now):
    """(Inside take_permits' transaction) How many more messages the domain's plan allows today, None
    without a plan. The domain's row is locked, so takes for one domain never overlap either."""
    domain = locked(SenderDomain.select().where(SenderDomain.id == domain_id)).first()
    cap = warmup.limit(domain, now.date()) if domain is not None else None
    if cap is None:
        return None
    day, holding = domain_counted(domain, lease_seconds, now)
    return max(0, cap - day - holding)


def take_permits(run_id, account_id, block, lease_seconds, now=None, domain_id=None):
    """(DB thread) Grant the run up to `block` more permits for the account: how many (0 when its caps
    are reached; `block` when it has no cap any more). The account row is locked first (PostgreSQL),
    so takes for one account never overlap; on SQLite the transaction holds the write lock. With
    `domain_id` (the campaign's From domain) its warm-up plan holds too: the lower room applies."""
    now = now or utcnow()
    with db.atomic():
        account = (locked(SmtpAccount.select(SmtpAccount.per_hour, SmtpAccount.per_day, *WARMUP_FIELDS)
                          .where(SmtpAccount.id == account_id)).first())
        if account is None:
            return 0
        hour, day, holding = counted(account_id, lease_seconds, now)
        left = room(account.per_hour, warmup.daily_cap(account, now.date()), hour + holding, day + holding)
        if domain_id is not None:
            from_domain = domain_room(domain_id, lease_seconds, now)
            if from_domain is not None:
                left = from_domain if left is None else min(left, from_domain)
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


def capped_in_words(accounts, lease_seconds, now=None, domain=None):
    """(DB thread) Why a run found every account out of permits: CAPPED, or, when a warm-up plan holds
    it back (an account's or the From domain's), each reason in words."""
    now = now or utcnow()
    domain_cap = warmup.limit(domain, now.date()) if domain is not None else None
    if domain_cap is not None:
        day, holding = domain_counted(domain, lease_seconds, now)
        if day + holding >= domain_cap:
            return (f"{domain.domain} reached its warm-up limit for today ({domain_cap:,} "
                    f"message{'' if domain_cap == 1 else 's'}); sending resumes when its allowance is back")
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


# --- When a warm-up plan lets a campaign send again -------------------------------------------------

def _sent_times(queries):
    return sorted(moment for query in queries for (moment,) in query.tuples())


def free_at(times, cap_of_day, window, now):
    """The first moment from `now` on when fewer than the day's cap of `times` (sorted sent_at) fall in
    the rolling `window` before it: the oldest needed ages out (a second after, as counted() keeps a
    message sent exactly `window` ago), or the next UTC day's larger cap begins, whichever is first."""
    moment = now
    for _ in range(3):  # now, and at most the next two UTC midnights (the window is at most a day)
        cap = cap_of_day(moment.date())
        if not cap:
            return moment
        inside = [sent for sent in times if sent >= moment - window]
        if len(inside) < cap:
            return moment
        back = inside[len(inside) - cap] + window + datetime.timedelta(seconds=1)
        midnight = datetime.datetime.combine(moment.date() + datetime.timedelta(days=1), datetime.time.min)
        if back <= midnight:
            return back
        moment = midnight
    return moment


def _account_back_at(account, now):
    day, hour = datetime.timedelta(days=1), datetime.timedelta(hours=1)
    sends = Send.select(Send.sent_at).where((Send.smtp_account == account.id) & (Send.sent_at >= now - day))
    tx = TxMessage.select(TxMessage.sent_at).where((TxMessage.smtp_account == account.id)
                                                   & (TxMessage.sent_at >= now - day))
    times = _sent_times((sends, tx))
    by_day = free_at(times, lambda on: warmup.daily_cap(account, on), day, now)
    by_hour = free_at(times, lambda on: account.per_hour, hour, now)
    return max(by_day, by_hour)


def allowance_back_at(accounts, domain, now=None):
    """(DB thread) When the campaign a warm-up plan holds back may send again: the first of its capped
    accounts to have room, and its From domain's plan too (the later of the two). A run then finds out
    for sure: an estimate too early (another campaign used the room) only means one more wait."""
    now = now or utcnow()
    moments = [_account_back_at(account, now) for account in accounts]
    back = min(moments) if moments else now
    if domain is not None and warmup.limit(domain, now.date()) is not None:
        times = _sent_times(warmup.domain_sends(domain, now - datetime.timedelta(days=1)))
        back = max(back, free_at(times, lambda on: warmup.limit(domain, on), datetime.timedelta(days=1), now))
    return back
