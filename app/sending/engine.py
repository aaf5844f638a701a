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
import collections
import concurrent.futures
import datetime
import logging
import os
import secrets
import ssl
import time

import aiosmtplib

try:
    import uvloop
except ImportError:  # optional: the engine works on asyncio's own loop, only slower
    uvloop = None
from flask import current_app
from peewee import JOIN

from app import events
from app import usage
from app.consent.suppression import Checker
from app.content.message import MessageFactory
from app.content.sandbox import RenderError
from app.db import connection_tuning
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactStatus
from app.models import EventType
from app.models import Send
from app.models import Variant
from app.models import utcnow
from app.senders import accounts as accounts_service
from app.senders import domains as domains_service
from app.senders import health
from app.sending import conclusion
from app.sending import lease
from app.sending import ledger
from app.sending import shares
from app.sending import smtp as smtp_service
from app.sending.conclusion import RunResult
from app.sending.hooks import Hooks
from app.sending.jobs import Addressee
from app.sending.jobs import Job
from app.sending.jobs import Outcome
from app.sending.lanes import DomainGate
from app.sending.lanes import Lane
from app.sending.lanes import limit_pause_until
from app.sending.tuning import DEFAULTS  # noqa: F401 - the engine's defaults, read by tests and benchmarks
from app.sending.tuning import Settings

log = logging.getLogger(__name__)

def run_loop(coroutine, kind="uvloop"):
    """Run the engine's loop on uvloop when it is installed (about half the CPU per message of
    asyncio's own loop with aiosmtplib), else on asyncio's."""
    if kind == "uvloop" and uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


# --- The run ------------------------------------------------------------------------

