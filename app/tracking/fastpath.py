"""The open pixel and click redirect without the web framework: a WSGI fast path.

Loft must take thousands of tracking hits a second from two gunicorn workers.
A hit through Flask costs far more in the framework than in the work itself:
request and app contexts, the session and sign-in lookup, URL routing, the
before/after hooks. Measured with gunicorn as in the Procfile on this 2-core
machine (docs/benchmarks.md): a bare WSGI app answers about 13,000 requests/s,
the same pixel through Flask about 4,300/s before any database work.

So the tracking blueprint puts this small WSGI app in front of Flask. It
answers only the common, successful case and hands everything else to Flask,
whose views in app/tracking/views.py stay the reference behaviour:

  GET /o/<token>.gif         always the pixel (a token that does not verify is
                             recorded nowhere, as in the view);
  GET /c/<token>/<link id>   a 302 to the link when the token verifies and the
                             link belongs to the Send's campaign; anything else
                             (bad token, unknown link: the 404 page) goes to Flask.

A transactional message that asked for tracking uses the same two paths with tokens of
its own purposes (tx_open, tx_click: app/transactional/tracking.py).

HEAD, POST and any other path or shape go to Flask untouched. The answers carry
the same headers as the Flask views (tests/test_tracking_writer.py compares them), the
same X-Request-ID handling and the same JSON request log line. No cookie is read
or set. The work is the same service calls the views make (app.tracking.services).
"""
import logging
import re
import time
import uuid

from werkzeug.urls import iri_to_uri

from app import logs
from app import tokens
from app.metrics import http as http_metrics
from app.tracking import recorder
from app.tracking import services
from app.transactional import tracking as tx_tracking

log = logging.getLogger("loft.request")  # the same logger as app.logs' request lines

# Tokens are base64url; link ids are what werkzeug's int converter accepts, minus leading zeros.
PIXEL_PATH = re.compile(r"/o/([A-Za-z0-9_-]{1,%d})\.gif" % tokens.MAX_TOKEN_LENGTH)
CLICK_PATH = re.compile(r"/c/([A-Za-z0-9_-]{1,%d})/([1-9][0-9]{0,17})" % tokens.MAX_TOKEN_LENGTH)

# The URL rules of the views these paths stand for (app/tracking/views.py): the route label of the request metrics.
PIXEL_RULE = "/o/<token>.gif"
CLICK_RULE = "/c/<token>/<int:link_id>"

# What app/__init__.py (_security_headers), app/htmx.py (Vary) and Flask's session
# (Vary: Cookie, the session is looked at for the sign-in) add to every answer.
COMMON = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    ("Vary", "HX-Request, Cookie"),
]
PIXEL_HEADERS = [("Content-Type", "image/gif"), ("Cache-Control", "no-store, private"), ("Pragma", "no-cache"),
                 ("Expires", "0"), ("Content-Length", str(len(services.PIXEL))),
                 ("Referrer-Policy", "same-origin"), *COMMON]
REDIRECT_HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0"),
                    ("Cache-Control", "no-store, private"), ("Referrer-Policy", "no-referrer"),
                    ("X-Robots-Tag", "noindex, nofollow"), *COMMON]


class FastPath:
    """WSGI middleware: answers the hot tracking requests itself, passes on the rest."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self._signer = None

    def signer(self):
        if self._signer is None:
            self._signer = tokens.signer(self.app.config["SECRET_KEY"])
        return self._signer

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO") or ""
            if path.startswith("/o/"):
                match = PIXEL_PATH.fullmatch(path)
                if match:
                    return self.pixel(environ, start_response, match.group(1))
            elif path.startswith("/c/"):
                match = CLICK_PATH.fullmatch(path)
                if match:
                    answer = self.click(environ, start_response, match.group(1), int(match.group(2)))
                    if answer is not None:
                        return answer
        return self.wsgi_app(environ, start_response)

    def _send_id(self, purpose, token):
        ids = self.signer().verify(purpose, token)
        return ids[0] if ids and len(ids) == 1 else None

    def _tx_ids(self, purpose, token):
        """(team id, message id) of a transactional message's token, or None."""
        ids = self.signer().verify(purpose, token)
        return ids if ids and len(ids) == 2 else None

    def pixel(self, environ, start_response, token):
        started = time.perf_counter()
        send_id = self._send_id("open", token)
        if send_id is not None:
            services.record_open(send_id, environ.get("HTTP_USER_AGENT", ""), environ.get("REMOTE_ADDR") or "")
        else:
            tx_ids = self._tx_ids("tx_open", token)
            if tx_ids is not None:
                tx_tracking.record_open(*tx_ids, environ.get("HTTP_USER_AGENT", ""), environ.get("REMOTE_ADDR") or "")
        return self._answer(environ, start_response, started, "200 OK", PIXEL_HEADERS, services.PIXEL, PIXEL_RULE)

    def click(self, environ, start_response, token, link_id):
        started = time.perf_counter()
        send_id = self._send_id("click", token)
        if send_id is None:
            return self.tx_click(environ, start_response, started, token, link_id)
        found = services.click_target(send_id, link_id)
        if found is None:
            return None
        url, facts = found
        services.record_click(send_id, link_id, url, facts, "GET", environ.get("HTTP_USER_AGENT", ""),
                              environ.get("REMOTE_ADDR") or "")
        location = iri_to_uri(url)  # as the view: the stored URL as written, only made ASCII
        return self._answer(environ, start_response, started, "302 FOUND",
                            [("Location", location), *REDIRECT_HEADERS], b"", CLICK_RULE)

    def tx_click(self, environ, start_response, started, token, place):
        tx_ids = self._tx_ids("tx_click", token)
        url = tx_tracking.click_target(*tx_ids, place) if tx_ids is not None else None
        if url is None:
            return None
        tx_tracking.record_click(*tx_ids, url, "GET", environ.get("HTTP_USER_AGENT", ""))
        return self._answer(environ, start_response, started, "302 FOUND",
                            [("Location", iri_to_uri(url)), *REDIRECT_HEADERS], b"", CLICK_RULE)

    def _answer(self, environ, start_response, started, status, headers, body, route):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if logs._VALID_ID.match(incoming) else uuid.uuid4().hex
        start_response(status, [*headers, ("X-Request-ID", request_id)])
        # Counted as Flask's hook would count the views' rules (app/metrics/http.py): Flask never sees these.
        http_metrics.observe(route, "GET", int(status[:3]), time.perf_counter() - started)
        if log.isEnabledFor(logging.INFO):
            log.info("request", extra={"request_id": request_id, "method": "GET", "path": environ.get("PATH_INFO"),
                                       "status": int(status[:3]),
                                       "ms": round((time.perf_counter() - started) * 1000, 1)})
        return [body]


def install(app):
    """Put the fast path in front of `app` (once) and set how events are written: every
    TRACKING_FLUSH_MS by a writer thread, or at once in tests (as huey runs there)."""
    recorder.configure(0 if app.config.get("TESTING") else app.config.get("TRACKING_FLUSH_MS", 50))
    if not isinstance(app.wsgi_app, FastPath):
        app.wsgi_app = FastPath(app, app.wsgi_app)
