"""Every Loft metric, defined once (names `loft_*`). Import this module and update the objects where the
thing happens; nothing else defines a metric (the scrape-time ones are in app/metrics/collector.py).

app.config is imported first: it loads .env, and prometheus_client decides at import time, from
PROMETHEUS_MULTIPROC_DIR, whether values live in this process or in files shared with the others."""
import atexit
import os

from app import config  # noqa: F401  (loads .env before prometheus_client reads the environment)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    # Created if missing (every process writes its own files there); emptied only by what starts the
    # processes (`make run`, gunicorn.conf.py's on_starting docs), since another live process may own files.
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

    def _process_ends():
        # A consumer stopped cleanly stops counting in the "live" gauges (gunicorn's workers: child_exit too).
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR)

    atexit.register(_process_ends)

from prometheus_client import Counter  # noqa: E402  (after the directory exists)
from prometheus_client import Gauge  # noqa: E402
from prometheus_client import Histogram  # noqa: E402

# Messages of campaigns by what became of them, counted when the result is committed (one flush).
MESSAGES = Counter("loft_messages", "Messages by result (sent, soft_fail: will be retried, bounce: refused with "
                   "a 5xx, failed: given up without a bounce) and stream (campaign, transactional)",
                   ["result", "stream"])
SMTP_REPLIES = Counter("loft_smtp_replies", "SMTP replies to campaign messages by class (2xx, 4xx, 5xx)",
                       ["reply_class"])
SEND_SECONDS = Histogram("loft_send_seconds", "Time of one campaign message's SMTP transaction (MAIL to the "
                         "reply after DATA), seconds",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
TRACKING_HITS = Counter("loft_tracking_hits", "Recorded opens and clicks by kind (open, click) and stream "
                        "(campaign, transactional)", ["kind", "stream"])
HTTP_REQUESTS = Counter("loft_http_requests", "HTTP requests by route (the URL rule, never the raw path), "
                        "method and status", ["route", "method", "status"])
HTTP_SECONDS = Histogram("loft_http_request_seconds", "Time to answer an HTTP request by route, seconds",
                         ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
AI_TOKENS = Counter("loft_ai_tokens", "AI tokens used by generations (cached answers use none)", ["direction"])
AI_COST = Counter("loft_ai_cost_usd", "What AI generations cost, US dollars")
TASKS_RUNNING = Gauge("loft_tasks_running", "Tasks running now, by queue and task", ["queue", "task"],
                      multiprocess_mode="livesum")
TASKS_COMPLETED = Counter("loft_tasks_completed", "Tasks that finished without an error", ["queue", "task"])
TASKS_FAILED = Counter("loft_tasks_failed", "Tasks that ended with an error (retried or not)", ["queue", "task"])
TASKS_RETRIED = Counter("loft_tasks_retried", "Failed tasks queued again by their retry policy", ["queue", "task"])
