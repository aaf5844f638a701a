"""The SMTP accounts and recipient domains of one engine run: who may send now, and how many at once.

A Lane is one account with its token bucket and, for an account with an hourly or daily cap, the
permits this run holds (app/sending/shares.py); a DomainGate bounds the deliveries in progress per
recipient domain; limit_pause_until says how long an account that hit its own limit rests. When
several runs send for a team at once, each Lane and DomainGate holds this run's share (share(runs),
set by the engine from the live runs in the database), so the account's limits hold for all the runs
together.
"""
import asyncio
import collections
import datetime
import time

from app.models import utcnow
from app.senders import warmup


def limit_pause_until(message, now=None):
    """How long an account that hit its own limit rests: to tomorrow for a daily cap, else an hour."""
    now = now or utcnow()
    text = (message or "").lower()
    if "daily" in text or "day" in text or "24 hour" in text:
        return now + datetime.timedelta(hours=24)
    return now + datetime.timedelta(hours=1)


class Lane:
    """One SMTP account in this run: its connections, its rate, its permits, its failures."""

    def __init__(self, account, options, domain_plan=False):
        self.account = account
        self.id = account.id
        self.options = options
        # An account marked for transactional mail reaches a campaign only when it is the team's only account
        # (accounts.active_accounts); its transactional worker then keeps a connection of its own
        # (app/transactional/outbound.py), so the campaign leaves one of the account's connections to it.
        reserved = 1 if account.transactional and account.max_connections > 1 else 0
        self.connections = max(1, account.max_connections - reserved)
        self.allowed = self.connections  # this run's share of the connections (share())
        self.closing = False  # the run is ending: every worker takes its stop signal
        self.per_second = account.per_second or 0  # this run's share of the rate
        self.queue = asyncio.Queue(maxsize=self.connections * 2)
        # An account with an hourly or daily cap (a warm-up's included) sends only with a permit in
        # hand: taken from the database in blocks, one spent per message started, given back when it
        # was not sent. So does every account of a run whose From domain has a warm-up plan
        # (`domain_plan`): the permits then hold the domain's allowance as well.
        self.capped_account = bool(account.per_hour or warmup.daily_cap(account) or domain_plan)
        self.permits = 0
        self.permits_out = False  # the last take was refused: the caps are reached for now
        self.taking = None  # the take in progress on the database thread (a future), if any
        # Token bucket: refills at per_second, holds at most a tenth of a second's worth (or one
        # token), so no one-second window ever sees more than per_second plus that small burst.
        self.burst = max(1.0, self.per_second / 10)
        self.tokens = self.burst
        self.refilled = time.monotonic()
        self.paused = False
        self.pause_reason = ""
        self.workers = []
        self.busy = 0  # jobs its workers hold right now
        # Reachability as stored (app/senders/health.py); written only when it changes, and "ok"
        # once per run, so a dead host costs one write however often it is retried.
        self.failing = account.connection_state == "failing"
        self.last_error = account.last_error if self.failing else ""
        self.ok_recorded = False

    def share(self, runs):
        """This run is one of `runs` sending through the account: it keeps its part of the
        connections (at least one) and of the per-second rate."""
        runs = max(1, runs)
        self.allowed = max(1, self.connections // runs)
        if self.account.per_second:
            self.usage()  # refill at the old rate up to now
            self.per_second = self.account.per_second / runs
            self.burst = max(1.0, self.per_second / 10)
            self.tokens = min(self.tokens, self.burst)

    def usage(self):
        """The `used` mapping of accounts.has_capacity()."""
        per_second = self.per_second
        second = 0
        if per_second:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * per_second)
            self.refilled = now
            second = 0 if self.tokens >= 1 else self.account.per_second
        # No permit in hand: as full as its caps for has_capacity, and its connections too, since a
        # warm-up's cap is not a field has_capacity reads.
        full = self.needs_permit()
        return {"second": second, "hour": self.account.per_hour if full else 0,
                "day": self.account.per_day if full else 0,
                "connections": self.connections if self.paused or full else 0}

    def needs_permit(self):
        return self.capped_account and self.permits <= 0

    def wants_permits(self, block):
        """Time to take more: fewer than half a block in hand, no take under way, none refused."""
        return (self.capped_account and self.taking is None and not self.permits_out
                and self.permits <= block // 2)

    def capped(self):
        """Out of hourly or daily allowance: no permit in hand and the last take was refused."""
        return self.needs_permit() and self.permits_out and self.taking is None

    def take(self):
        if self.per_second:
            self.tokens -= 1
        if self.capped_account:
            self.permits -= 1

    def not_sent(self):
        """A message that took a permit was not sent after all: the permit is this run's again."""
        if self.capped_account:
            self.permits += 1

    def seconds_to_token(self):
        per_second = self.per_second
        return max(0.001, (1 - self.tokens) / per_second) if per_second else 0.001


class DomainGate:
    """At most N deliveries in progress per recipient domain (SEND_DOMAIN_CONCURRENCY, with
    per-domain overrides). Keeps state only for domains with a delivery in progress, so a
    million distinct domains cost nothing, and skips domains whose limit cannot be reached
    with the connections this run has."""

    def __init__(self, default, limits, connections):
        self.default = max(1, int(default))
        self.limits = {domain: max(1, int(limit)) for domain, limit in limits.items()}
        self.connections = connections
        self.runs = 1  # live runs of the team: each keeps its share of every domain's limit
        self.active = {}  # domain -> [deliveries in progress, waiting futures]

    def limit(self, domain):
        return max(1, self.limits.get(domain, self.default) // self.runs)

    async def acquire(self, domain):
        limit = self.limit(domain)
        if limit >= self.connections:
            return
        while True:
            entry = self.active.get(domain)
            if entry is None:
                self.active[domain] = [1, collections.deque()]
                return
            if entry[0] < limit:
                entry[0] += 1
                return
            waiter = asyncio.get_running_loop().create_future()
            entry[1].append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in entry[1]:
                    entry[1].remove(waiter)
                raise

    def release(self, domain):
        entry = self.active.get(domain)
        if entry is None:  # acquired while the limit was out of reach (the share may change since)
            return
        entry[0] -= 1
        while entry[1]:
            waiter = entry[1].popleft()
            if not waiter.done():
                waiter.set_result(None)  # it looks again; the entry stays while it does
                return
        if entry[0] == 0:
            del self.active[domain]
