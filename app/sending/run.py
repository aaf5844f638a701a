"""One campaign run: its state, the claimer and the dispatcher (app/sending/engine.py describes the
whole run; delivery.py holds the SMTP connections, bookkeeping.py the lease and the writes)."""

import asyncio
import collections
import concurrent.futures
import logging
import os
import time

from flask import current_app
from peewee import JOIN

from app import usage
from app.db import IdList
from app.db import connection_tuning
from app.db import db
from app.models import Contact
from app.models import ContactStatus
from app.models import Send
from app.models import utcnow
from app.senders import accounts as accounts_service
from app.senders import warmup
from app.sending import ledger
from app.sending import shares
from app.sending.bookkeeping import Bookkeeping
from app.sending.delivery import Deliveries
from app.sending.hooks import Hooks
from app.sending.jobs import Addressee
from app.sending.jobs import Job
from app.sending.jobs import Outcome
from app.sending.lanes import DomainGate
from app.teams import standing

log = logging.getLogger("app.sending.engine")  # one logger for the whole engine: operators filter on its name


class Run(Deliveries, Bookkeeping):
    def __init__(self, campaign, lanes, factories, checker, settings, sender, dkim_domain=None, token="",
                 run_id=None, hooks=Hooks()):
        self.campaign = campaign
        self.hooks = hooks
        self.token = token  # the run's lease on the campaign, renewed by the watcher
        self.run_id = run_id  # its SendRun row, which holds its permits
        self.dkim_domain = dkim_domain  # a SenderDomain: every message is DKIM-signed with its key
        # The From domain's warm-up plan holds every lane's permits too (shares.take_permits), when it has one.
        self.plan_domain_id = dkim_domain.id if dkim_domain is not None and warmup.limit(dkim_domain) else None
        self.campaign_id = campaign.id
        self.team_id = campaign.team_id
        # What each flush's count of sent messages is filed under (app/usage.py): the team's month, the From domain.
        self.usage_zone = usage.zone_of(campaign.team_id)
        self.usage_domain = usage.domain_of(campaign.from_email)
        self.lanes = {lane.id: lane for lane in lanes}
        self.capped_lanes = {lane.id for lane in lanes if lane.capped_account}  # they send with permits
        self.rotation = accounts_service.Rotation([lane.account for lane in lanes])
        self.factories = factories
        self.checker = checker
        self.app = current_app._get_current_object()  # pushed onto the database thread, where hooks run too
        self.settings = settings
        self.sender = sender
        self.ready = collections.deque()
        self.results = []
        self.stop_reason = None  # "state", "deadline", "accounts", "capped", "error", "finished"
        self.stop_detail = ""
        self.exhausted = False
        self.in_hand = 0  # a job the dispatcher holds while it picks an account
        self.sent = 0
        self.refusal = None  # the standing gate's words, once it refused a batch (app/teams/standing.py)
        self.cap_wait = False  # the monthly cap leaves no room beyond what this run holds: wait for its results
        connections = sum(lane.connections for lane in lanes)
        self.domains = DomainGate(settings.domain_concurrency, settings.domain_limits, connections)
        # The gate (see the module docstring): deliveries started and not yet written, at most.
        self.unrecorded_limit = max(1, settings.max_unrecorded, 2 * connections)
        self.flush_size = max(1, self.unrecorded_limit // 2)  # write this many at once, not waiting for the timer
        self.delivering = 0  # deliveries started whose outcome is not yet in self.results
        self.writing = 0  # outcomes in the write on the database thread right now
        self.flushing = False  # a flush is awaiting the database thread (never cancel it then)
        self.write_failing_since = None  # monotonic time of the first failed write of a failing streak
        self.most_unrecorded = 0  # the highest count the gate saw (the crash exposure of this run)
        # Send ids claimed and not yet written (read and changed on the database thread only): the
        # watcher extends their claims, so only a dead run's claims ever expire.
        self.held = set()
        self.next_share = 0.0  # monotonic time of the next re-read of what the runs share
        self.live_runs = None  # the campaign's live runs at the last re-read
        self.deadline = time.monotonic() + settings.run_seconds
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="loft-send-db")
        # RSA signing releases the GIL: a run alone on the box signs on two threads beside the event
        # loop, so both cores sign. With a run per core already, those threads only add hand-overs of
        # the GIL: signing on the loop itself measured 30 % faster (docs/benchmarks.md).
        self.signers = (concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="loft-dkim")
                        if dkim_domain is not None and settings.runs_per_campaign < (os.cpu_count() or 1) else None)

    # -- plumbing --

    async def db(self, function, *args):
        return await self.loop.run_in_executor(self.executor, function, *args)

    def stop(self, reason, detail=""):
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail
        self.wake.set()
        self.room.set()
        self.recorded.set()

    async def main(self):
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()  # ready jobs arrived, a lane went idle, or the run is stopping
        self.room = asyncio.Event()  # the ready queue has room for another batch
        self.recorded = asyncio.Event()  # a write succeeded (the gate may open) or the run is stopping
        self.flush_now = asyncio.Event()  # enough outcomes wait: write them without waiting for the timer
        watcher = flusher = None
        try:
            await self.db(self.open_connection)
            for lane in self.lanes.values():
                lane.workers = [asyncio.ensure_future(self.worker(lane, index)) for index in range(lane.connections)]
            claimer = asyncio.ensure_future(self.claimer())
            watcher, flusher = asyncio.ensure_future(self.watcher()), asyncio.ensure_future(self.flusher())
            await self.dispatcher()
            await asyncio.gather(*(lane.taking for lane in self.lanes.values() if lane.taking is not None))
            for lane in self.lanes.values():
                lane.closing = True
                for _ in lane.workers:
                    await lane.queue.put(None)
            await asyncio.gather(*(w for lane in self.lanes.values() for w in lane.workers))
            # Never cancel the claimer: a claim cancelled mid-transaction would strand its sends.
            self.stop("finished")
            await claimer
            watcher.cancel()
            # Nor a write in progress: cancelled before the database thread started it, its results
            # would be lost and their sends left "sending" (sent again after the next recovery).
            while self.flushing:
                await asyncio.sleep(0.005)
            flusher.cancel()
            await asyncio.gather(watcher, flusher, return_exceptions=True)
            # Whatever was claimed but never started goes back to the queue.
            while self.ready:
                self.release(self.ready.popleft())
            for attempt in range(10):
                if await self.flush():
                    break
                await asyncio.sleep(min(5.0, 0.5 * 2 ** attempt))
        finally:
            for helper in (watcher, flusher):  # after an unexpected error: not past the executor's end
                if helper is not None and not helper.done():
                    helper.cancel()
            await self.db(db.close)
            self.executor.shutdown(wait=True)
            if self.signers is not None:
                self.signers.shutdown(wait=True)

    def open_connection(self):
        """(DB thread) A small page cache for this thread's connection: the run touches every
        page of the ledger once, so a large cache would only grow the worker's memory. The thread keeps
        the app context for the whole run (never popped: its teardown would close the connection)."""
        self.app.app_context().push()
        connection_tuning(self.settings.db_cache_kb, self.settings.db_busy_ms)

    def release(self, job):
        """A claimed job this run will not send: back to the queue, its attempt not counted."""
        if self.stop_detail == "lease lost":
            return  # another run took the campaign over and queued our claims again itself
        self.results.append(Outcome("requeue", job))

    def take_results(self):
        results, self.results = self.results, []
        return results

    # -- claiming --

    async def claimer(self):
        low_water = max(self.settings.batch_size // 2, 1)
        failures = 0
        while self.stop_reason is None:
            if len(self.ready) >= low_water:
                self.room.clear()
                await self.room.wait()
                continue
            if time.monotonic() >= self.deadline:
                self.stop("deadline")
                break
            try:
                jobs = await self.db(self.claim, self.settings.batch_size)
                failures = 0
            except Exception:  # noqa: BLE001 - the claim rolled back; nothing was taken
                failures += 1
                log.exception("campaign %s: claiming sends failed (%s in a row)", self.campaign_id, failures)
                if failures >= 10:
                    self.stop("error", "the database kept refusing to hand out sends")
                    break
                await asyncio.sleep(min(5.0, 0.2 * 2 ** failures))
                continue
            if self.refusal is not None:
                self.stop("refused", self.refusal)
                break
            if self.stop_reason is not None:  # stopped while claiming: hand them straight back
                for job in jobs:
                    self.release(job)
                break
            if not jobs and self.cap_wait:  # what this run holds may use the rest of the cap: see first
                self.flush_now.set()
                await asyncio.sleep(min(self.settings.flush_interval, 0.05))
                continue
            if jobs:
                self.ready.extend(jobs)
                self.wake.set()
                continue
            # Nothing claimable now. Sends still in the lanes may yet come back as retries,
            # so wait until they are done and written before deciding the run is over.
            if self.ready or self.in_hand or self.results or not self.idle():
                if self.idle() and not self.ready and not self.in_hand:
                    self.flush_now.set()  # nothing more is coming: write the last outcomes now
                await asyncio.sleep(min(self.settings.flush_interval, 0.05))
                continue
            due = await self.db(ledger.next_due, self.campaign_id)
            if due is not None:
                wait = max(0.0, (due - utcnow()).total_seconds())
                if wait <= min(self.settings.max_in_run_wait, self.deadline - time.monotonic()):
                    await asyncio.sleep(wait + 0.001)
                    continue
            self.exhausted = True
            self.wake.set()
            break

    def claim(self, limit):
        """(DB thread) Claim up to `limit` sends (ledger.claim: due retries first, then queued ones,
        by id) and read what delivery needs of them; the ones that can no longer be sent are skipped.

        Before each batch the standing gate is asked: a suspended team, or one at its monthly cap, gets
        nothing more (self.refusal: the run stops and the campaign pauses with the reason). Under a cap a
        batch is no larger than the room left less what this run already holds; other runs sending for the
        team at the same moment can each take their own batch, so a team may go past its cap by at most one
        batch per live run."""
        self.refusal, room = standing.allowance(self.team_id)
        if self.refusal is not None:
            return []
        self.cap_wait = False
        if room is not None:
            limit = min(limit, room - len(self.held))
            if limit <= 0:
                self.cap_wait = True
                return []
        with db.atomic():
            ledger.recover_in_flight(self.campaign_id)  # a dead run's expired claims come first again
            ids = ledger.claim(self.campaign_id, limit, lease_seconds=self.settings.lease_seconds)
            if not ids:
                return []
            rows = (Send.select(Send.id, Send.email, Send.attempts, Send.variant, Contact.id, Contact.team,
                                Contact.email, Contact.name, Contact.attributes, Contact.status)
                    .join(Contact, JOIN.LEFT_OUTER, on=(Send.contact == Contact.id))
                    .where(Send.id << IdList(ids)).order_by(Send.id).tuples())
            jobs, skipped = [], []
            campaign_id = self.campaign_id
            for send_id, email, attempts, variant_id, contact_id, *fields in rows:
                if contact_id is None:
                    skipped.append(("The contact was deleted after the campaign was published.", send_id))
                elif fields[-1] != ContactStatus.ACTIVE:
                    skipped.append((f"The contact is {fields[-1]} (changed after publishing).", send_id))
                elif self.checker(email):
                    skipped.append(("The address is on the suppression list.", send_id))
                else:
                    jobs.append(Job(send_id, campaign_id, email, attempts, variant_id,
                                    Addressee(contact_id, *fields)))
            ledger.skip_claimed(skipped)
        self.held.update(job.id for job in jobs)
        return jobs

    # -- dispatching --

    async def next_job(self):
        while True:
            if self.stop_reason is not None:
                return None
            if self.ready:
                job = self.ready.popleft()
                if len(self.ready) < max(self.settings.batch_size // 2, 1):
                    self.room.set()
                return job
            if self.exhausted and self.idle():
                return None
            self.wake.clear()
            await self.wake.wait()

    def idle(self):
        """No job anywhere in the lanes (one that is given back would return to `ready`)."""
        return all(lane.queue.empty() and lane.busy == 0 for lane in self.lanes.values())

    async def dispatcher(self):
        while True:
            job = await self.next_job()
            if job is None:
                return
            self.in_hand = 1
            lane = await self.pick_lane()
            if lane is None:
                self.in_hand = 0
                self.release(job)
                return
            lane.take()
            await lane.queue.put(job)
            self.in_hand = 0

    async def pick_lane(self):
        while self.stop_reason is None:
            live = [lane for lane in self.lanes.values() if not lane.paused]
            if not live:
                reasons = "; ".join(f"“{lane.account.name}”: {lane.pause_reason}" for lane in self.lanes.values())
                self.stop("accounts", reasons)
                return None
            if self.capped_lanes:
                for lane in live:
                    if lane.wants_permits(self.settings.permit_block):
                        lane.taking = asyncio.ensure_future(self.take_permits(lane))
            usage = {lane.id: lane.usage() for lane in self.lanes.values()}
            account = self.rotation.pick(usage)
            if account is not None:
                return self.lanes[account.id]
            if all(lane.capped() for lane in live):
                self.stop("capped")
                return None
            # Wait for a token of a lane that may send, or for permits being taken, whichever comes first.
            tokens = [lane.seconds_to_token() for lane in live if not lane.needs_permit()]
            takes = [lane.taking for lane in live if lane.taking is not None]
            if takes:
                await asyncio.wait(takes, timeout=min(tokens) if tokens else None)
            else:
                await asyncio.sleep(min(tokens) if tokens else self.settings.flush_interval)
        return None

    async def take_permits(self, lane):
        """More permits for a capped lane, taken on the database thread; a refusal marks the lane
        out of permits until the next re-read of the shares, so it asks again then."""
        try:
            granted = await self.db(shares.take_permits, self.run_id, lane.id, self.settings.permit_block,
                                    self.settings.lease_seconds, None, self.plan_domain_id)
        except Exception:  # noqa: BLE001 - e.g. a locked database: nothing was granted, ask again later
            log.exception("campaign %s: taking permits for SMTP account %s failed", self.campaign_id, lane.id)
            granted = 0
        lane.permits += granted
        lane.permits_out = granted == 0
        lane.taking = None
