"""HTTP requests by route and status, with their latency: Flask's request hooks, and `observe` for the
tracking fast path (app/tracking/fastpath.py), which answers before Flask.

The route label is the URL rule ("/campaigns/<int:campaign_id>"), never the path a client sent: a path
of its own per request would make a new series each time. A request no rule matched is "(unmatched)"."""
import time

from flask import g
from flask import request

from app.metrics.definitions import HTTP_REQUESTS
from app.metrics.definitions import HTTP_SECONDS

UNMATCHED = "(unmatched)"


def observe(route, method, status, seconds):
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    if seconds is not None:
        HTTP_SECONDS.labels(route).observe(seconds)


def _started():
    g.metrics_started = time.perf_counter()


def _answered(response):
    started = g.get("metrics_started")
    rule = request.url_rule
    # Methods are a fixed set in practice, but a client may send any word: only the usual ones are kept.
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    observe(rule.rule if rule is not None else UNMATCHED, method, response.status_code,
            time.perf_counter() - started if started is not None else None)
    return response


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app):
    # First of the before_request hooks: one that answers early (size limit, CSRF) stops the later ones,
    # and its request is timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_answered)
