"""Every Loft setting, read from LOFT_* environment variables.

python-dotenv loads `.env` from the project root first, so a VPS keeps its
settings in one file (LOFT_DOTENV names another file, or 0 for none: the test
suite sets 0, so a developer's .env never changes what the tests see).
`.env.example` documents each setting below; a test fails when one is missing there.
"""
import os
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent


def env_file():
    """The settings file to load: LOFT_DOTENV when set (0/off: none), else .env in the project root."""
    choice = os.environ.get("LOFT_DOTENV", "").strip()
    if choice.lower() in ("0", "off", "false", "no", "none"):
        return None
    path = Path(choice) if choice else ROOT / ".env"
    return path if path.is_absolute() else ROOT / path


ENV_FILE = env_file()
if ENV_FILE is not None:
    # Variables already in the environment win over the file (python-dotenv's default).
    load_dotenv(ENV_FILE)


def _str(name, default):
    return os.environ.get(name, default)


def _int(name, default):
    return int(os.environ.get(name, default))


def _bool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def _ints(name, default):
    """A comma-separated list of whole numbers, e.g. "60,300,900"."""
    text = os.environ.get(name, default)
    return tuple(int(part) for part in text.split(",") if part.strip())


def _limits(name, default):
    """Per-domain numbers as "gmail.com=5,yahoo.com=5"."""
    pairs = (part.split("=", 1) for part in os.environ.get(name, default).split(",") if "=" in part)
    return {domain.strip().lower(): int(number) for domain, number in pairs}


def _path(name, default):
    """A filesystem path; relative ones are taken from the project root."""
    value = Path(os.environ.get(name, default))
    return str(value if value.is_absolute() else ROOT / value)


def _sqlite_url(name, default):
    url = os.environ.get(name, default)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str(ROOT / url[len(prefix):])
    return url


