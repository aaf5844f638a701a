"""JSON log lines carrying the request id (or the task id in the worker).

The id comes from an incoming X-Request-ID header when it looks sane (so a
proxy's id ties its log to ours), otherwise a new one; it is echoed back in
the response's X-Request-ID.
"""
import json
import logging
import re
import sys
import time
import uuid

from flask import g
from flask import has_request_context
from flask import request

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdFilter(logging.Filter):
    """Stamp records made during a request with its id (at emit time, while g exists)."""

    def filter(self, record):
        if not hasattr(record, "request_id") and has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "task_id", "method", "path", "status", "ms", "user_id"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure(level):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


log = logging.getLogger("loft.request")


def init_app(app):
    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if request.endpoint != "health.status":  # uptime monitors poll it every second
            elapsed = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
            log.info("request", extra={"request_id": g.get("request_id"), "method": request.method, "path": request.path,
                                       "status": response.status_code, "ms": round(elapsed, 1)})
        return response
