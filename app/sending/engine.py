"""The sending engine: one campaign run, many SMTP connections, the ledger as the truth.

run_campaign(campaign_id) is called by the huey task (tasks/sending.py). It
first joins the campaign's runs (lease.py: a SendRun row, renewed every second),
so up to SEND_RUNS_PER_CAMPAIGN runs, on any number of workers and boxes, send one
campaign at once; a dead run's row and claims run out after SEND_LEASE_SECONDS.
One event loop per run (uvloop when installed, else asyncio's):

  claimer     claims batches of Sends in primary-key order (ledger.claim: status
              "sending", attempts + 1, an expiry the watcher extends, one short transaction
              whose SELECT skips rows another run is claiming) so a crash can only leave
              the claimed ones ambiguous; never the whole audience in memory. Expired
              claims of a dead run are queued again first (ledger.recover_in_flight).
  dispatcher  hands each claimed Send to an SMTP account (a Lane, lanes.py) by weighted rotation,
              within the account's per-second token bucket and, for an account with
              an hourly or daily cap, only with a permit in hand (shares.py: taken in
              blocks on the database thread, exact across every run).
  lanes       per account, max_connections workers; each keeps one aiosmtplib
              connection (smtp.py) open for many messages, reconnects after a drop,
              limits parallel deliveries per recipient domain, and builds each
              message just before sending it (MessageFactory, app/content/message.py).
  flusher     writes results back in small batches (ledger.record, one transaction
              per flush): every SEND_FLUSH_INTERVAL (0.2 s) and as soon as half of
              the unrecorded allowance is waiting: sent, deferred with exponential
              backoff, failed after the last attempt, bounced (5xx), skipped. A claimed
              send moves through the run as a Job and ends as an Outcome (jobs.py).
  the gate    a connection starts a delivery only while fewer than
              SEND_MAX_UNRECORDED messages (or two per connection, if more) are
              out or delivered-but-unwritten; so a crash re-sends at most that
              many, and when results cannot be written (locked, full or read-only
              database) sending stops there and resumes once a write succeeds.
  watcher     renews the run and its claims and re-reads the campaign state every
              second: pause and cancel stop the run within about a second; claimed
              but unstarted sends go back to the queue. It also re-reads what the
              runs share (shares.py: each account's limits, held in the database).

The run is the Run class (run.py: its state, the claimer and the dispatcher), with the lanes'
deliveries in delivery.py and the watcher and flusher in bookkeeping.py; this module starts it.

When the run stops, conclusion.py reads how it ended and tells the task whether (and
when) to run again.

All database work of the run happens on one extra thread (its own
connection, a small page cache), so a slow write never stalls the SMTP
connections; a database error there is retried, never dropped. Settings:
the operator's LOFT_SEND_* in app/config.py, internal tuning in tuning.py (DEFAULTS).

Failures:
  4xx, 421, timeouts, dropped connections  -> deferred, retried after
      SEND_RETRY_DELAYS (1 min, 5 min, 15 min, 1 h, 4 h), then failed.
  5xx at RCPT or after DATA                -> bounced; what the reply means (a mailbox that does not
      exist bounces the contact, + Event "bounced") is the on_refusals hook's, in the same
      transaction: tasks/sending.py gives it app.bounces.outcomes (see hooks.py).
  a reply meaning the *account* hit its own limit (accounts.is_account_limit_reply)
      -> the account is paused, the send goes back to the queue unharmed.
  connection, TLS, login or sender failures repeated SEND_ACCOUNT_FAILURE_LIMIT
      times in a row -> the account is paused; when no account is left the
      campaign is paused with the reason in words.

Crash semantics (kill -9 at any moment): every Send is in exactly one state
in the database. Sends committed as sent are never sent again; queued and
deferred ones are sent by the other runs or the next one; the ones in "sending"
were claimed by the dead run and are queued again by ledger.recover_in_flight()
once their claim expires, and nobody is skipped. Most of those never left (claimed, waiting in the dead run's memory);
the ones that may arrive twice are those whose delivery had started and whose
result was not yet written, at most the gate's limit (Run.unrecorded_limit).
"""

import asyncio
import logging
import os
import secrets
import time

try:
    import uvloop
except ImportError:  # optional: the engine works on asyncio's own loop, only slower
    uvloop = None
from flask import current_app

from app.consent.suppression import Checker
from app.content.message import MessageFactory
from app.content.sandbox import RenderError
from app.models import Campaign
from app.models import CampaignState
from app.models import Variant
from app.senders import accounts as accounts_service
from app.senders import domains as domains_service
from app.senders import smtp_client
from app.senders import warmup
from app.sending import conclusion
from app.sending import lease
from app.sending import ledger
from app.sending import shares
from app.sending.conclusion import RunResult
from app.sending.hooks import Hooks
from app.sending.lanes import Lane
from app.sending.run import Run
from app.sending.tuning import DEFAULTS  # noqa: F401 - the engine's defaults, read by tests and benchmarks
from app.sending.tuning import Settings
from app.teams import standing

log = logging.getLogger(__name__)


def run_loop(coroutine, kind="uvloop"):
    """Run the engine's loop on uvloop when it is installed (about half the CPU per message of
    asyncio's own loop with aiosmtplib), else on asyncio's."""
    if kind == "uvloop" and uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)



# --- Entry point ----------------------------------------------------------------------

