"""The sending engine's settings: the operator's LOFT_SEND_* (app/config.py) and internal tuning."""
import dataclasses


# Internal tuning; each can be overridden in the app config (tests use tiny delays). The knobs an
# operator sets (retry delays, per-domain limits, account rest, SMTP timeout) are LOFT_SEND_* settings
# in app/config.py.
DEFAULTS = {
    "SEND_BATCH_SIZE": 500,  # sends claimed per transaction
    "SEND_RECONNECT_DELAY": 1.0,  # first wait before reconnecting; doubles, at most 30 s
    "SEND_FLUSH_INTERVAL": 0.2,  # seconds at most between result writes (sooner when half the allowance waits)
    # Deliveries started but not yet written (in an SMTP transaction, or done and waiting for the
    # flush): what a crash can send twice, and how far sending runs ahead of a database that stopped
    # taking writes. Raised to two per connection for runs with more connections than half of this.
    "SEND_MAX_UNRECORDED": 40,
    "SEND_STATE_INTERVAL": 1.0,  # seconds between campaign-state checks (pause/cancel)
    "SEND_RUN_SECONDS": 300,  # a run hands back its worker thread after this long
    "SEND_MAX_IN_RUN_WAIT": 5.0,  # retries due sooner than this are awaited in the run; later ones reschedule
    "SEND_LEASE_SECONDS": 15,  # a run that has not renewed its lease for this long is presumed dead
    "SEND_RUNS_PER_CAMPAIGN": 0,  # runs sending one campaign at once; 0: SENDING_PROCESSES (app/config.py)
    "SEND_SHARE_INTERVAL": 5.0,  # seconds between re-reads of the limits the runs share
    # Permits a run takes at once for an account with an hourly or daily cap (app/sending/shares.py):
    # one short transaction per block; the most other runs can find held by one that dies.
    "SEND_PERMIT_BLOCK": 20,
    "SEND_EVENT_LOOP": "uvloop",  # "uvloop" (when installed) or "asyncio"
    "SEND_DB_CACHE_KB": 8000,  # SQLite page cache of the run's database thread (keeps the worker's RSS flat)
    "SEND_DB_BUSY_MS": 10000,  # how long the run's database thread waits for a lock before retrying later
}


@dataclasses.dataclass
class Settings:
    batch_size: int
    retry_delays: tuple
    domain_concurrency: int
    domain_limits: dict
    account_failure_limit: int
    account_pause_seconds: float
    smtp_timeout: float
    reconnect_delay: float
    flush_interval: float
    max_unrecorded: int
    state_interval: float
    run_seconds: float
    max_in_run_wait: float
    lease_seconds: float
    runs_per_campaign: int
    share_interval: float
    permit_block: int
    db_cache_kb: int
    db_busy_ms: int

    @property
    def max_attempts(self):
        return len(self.retry_delays) + 1

    @classmethod
    def from_config(cls, config):
        get = lambda key: config[key] if key in config else DEFAULTS[key]  # noqa: E731
        return cls(batch_size=int(get("SEND_BATCH_SIZE")), retry_delays=tuple(get("SEND_RETRY_DELAYS")),
                   domain_concurrency=int(get("SEND_DOMAIN_CONCURRENCY")),
                   domain_limits=dict(get("SEND_DOMAIN_LIMITS")),
                   account_failure_limit=int(get("SEND_ACCOUNT_FAILURE_LIMIT")),
                   account_pause_seconds=float(get("SEND_ACCOUNT_PAUSE_SECONDS")),
                   smtp_timeout=float(get("SEND_SMTP_TIMEOUT")), reconnect_delay=float(get("SEND_RECONNECT_DELAY")),
                   flush_interval=float(get("SEND_FLUSH_INTERVAL")), state_interval=float(get("SEND_STATE_INTERVAL")),
                   max_unrecorded=int(get("SEND_MAX_UNRECORDED")),
                   run_seconds=float(get("SEND_RUN_SECONDS")),
                   max_in_run_wait=float(get("SEND_MAX_IN_RUN_WAIT")),
                   lease_seconds=float(get("SEND_LEASE_SECONDS")),
                   runs_per_campaign=max(1, int(get("SEND_RUNS_PER_CAMPAIGN") or config.get("SENDING_PROCESSES") or 1)),
                   share_interval=float(get("SEND_SHARE_INTERVAL")),
                   permit_block=max(1, int(get("SEND_PERMIT_BLOCK"))),
                   db_cache_kb=int(get("SEND_DB_CACHE_KB")),
                   db_busy_ms=int(get("SEND_DB_BUSY_MS")))
