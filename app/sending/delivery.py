"""The engine's deliveries: each SMTP connection of a lane takes jobs, waits at the gate, builds the
message, sends it and turns the reply into an Outcome (see app/sending/engine.py for the whole run).

Deliveries is a mixin of Run (app/sending/run.py): the connections share the run's counters, its gate
and its results with the claimer and the flusher on one event loop, so they live on one object."""

import asyncio
import datetime
import logging
import ssl
import time

import aiosmtplib

from app.metrics import definitions as metrics
from app.models import utcnow
from app.senders import accounts as accounts_service
from app.senders import domains as domains_service
from app.senders import health
from app.senders import smtp_client
from app.sending import smtp as smtp_service
from app.sending.jobs import Outcome
from app.sending.lanes import limit_pause_until

log = logging.getLogger("app.sending.engine")  # one logger for the whole engine: operators filter on its name

# The replies of every campaign message arrive in Deliveries.deliver: counted there by class.
REPLY_CLASSES = {n: metrics.SMTP_REPLIES.labels(f"{n}xx") for n in (2, 3, 4, 5)}


class Deliveries:

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
        """Open (and greet, secure, log in) a connection and make conn.smtp its Session; False after a
        failure, which is counted."""
        options = lane.options
        if options.get("username") and options.get("password") is None:
            await self.pause_lane(lane, "its stored password cannot be decrypted (the encryption key changed). "
                                        "Enter the password again.", until=None)
            return False
        smtp = smtp_client.SMTP(**options)  # connects only to an address the host guard checked
        try:
            await smtp.connect()
            if smtp.last_ehlo_response is None and smtp.last_helo_response is None:
                try:
                    await smtp.ehlo()  # connect() only greets when STARTTLS or a login needs it
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
            conn.smtp = smtp_service.Session.take_over(smtp)  # its transactions, pipelined when offered
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
                    or isinstance(exc, smtp_client.HostRefused)):
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
                payload = factory.payload(job, job.contact, message_id)
            else:
                parts = factory.build_parts(job, job.contact, message_id)
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
        started = time.perf_counter()
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
        metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        reply_class = REPLY_CLASSES.get(code // 100)
        if reply_class is not None:
            reply_class.inc()
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