class Config:
    # Signs sessions, CSRF tokens and email links; `make run` writes a random one into .env.
    SECRET_KEY = _str("LOFT_SECRET_KEY", "")
    # Encrypts stored SMTP passwords and TOTP secrets; derived from LOFT_SECRET_KEY when empty.
    ENCRYPTION_KEY = _str("LOFT_ENCRYPTION_KEY", "")
    # peewee database URL: sqlite:///var/loft.db by default, postgresql://user:pw@host/db to scale up.
    DATABASE_URL = _sqlite_url("LOFT_DATABASE_URL", "sqlite:///var/loft.db")
    # The huey task queue's own SQLite file (never the main database).
    HUEY_PATH = _path("LOFT_HUEY_PATH", "var/huey.db")
    # The task queue on a Redis server (redis://host:6379/0) instead of the SQLite file above, so workers on
    # several boxes share one queue (docs/scaling.md). LOFT_REDIS_URL, its older name, is still read.
    QUEUE_URL = _str("LOFT_QUEUE_URL", "") or _str("LOFT_REDIS_URL", "")
    # Transactional email's own queue file (tasks/__init__.py, `tx_huey`), so a receipt never waits behind a
    # campaign; by default huey-tx.db beside HUEY_PATH. With QUEUE_URL it is the same Redis, queue "loft-tx".
    TX_HUEY_PATH = (_path("LOFT_TX_HUEY_PATH", "") if _str("LOFT_TX_HUEY_PATH", "").strip()
                    else str(Path(HUEY_PATH).with_name(Path(HUEY_PATH).stem + "-tx.db")))
    # Each consumer process writes a heartbeat this often (seconds); when none of the main queue's has been seen
    # for LOFT_WORKER_STALE_SECONDS, every page says sending and imports are paused and /health is degraded
    # (docs/operations.md).
    WORKER_HEARTBEAT_SECONDS = float(_str("LOFT_WORKER_HEARTBEAT_SECONDS", "10"))
    WORKER_STALE_SECONDS = float(_str("LOFT_WORKER_STALE_SECONDS", "60"))
    # Public address of this instance, used in links inside emails.
    BASE_URL = _str("LOFT_BASE_URL", "http://127.0.0.1:8000")
    # Set when Loft is served over HTTPS (behind a TLS proxy): cookies become Secure.
    HTTPS = _bool("LOFT_HTTPS", False)
    # Reverse proxies in front of Loft (1 for one Caddy or nginx): their X-Forwarded-For and -Proto are
    # trusted, so throttles, sign-up limits and tracking see the visitor's address. 0 = none (never trust them).
    PROXIES = _int("LOFT_PROXIES", 0)
    # Largest request body, in KB, on every route except file uploads: a bigger one is refused (413) before
    # it is read. Campaign and template editors post at most a few hundred KB.
    MAX_BODY_KB = _int("LOFT_MAX_BODY_KB", 4096)
    # Largest file upload (contact CSV imports), in MB. Only the upload routes accept more than MAX_BODY_KB.
    MAX_UPLOAD_MB = _int("LOFT_MAX_UPLOAD_MB", 512)
    # Requests each API key may make per minute (a fixed window counted in Redis with LOFT_QUEUE_URL, else in
    # the database, so the limit holds across every web process); past it the API answers 429 with Retry-After.
    API_RATE_PER_MINUTE = _int("LOFT_API_RATE_PER_MINUTE", 600)
    # Unknown or revoked API keys one client address may present per minute; past it that address gets 429
    # before its key is even looked up, so keys cannot be guessed at speed.
    API_AUTH_FAILURES_PER_MINUTE = _int("LOFT_API_AUTH_FAILURES_PER_MINUTE", 30)
    # Where the built-in mail catcher listens; a fresh install sends its mail there.
    CATCHER_HOST = _str("LOFT_CATCHER_HOST", "127.0.0.1")
    CATCHER_PORT = _int("LOFT_CATCHER_PORT", 1025)
    # Where spamd listens for the campaign builder's SpamAssassin score (host:port; blank: no check). The stored
    # instance setting (Admin > Settings) wins over it; docs/operations.md says how to run spamd.
    SPAMD_ADDRESS = _str("LOFT_SPAMD_ADDRESS", "127.0.0.1:783")
    # SpamAssassin checks per team and hour (each costs spamd a second or so of CPU).
    SPAM_CHECKS_PER_HOUR = _int("LOFT_SPAM_CHECKS_PER_HOUR", 60)
    # Failed sign-ins allowed per address (and 4x that per IP) within the window before sign-in is refused.
    LOGIN_MAX_FAILURES = _int("LOFT_LOGIN_MAX_FAILURES", 5)
    # The sign-in throttle window, in seconds.
    LOGIN_THROTTLE_SECONDS = _int("LOFT_LOGIN_THROTTLE_SECONDS", 900)
    # How long a password-reset link stays valid, in seconds.
    PASSWORD_RESET_SECONDS = _int("LOFT_PASSWORD_RESET_SECONDS", 3600)
    # How long a team invitation stays valid, in days.
    INVITE_DAYS = _int("LOFT_INVITE_DAYS", 7)
    # Minimum level of the JSON log lines: DEBUG, INFO, WARNING or ERROR.
    LOG_LEVEL = _str("LOFT_LOG_LEVEL", "INFO")
    # Tests only: a file holding an ISO time that app.clock.now() reads instead of the real clock, so a test moves
    # time for the web app and a real huey consumer alike. Refused unless TESTING (or LOFT_TESTING=1 for the
    # consumer a test starts): app/clock.py.
    CLOCK_FILE = _str("LOFT_CLOCK_FILE", "")
    # Check the certificates of teams' SMTP servers and bounce mailboxes (IMAP); off only for a test server with a self-signed one.
    SMTP_VALIDATE_CERTS = _bool("LOFT_SMTP_VALIDATE_CERTS", True)
    # DNS server for sender-domain checks as host:port (e.g. 127.0.0.1:5353); empty = the system resolver.
    DNS_NAMESERVER = _str("LOFT_DNS_NAMESERVER", "")
    # Sign-up forms look the address's domain up in DNS (MX or A, no null MX) and refuse one that takes no mail;
    # off, they still refuse bad syntax and disposable addresses and ask about typos (app/consent/forms.py).
    SIGNUP_CHECK_DOMAINS = _bool("LOFT_SIGNUP_CHECK_DOMAINS", True)
    # Address validation (app/deliverability/validation.py): domains to treat as disposable besides the
    # disposable-email-domains package's list, comma-separated.
    DISPOSABLE_DOMAINS = _str("LOFT_DISPOSABLE_DOMAINS", "")
    # Domain health (app/deliverability/gate.py): a sender domain whose DNS would get mail rejected pauses the
    # campaigns sending from it and refuses launches; a check is reused this many minutes unless forced.
    DOMAIN_HEALTH_GATE = _bool("LOFT_DOMAIN_HEALTH_GATE", True)
    DOMAIN_HEALTH_CACHE_MINUTES = _int("LOFT_DOMAIN_HEALTH_CACHE_MINUTES", 10)
    # Where uploaded CSV files for contact imports (and their rejected rows) are kept.
    IMPORT_DIR = _path("LOFT_IMPORT_DIR", "var/imports")
    # Where images uploaded to the teams' media libraries are kept (served at /m/<key>.<ext>).
    MEDIA_DIR = _path("LOFT_MEDIA_DIR", "var/media")
    # Largest image a media library accepts, in MB (before it is resized for email).
    MEDIA_MAX_MB = _int("LOFT_MEDIA_MAX_MB", 10)
    # Soft bounces (mailbox full, ...) that stop mail to an address: this many within SOFT_BOUNCE_DAYS days.
    SOFT_BOUNCE_LIMIT = _int("LOFT_SOFT_BOUNCE_LIMIT", 3)
    SOFT_BOUNCE_DAYS = _int("LOFT_SOFT_BOUNCE_DAYS", 30)
    # Sending engine: seconds before the 2nd, 3rd, ... attempt of a temporary failure (then it is failed).
    SEND_RETRY_DELAYS = _ints("LOFT_SEND_RETRY_DELAYS", "60,300,900,3600,14400")
    # Parallel deliveries per recipient domain, and per-domain exceptions ("gmail.com=5,yahoo.com=5").
    SEND_DOMAIN_CONCURRENCY = _int("LOFT_SEND_DOMAIN_CONCURRENCY", 10)
    SEND_DOMAIN_LIMITS = _limits("LOFT_SEND_DOMAIN_LIMITS", "")
    # Connection-level failures in a row before an SMTP account rests, and for how many seconds.
    SEND_ACCOUNT_FAILURE_LIMIT = _int("LOFT_SEND_ACCOUNT_FAILURE_LIMIT", 10)
    SEND_ACCOUNT_PAUSE_SECONDS = _int("LOFT_SEND_ACCOUNT_PAUSE_SECONDS", 900)
    # Seconds to wait for each SMTP reply.
    SEND_SMTP_TIMEOUT = _int("LOFT_SEND_SMTP_TIMEOUT", 60)
    # Transactional email: the most bytes of attachments one message may carry (decoded), and the seconds
    # before the 2nd, 3rd, ... attempt after a temporary SMTP failure (then the message has failed).
    TX_MAX_BYTES = _int("LOFT_TX_MAX_BYTES", 2_500_000)
    TX_RETRY_DELAYS = _ints("LOFT_TX_RETRY_DELAYS", "5,30,120,600,1800")
    # Whether a transactional message is tracked when it does not say (track_opens / track_clicks, or the
    # X-Loft-Track header over SMTP). Off: a receipt or a password reset is mail the recipient needs, not
    # marketing to measure, so it carries no pixel and no rewritten links unless the sender asks.
    TX_TRACK_OPENS = _bool("LOFT_TX_TRACK_OPENS", False)
    TX_TRACK_CLICKS = _bool("LOFT_TX_TRACK_CLICKS", False)
    # Seconds the transactional worker keeps an idle SMTP connection open for the next message (0: one
    # connection per message), and how long a message waits before it looks again at an account that is
    # paused or at its hourly or daily cap.
    TX_CONNECTION_IDLE = _int("LOFT_TX_CONNECTION_IDLE", 10)
    TX_WAIT_SECONDS = _int("LOFT_TX_WAIT_SECONDS", 60)
    # SMTP submission (the Procfile's `submission`, app/submission/): where it listens; its TLS certificate and
    # key as PEM files (empty: a self-signed pair made once under var/submission-tls/); the largest message in
    # bytes (the transactional stream's own limit from TX_MAX_BYTES applies too), the recipients one message
    # may have and the connections open at once (more are told 421). LOOPBACK_PLAIN lets a client on this
    # machine sign in without STARTTLS; turn it off when a proxy on this machine forwards outside clients.
    SUBMISSION_BIND = _str("LOFT_SUBMISSION_BIND", "127.0.0.1")
    SUBMISSION_PORT = _int("LOFT_SUBMISSION_PORT", 1587)
    SUBMISSION_CERT = _path("LOFT_SUBMISSION_CERT", "") if _str("LOFT_SUBMISSION_CERT", "").strip() else ""
    SUBMISSION_KEY = _path("LOFT_SUBMISSION_KEY", "") if _str("LOFT_SUBMISSION_KEY", "").strip() else ""
    SUBMISSION_MAX_BYTES = _int("LOFT_SUBMISSION_MAX_BYTES", 10_000_000)
    SUBMISSION_MAX_RECIPIENTS = _int("LOFT_SUBMISSION_MAX_RECIPIENTS", 50)
    SUBMISSION_MAX_CONNECTIONS = _int("LOFT_SUBMISSION_MAX_CONNECTIONS", 100)
    SUBMISSION_LOOPBACK_PLAIN = _bool("LOFT_SUBMISSION_LOOPBACK_PLAIN", True)
    # Task consumer processes `make run` starts (default: one per core, so sending uses every core); as many
    # engine runs send one campaign at once, sharing each SMTP account's limits.
    SENDING_PROCESSES = max(1, int(_str("LOFT_SENDING_PROCESSES", "") or os.cpu_count() or 1))
    # Bounce mailboxes (IMAP) are read every this many minutes; each run reads at most BOUNCE_CHECK_LIMIT messages.
    BOUNCE_CHECK_MINUTES = _int("LOFT_BOUNCE_CHECK_MINUTES", 5)
    BOUNCE_CHECK_LIMIT = _int("LOFT_BOUNCE_CHECK_LIMIT", 500)
    # Amazon SNS signing certificates, fetched once from sns.<region>.amazonaws.com and kept here.
    SNS_CERT_DIR = _path("LOFT_SNS_CERT_DIR", "var/sns-certs")
    # Outgoing webhooks may target loopback or private-network addresses (off: such URLs are refused, an SSRF guard).
    WEBHOOKS_ALLOW_PRIVATE = _bool("LOFT_WEBHOOKS_ALLOW_PRIVATE", False)
    # Teams' SMTP accounts and bounce mailboxes may be on this machine or a private network (off: refused, the
    # same guard as webhooks). The default of the instance setting "Private mail servers", which overrides it.
    MAIL_ALLOW_PRIVATE = _bool("LOFT_MAIL_ALLOW_PRIVATE", False)
    # Finished webhook deliveries (delivered or failed) stay in the delivery log this many days.
    WEBHOOK_LOG_DAYS = _int("LOFT_WEBHOOK_LOG_DAYS", 30)
    # A sending campaign pauses itself when its bounce rate (hard + soft) or complaint rate reaches these,
    # once at least AUTOPAUSE_MIN_SENT messages were attempted; checked at most every AUTOPAUSE_CHECK_SECONDS.
    AUTOPAUSE_BOUNCE_RATE = float(_str("LOFT_AUTOPAUSE_BOUNCE_RATE", "0.05"))
    AUTOPAUSE_COMPLAINT_RATE = float(_str("LOFT_AUTOPAUSE_COMPLAINT_RATE", "0.003"))
    AUTOPAUSE_MIN_SENT = _int("LOFT_AUTOPAUSE_MIN_SENT", 100)
    AUTOPAUSE_CHECK_SECONDS = float(_str("LOFT_AUTOPAUSE_CHECK_SECONDS", "5"))
    # Reports: raw events older than this many days are deleted once counted (daily totals stay).
    EVENT_RETENTION_DAYS = _int("LOFT_EVENT_RETENTION_DAYS", 400)
    # A current GeoLite2 .mmdb file for countries in reports; empty = the 2018 copy in the maxminddb-geolite2 package
    # (reports name the database's build date and warn when it is more than a year old).
    GEOIP_DB = _str("LOFT_GEOIP_DB", "")
    # Tracking: open and click events are written every this many milliseconds in one transaction per
    # worker (0 = each hit written before it is answered; a killed worker loses at most this much).
    TRACKING_FLUSH_MS = _int("LOFT_TRACKING_FLUSH_MS", 50)
    # GET /metrics (Prometheus): blank = only this machine may scrape it; set, a scrape from anywhere must send
    # "Authorization: Bearer <this token>" (docs/operations.md, "Prometheus").
    METRICS_TOKEN = _str("LOFT_METRICS_TOKEN", "")
    # AI writing help (docs/ai.md): a Gemini API key turns it on; Admin > AI overrides all three. The base
    # URL is blank for Google's public endpoint; the model is the one prompts use unless they name their own.
    GEMINI_API_KEY = _str("LOFT_GEMINI_API_KEY", "")
    GEMINI_BASE_URL = _str("LOFT_GEMINI_BASE_URL", "")
    GEMINI_MODEL = _str("LOFT_GEMINI_MODEL", "gemini-2.5-flash")


def settings():
    """Names of every LOFT_* setting, for docs checks and the admin page."""
    return sorted(k for k in vars(Config) if k.isupper())