class Run:
    def __init__(self, campaign, lanes, factories, checker, settings, sender, dkim_domain=None, token="",
                 run_id=None, hooks=Hooks()):
        self.campaign = campaign
        self.hooks = hooks
        self.token = token  # the run's lease on the campaign, renewed by the watcher
        self.run_id = run_id  # its SendRun row, which holds its permits
        self.dkim_domain = dkim_domain  # a SenderDomain: every message is DKIM-signed with its key
        self.campaign_id = campaign.id
        self.team_id = campaign.team_id
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
            if self.stop_reason is not None:  # stopped while claiming: hand them straight back
                for job in jobs:
                    self.release(job)
                break
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
        by id) and read what delivery needs of them; the ones that can no longer be sent are skipped."""
        with db.atomic():
            ledger.recover_in_flight(self.campaign_id)  # a dead run's expired claims come first again
            ids = ledger.claim(self.campaign_id, limit, lease_seconds=self.settings.lease_seconds)
            if not ids:
                return []
            rows = (Send.select(Send.id, Send.email, Send.attempts, Send.variant, Contact.id, Contact.team,
                                Contact.email, Contact.name, Contact.attributes, Contact.status)
                    .join(Contact, JOIN.LEFT_OUTER, on=(Send.contact == Contact.id))
                    .where(Send.id << ids).order_by(Send.id).tuples())
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
                                    self.settings.lease_seconds)
        except Exception:  # noqa: BLE001 - e.g. a locked database: nothing was granted, ask again later
            log.exception("campaign %s: taking permits for SMTP account %s failed", self.campaign_id, lane.id)
            granted = 0
        lane.permits += granted
        lane.permits_out = granted == 0
        lane.taking = None

    # -- delivering --

    async def worker(self, lane, index):
        conn = smtp_service.Connection()
        try:
            while True:
                while index >= lane.allowed and not lane.closing and self.stop_reason is None:
                    # Other runs share the account now: this connection closes and waits for its turn.
                    await conn.hang_up()
                    await asyncio.sleep(self.settings.state_interval)
                job = await lane.queue.get()
                if job is None:
                    return
                lane.busy += 1
                sent = False
                try:
                    if self.stop_reason == "state" or lane.paused:
                        # Paused or cancelled: nothing new starts. Other stops (deadline, caps) only
                        # end the dispatching; what a lane already holds is still sent.
                        self.give_back(job, lane)
                        continue
                    await self.domains.acquire(job.domain)
                    try:
                        if not await self.gate():
                            self.give_back(job, lane)
                            continue
                        self.delivering += 1  # no await since the gate: the count cannot overshoot
                        try:
                            sent = await self.deliver(lane, conn, job)
                        except Exception as exc:  # noqa: BLE001 - one odd failure must not strand the run
                            log.exception("campaign %s: delivering send %s failed", self.campaign_id, job.id)
                            self.results.append(Outcome("temporary", job, account_id=lane.id,
                                                        error=f"Unexpected error: {exc}"))
                            conn.drop()
                        finally:
                            self.delivering -= 1
                            if len(self.results) >= self.flush_size:
                                self.flush_now.set()
                    finally:
                        self.domains.release(job.domain)
                finally:
                    lane.busy -= 1
                    if not sent:
                        lane.not_sent()
                    if lane.busy == 0 and lane.queue.empty():
                        self.wake.set()
        finally:
            await conn.hang_up()

    def unrecorded(self):
        """Deliveries started whose outcome is not yet committed: what a crash now could send twice."""
        return self.delivering + len(self.results) + self.writing

    async def gate(self):
        """Wait until a delivery may start (fewer than unrecorded_limit unrecorded); False when the run
        stops meanwhile in a way that ends deliveries (paused, cancelled, lease lost, writes failing)."""
        while True:
            if self.stop_reason in ("state", "error"):
                return False
            count = self.unrecorded()
            if count < self.unrecorded_limit:
                self.most_unrecorded = max(self.most_unrecorded, count + 1)
                return True
            self.flush_now.set()
            self.recorded.clear()
            await self.recorded.wait()

    def give_back(self, job, lane):
        """A job this lane will not send: back to the dispatcher, or released when the run stops."""
        if self.stop_reason is None and lane.paused:
            self.ready.appendleft(job)
            self.wake.set()
        else:
            self.release(job)

    async def connect(self, lane, conn):
        """Open (and greet, secure, log in) conn.smtp; False after a failure, which is counted."""
        options = lane.options
        if options.get("username") and options.get("password") is None:
            await self.pause_lane(lane, "its stored password cannot be decrypted (the encryption key changed). "
                                        "Enter the password again.", until=None)
            return False
        smtp = accounts_service.SMTP(**options)  # connects only to an address the host guard checked
        try:
            await smtp.connect()
            if smtp.last_ehlo_response is None and smtp.last_helo_response is None:
                try:
                    await smtp.ehlo()  # connect() only greets when STARTTLS or a login needs it
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
            conn.smtp = smtp
            if lane.failing or not lane.ok_recorded:
                await self.reachable(lane)
            return True
        except aiosmtplib.SMTPAuthenticationError as exc:
            await self.pause_lane(lane, f"the server refused the login: {exc.code} {exc.message}", until=None)
        except aiosmtplib.SMTPResponseException as exc:
            if accounts_service.is_account_limit_reply(exc.code, exc.message):
                await self.pause_lane(lane, f"the server answered “{exc.code} {exc.message}”",
                                      until=limit_pause_until(exc.message))
            else:
                await self.unreachable(lane, f"it answered “{exc.code} {exc.message}”")
                await self.account_failure(lane, conn, f"the server answered “{exc.code} {exc.message}”")
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self.unreachable(lane, smtp_service.connection_error_in_words(exc))
            reason = f"could not connect to {options['hostname']} port {options['port']}: {exc}"
            if (smtp_service.caused_by(exc, ssl.SSLCertVerificationError)
                    or isinstance(exc, accounts_service.HostRefused)):
                # The certificate will not fix itself: stop until a person looks at it.
                await self.pause_lane(lane, reason, until=None)
            else:
                await self.account_failure(lane, conn, reason)
        if smtp.is_connected:
            smtp.close()
        return False

    async def deliver(self, lane, conn, job):
        """Send one message over conn (connecting first when needed) and record the outcome; True
        when it was sent."""
        if conn.smtp is not None and not conn.smtp.is_connected:
            conn.smtp = None
        if conn.smtp is None and not await self.connect(lane, conn):
            self.give_back(job, lane)
            if not lane.paused:
                await asyncio.sleep(min(30.0, self.settings.reconnect_delay * 2 ** max(conn.failures - 1, 0)))
            return
        factory = self.factories.get(job.variant_id) or self.factories[None]
        try:
            message_id = factory.message_id(job)
            # The factory dot-stuffs its pieces as it joins them: no pass over the finished message.
            if self.dkim_domain is None:
                payload = factory.payload(job, job.contact)
            else:
                parts = factory.build_parts(job, job.contact)
                if self.signers is not None:
                    signature = await self.loop.run_in_executor(self.signers, domains_service.signature_header,
                                                                parts.head, parts.canonical_body, self.dkim_domain)
                else:
                    signature = domains_service.signature_header(parts.head, parts.canonical_body, self.dkim_domain)
                payload = b"".join((signature, parts.payload_head, b"\r\n", parts.payload_body))
        except Exception as exc:  # noqa: BLE001 - a broken message must not stop the campaign
            log.exception("building message for send %s failed", job.id)
            self.results.append(Outcome("failed", job, error=f"The message could not be built: {exc}"))
            return
        try:
            stage, response = await smtp_service.transact(conn.smtp, self.sender, job.email, payload,
                                                          self.settings.smtp_timeout, self.loop)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError,
                asyncio.TimeoutError) as exc:
            # Dropped or silent mid-transaction: the message may or may not have arrived; retry later.
            what = str(exc) or type(exc).__name__
            self.results.append(Outcome("temporary", job, account_id=lane.id,
                                        error=f"Connection lost during delivery: {what}"))
            conn.drop()
            await self.account_failure(lane, conn, f"the connection was lost ({what})")
            return
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.results.append(Outcome("temporary", job, account_id=lane.id, error=f"SMTP error: {exc}"))
            conn.drop()
            await self.account_failure(lane, conn, str(exc))
            return
        code, text = response.code, response.message
        if stage == "done" and code == 250:
            conn.failures = 0
            self.sent += 1
            self.results.append(Outcome("sent", job, account_id=lane.id, message_id=message_id))
            return True
        error = f"{code} {text}".strip()
        if accounts_service.is_account_limit_reply(code, text):
            self.results.append(Outcome("requeue", job))
            await self.pause_lane(lane, f"the server answered “{error}”", until=limit_pause_until(text))
            await smtp_service.reset(conn, self.settings.smtp_timeout)
        elif stage == "mail":
            # The sender was refused: an account or configuration problem, not the recipient's.
            self.results.append(Outcome("requeue", job))
            await smtp_service.reset(conn, self.settings.smtp_timeout)
            await self.account_failure(lane, conn, f"the server refused the sender {self.sender}: “{error}”")
        elif code == 421:
            # "Closing the channel": try this recipient later, over a new connection.
            self.results.append(Outcome("temporary", job, account_id=lane.id, code=code, error=error))
            conn.drop()
            await self.account_failure(lane, conn, f"the server answered “{error}”")
        elif 400 <= code < 500:
            conn.failures = 0  # the server works; it is this recipient that must wait (e.g. greylisting)
            self.results.append(Outcome("temporary", job, account_id=lane.id, code=code, error=error))
            await smtp_service.reset(conn, self.settings.smtp_timeout)
        elif code >= 500:
            conn.failures = 0
            self.results.append(Outcome("bounced", job, account_id=lane.id, code=code, error=error))
            await smtp_service.reset(conn, self.settings.smtp_timeout)
        else:
            self.results.append(Outcome("temporary", job, account_id=lane.id, code=code,
                                        error=f"Unexpected reply: {error}"))
            conn.drop()

    async def account_failure(self, lane, conn, reason):
        """A connection-level failure. One connection failing SEND_ACCOUNT_FAILURE_LIMIT times in a
        row (with growing waits between its reconnects) pauses the whole account for a while."""
        conn.failures += 1
        if conn.failures >= self.settings.account_failure_limit and not lane.paused:
            until = utcnow() + datetime.timedelta(seconds=self.settings.account_pause_seconds)
            await self.pause_lane(lane, f"{conn.failures} failures in a row, the last: {reason}", until=until)

    async def unreachable(self, lane, error):
        """A connection attempt failed: record and log it when the account's state or error changes."""
        if lane.failing and lane.last_error == error:
            return
        if not lane.failing:
            log.warning("campaign %s: SMTP account %s (%s port %s) cannot be reached: %s; retrying",
                        self.campaign_id, lane.id, lane.account.host, lane.account.port, error)
        lane.failing, lane.last_error = True, error
        try:
            await self.db(health.record_failure, lane.id, error)
        except Exception:  # noqa: BLE001 - only the display suffers; the next change writes again
            log.exception("campaign %s: recording the state of SMTP account %s failed", self.campaign_id, lane.id)
            lane.last_error = ""

    async def reachable(self, lane):
        if lane.failing:
            log.warning("campaign %s: SMTP account %s (%s port %s) is reachable again",
                        self.campaign_id, lane.id, lane.account.host, lane.account.port)
        lane.failing, lane.last_error = False, ""
        try:
            await self.db(health.record_ok, lane.id)
            lane.ok_recorded = True
        except Exception:  # noqa: BLE001
            log.exception("campaign %s: recording the state of SMTP account %s failed", self.campaign_id, lane.id)

    async def pause_lane(self, lane, reason, until):
        if lane.paused:
            return
        lane.paused = True
        when = f" (until {until:%Y-%m-%d %H:%M} UTC)" if until else ""
        lane.pause_reason = reason + when
        log.warning("pausing SMTP account %s: %s", lane.id, lane.pause_reason)
        try:
            await self.db(accounts_service.pause_account, lane.id, reason[:1000], until)
        except Exception:  # noqa: BLE001 - paused for this run anyway; raising would record a second
            # outcome for the message being handled (the worker's fallback), so only log it
            log.exception("campaign %s: storing the pause of SMTP account %s failed", self.campaign_id, lane.id)
        self.wake.set()

    # -- watching and writing --

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
                (Campaign.update(sent=Campaign.sent + len(sent), failed=Campaign.failed + gave_up, updated_at=now)
                 .where(Campaign.id == self.campaign_id).execute())
            if sent:
                usage.count_sent(self.team_id, len(sent), now)
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
            # The run already here re-enqueues the campaign as needed; coming back once, shortly,
            # lets a consumer of another process join instead.
            return RunResult("busy", again=True, delay=settings.state_interval,
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
    accounts = accounts_service.active_accounts(campaign.team_id)
    if not accounts:
        reason = ("Paused by Loft: there is no active SMTP account to send through. "
                  + accounts_service.paused_in_words(campaign.team_id))
        conclusion.pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, recovered=recovered)
    shared = shares.read_shares(campaign.team_id, campaign_id, settings)
    lanes = [Lane(account, accounts_service.smtp_options(account, timeout=settings.smtp_timeout))
             for account in accounts]
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
    run = Run(campaign, lanes, factories, Checker(campaign.team_id), settings, sender=campaign.from_email,
              dkim_domain=dkim_domain, token=token, run_id=run_id, hooks=hooks)
    # From the first message on, only this run's share of what the team's live runs share.
    shares.apply_shares(run.lanes.values(), run.domains, shared)
    started = time.monotonic()
    run_loop(run.main(), current_app.config.get("SEND_EVENT_LOOP", "uvloop"))
    log.info("campaign %s: run sent %s in %.1f s (%s); at most %s of %s unrecorded at once", campaign_id, run.sent,
             time.monotonic() - started, run.stop_reason or "drained", run.most_unrecorded, run.unrecorded_limit)
    return conclusion.conclude(campaign_id, run, recovered, hooks)