def build_factories(campaign):
    """A message factory per variant of the campaign (and one for sends without a variant)."""
    factories = {None: MessageFactory(campaign, None)}
    for variant in Variant.select().where(Variant.campaign == campaign):
        factories[variant.id] = MessageFactory(campaign, variant)
    return factories


def run_campaign(campaign_id, deadline_seconds=None, hooks=Hooks()):
    """Send what is due for one campaign, until it is done, stopped, or the deadline passes.

    Must run inside the app context. Joins the campaign's runs first (lease.join_run): while
    SEND_RUNS_PER_CAMPAIGN live runs send it, another worker (or another task for the same
    campaign) returns "busy" at once; so does a second run in a process that already sends it.
    Returns a RunResult telling the caller whether (and when) to run again.
    `hooks` (see Hooks) add what follows delivery; tasks/sending.py passes bounce handling.
    """
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None or campaign.state != CampaignState.SENDING:
        return RunResult("stopped", reason=f"the campaign is {campaign.state if campaign else 'gone'}")
    settings = Settings.from_config(current_app.config)
    if deadline_seconds is not None:
        settings.run_seconds = deadline_seconds
    with lease.first_in_process(campaign_id) as first:
        if not first:
            # The run already here re-enqueues the campaign as needed; a join task goes straight back to the
            # queue (tasks/sending.py, hand_on) so a consumer of another process joins instead.
            return RunResult("busy", again=True, delay=settings.state_interval, here=True,
                             reason="this worker process is already sending this campaign")
        token = f"{os.getpid()}-{secrets.token_hex(8)}"  # the process id tells an operator which worker runs it
        run_id = lease.join_run(campaign_id, token, settings.runs_per_campaign, settings.lease_seconds)
        if run_id is None:
            # Busy: live runs renew every second and re-enqueue themselves as needed; a dead one's
            # row runs out after `delay` seconds, when a new run can take its place.
            return RunResult("busy", again=True, reason="other workers are sending this campaign",
                             delay=lease.run_free_in(campaign_id, settings.lease_seconds) + 0.5)
        try:
            return _run_with_lease(campaign, settings, token, run_id, hooks)
        finally:
            lease.leave_run(token)


def _run_with_lease(campaign, settings, token, run_id, hooks):
    campaign_id = campaign.id
    recovered = ledger.recover_in_flight(campaign_id)
    if recovered:
        log.warning("campaign %s: %s sends were in flight when a previous run stopped; queued again",
                    campaign_id, recovered)
    if not conclusion.work_due(campaign_id, settings):
        # Only held (A/B) sends or later retries: conclude without connecting or building anything,
        # so the minute tick costs a few queries for a campaign that is waiting.
        return conclusion.conclude(campaign_id, conclusion.Idle(), recovered, hooks)
    refusal = standing.sending_refusal(campaign.team_id)
    if refusal:  # suspended by the instance administrator, or at the monthly cap: nothing leaves
        reason = f"Paused by Loft: {refusal}"
        conclusion.pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, recovered=recovered)
    accounts = accounts_service.active_accounts(campaign.team_id)
    if not accounts:
        reason = ("Paused by Loft: there is no active SMTP account to send through. "
                  + accounts_service.paused_in_words(campaign.team_id))
        conclusion.pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, recovered=recovered)
    shared = shares.read_shares(campaign.team_id, campaign_id, settings)
    try:
        factories = build_factories(campaign)
    except RenderError as exc:
        # Changed behind the publish checks (or by an older Loft): left alone, the task would fail on every
        # run and the campaign would sit in "sending" for ever.
        reason = f"Paused by Loft: the content cannot be built into a message. {exc}"
        conclusion.pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, recovered=recovered)
    if shared.campaign_runs < settings.runs_per_campaign:
        hooks.more_runs(campaign_id)  # e.g. another worker process joins in
    dkim_domain = domains_service.domain_for_sender(campaign.team_id, campaign.from_email)
    if dkim_domain is not None:
        try:
            domains_service.sign(b"From: check@" + dkim_domain.domain.encode() + b"\r\n\r\n", dkim_domain)
        except domains_service.DomainError as exc:
            reason = f"Paused by Loft: messages cannot be DKIM-signed. {exc}"
            conclusion.pause_campaign(campaign, reason, hooks)
            return RunResult("paused", reason=reason, recovered=recovered)
    # A warm-up plan of the From domain caps every account's lane (shares.take_permits holds both).
    domain_plan = dkim_domain is not None and warmup.limit(dkim_domain) is not None
    lanes = [Lane(account, smtp_client.smtp_options(account, timeout=settings.smtp_timeout), domain_plan)
             for account in accounts]
    run = Run(campaign, lanes, factories, Checker(campaign.team_id), settings, sender=campaign.from_email,
              dkim_domain=dkim_domain, token=token, run_id=run_id, hooks=hooks)
    # From the first message on, only this run's share of what the team's live runs share.
    shares.apply_shares(run.lanes.values(), run.domains, shared)
    started = time.monotonic()
    run_loop(run.main(), current_app.config.get("SEND_EVENT_LOOP", "uvloop"))
    standing.allowance(campaign.team_id)  # what this run sent may cross 80 % or 100 % of a cap: alert now
    log.info("campaign %s: run sent %s in %.1f s (%s); at most %s of %s unrecorded at once", campaign_id, run.sent,
             time.monotonic() - started, run.stop_reason or "drained", run.most_unrecorded, run.unrecorded_limit)
    return conclusion.conclude(campaign_id, run, recovered, hooks)
