"""The engine's bookkeeping: the watcher renews the run's lease and claims and re-reads the campaign
state every second; the flusher writes outcomes to the ledger in small batches (see app/sending/engine.py).

Bookkeeping is a mixin of Run (app/sending/run.py), for the same reason as Deliveries: one run's
state, read and changed on one event loop and its database thread."""

import asyncio
import collections
import datetime
import logging
import time

from app import events
from app import usage
from app.db import add_many
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import EventType
from app.models import utcnow
from app.sending import lease
from app.sending import ledger
from app.sending import shares

log = logging.getLogger("app.sending.engine")  # one logger for the whole engine: operators filter on its name


class Bookkeeping:

    async def watcher(self):
        """Every second: renew the lease and re-read the state (pause and cancel stop the run)."""
        last_beat = time.monotonic()
        while self.stop_reason is None:
            await asyncio.sleep(self.settings.state_interval)
            try:
                held, state, shared = await self.db(self.heartbeat)
            except Exception:  # noqa: BLE001 - a busy database: try again, but never outlive the lease
                log.exception("campaign %s: renewing the run lease failed", self.campaign_id)
                if time.monotonic() - last_beat > self.settings.lease_seconds / 2:
                    self.stop("state", "lease lost")
                continue
            last_beat = time.monotonic()
            if not held:
                self.stop("state", "lease lost")
            elif state != CampaignState.SENDING:
                self.stop("state", state or "deleted")
            elif shared is not None and shares.apply_shares(self.lanes.values(), self.domains, shared):
                self.wake.set()  # a lane another run paused: the dispatcher looks again

    def heartbeat(self):
        """(DB thread) (run still ours, campaign state, what the runs share or None between re-reads).
        Extends the claims this run holds, so that only a dead run's claims expire."""
        now = utcnow()
        held = lease.renew_run(self.token, now)
        if held and self.held:
            ledger.extend_claims(self.held, now + datetime.timedelta(seconds=self.settings.lease_seconds))
        state = Campaign.select(Campaign.state).where(Campaign.id == self.campaign_id).scalar()
        shared = None
        if time.monotonic() >= self.next_share:
            self.next_share = time.monotonic() + self.settings.share_interval
            shared = shares.read_shares(self.team_id, self.campaign_id, self.settings, now)
            live, settings = shared.campaign_runs, self.settings
            if self.live_runs is not None and live < min(self.live_runs, settings.runs_per_campaign):
                self.hooks.more_runs(self.campaign_id)  # a run ended or died: another consumer may take its place
            self.live_runs = live
        return held, state, shared

    async def flusher(self):
        """Write outcomes every flush_interval, or at once when flush_size of them wait: bounded by time
        and by count. While writes fail, the gate holds new deliveries and this retries with backoff."""
        failures = 0
        while True:
            try:
                await asyncio.wait_for(self.flush_now.wait(), self.settings.flush_interval)
            except asyncio.TimeoutError:
                pass
            self.flush_now.clear()
            if await self.flush():
                failures = 0
                continue
            failures += 1
            # Give up the run (its sends stay claimed; the next run re-queues them) rather than hold
            # its connections forever; the lease stops it sooner when nothing at all can be written.
            if time.monotonic() - self.write_failing_since > max(self.settings.lease_seconds * 4, 60):
                self.stop("error", "the results of sent messages could not be written to the database")
            await asyncio.sleep(min(5.0, self.settings.flush_interval * 2 ** min(failures, 5)))

    async def flush(self):
        """Write the outcomes so far; on a database error keep them for the next try (a sent message
        whose result is lost would be sent again after the next crash recovery). While they wait,
        the gate lets no more than unrecorded_limit deliveries be unrecorded: back-pressure."""
        results = self.take_results()
        if not results:
            return True
        self.writing = len(results)
        self.flushing = True
        try:
            await self.db(self.write, results)
        except Exception as exc:  # noqa: BLE001 - e.g. "database is locked" past the busy timeout, disk full
            self.results[:0] = results
            if self.write_failing_since is None:
                self.write_failing_since = time.monotonic()
                log.warning("campaign %s: writing %s results failed (%s); will retry, and no new "
                            "delivery starts until they are written", self.campaign_id, len(results), exc)
            else:
                log.debug("campaign %s: writing results failed again: %s", self.campaign_id, exc)
            return False
        finally:
            self.writing = 0
            self.flushing = False
        if self.write_failing_since is not None:
            log.warning("campaign %s: results are written again after %.1f s; sending resumes",
                        self.campaign_id, time.monotonic() - self.write_failing_since)
            self.write_failing_since = None
        self.recorded.set()
        return True

    def write(self, results):
        """(DB thread) Record a batch of outcomes in one transaction."""
        if not results:
            return
        now = utcnow()
        settings = self.settings
        sent, temporary, bounced, failed, requeue, skipped = [], [], [], [], [], []
        buckets = {"sent": sent, "temporary": temporary, "bounced": bounced, "failed": failed,
                   "requeue": requeue, "skipped": skipped}
        for outcome in results:
            buckets[outcome.kind].append(outcome)
        deferred_rows, failed_rows = [], []
        for outcome in temporary:
            attempts = outcome.job.attempts
            if attempts >= settings.max_attempts:
                failed_rows.append((outcome.error, outcome.account_id, outcome.job.id))
            else:
                delay = settings.retry_delays[min(attempts - 1, len(settings.retry_delays) - 1)]
                deferred_rows.append((now + datetime.timedelta(seconds=delay), outcome.error,
                                      outcome.account_id, outcome.job.id))
        for outcome in failed:
            failed_rows.append((outcome.error, outcome.account_id, outcome.job.id))
        with db.atomic():
            cursor = db.cursor()
            ledger.record(cursor, sent=[(o.at, o.message_id, o.account_id, o.job.id) for o in sent],
                          deferred=deferred_rows, failed=failed_rows,
                          bounced=[(o.error, o.account_id, o.job.id) for o in bounced],
                          skipped=[(o.error, o.job.id) for o in skipped], requeued=[o.job.id for o in requeue])
            if sent:
                team_id, campaign_id, sent_type = self.team_id, self.campaign_id, EventType.SENT.value
                events.write(cursor, [(team_id, o.job.contact.id, campaign_id, sent_type, o.at,
                                       f'{{"send": {o.job.id}}}') for o in sent])
            if bounced:
                self.write_bounces(cursor, bounced, now)
            gave_up = len(failed_rows) + len(bounced)
            if sent or gave_up:
                add_many([Campaign.sent, Campaign.failed], Campaign.id, [Campaign.updated_at]).run(
                    [(len(sent), gave_up, now, self.campaign_id)], cursor)
            if sent:
                usage.count_sent(self.team_id, len(sent), now, cursor, stream="marketing",
                                 domain=self.usage_domain, zone=self.usage_zone)
                if self.capped_lanes:  # their permits are used by the same commit that counts the sends
                    shares.use_permits(self.run_id, collections.Counter(
                        o.account_id for o in sent if o.account_id in self.capped_lanes))
        self.held.difference_update(outcome.job.id for outcome in results)
        self.hooks.after_flush(self.campaign_id)  # e.g. pause on high bounce or complaint rates

    def write_bounces(self, cursor, bounced, now):
        """(DB thread) The refusals ledger.record has just written as bounced."""
        # What a refusal means (a dead address, a policy block, our own failed authentication) is
        # decided by the hook in this same transaction, so it is applied exactly when the result is.
        self.hooks.on_refusals([(o.job.id, o.code, o.error, o.at) for o in bounced])
