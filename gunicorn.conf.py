"""gunicorn settings (the Procfile names this file; gunicorn also reads it from the working directory): JSON
log lines like the app's, and the Prometheus folder's bookkeeping when PROMETHEUS_MULTIPROC_DIR is set."""
import logging
import os

from gunicorn.glogging import Logger as _GunicornLogger

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
control_socket_disable = True  # no control socket in the home directory; honcho or systemd manages the process


class Logger(_GunicornLogger):
    """gunicorn's logger, minus building an access-log line that gunicorn.access drops anyway
    (it has no handler above): about a tenth of a tracking hit's time under load."""

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = Logger


def on_starting(server):
    # The folder every process writes its metric values to (app/metrics). Only created here: `make run` (or the
    # service manager, docs/operations.md) empties it before any process starts, and a consumer may already
    # have written its files when gunicorn starts.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    # A worker that exited (restarted, killed) stops counting in the "live" gauges; its counters stay in the sums.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
