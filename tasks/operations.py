"""The consumer's side of operations (docs/operations.md): failed runs and dead letters from huey's signals,
and one heartbeat thread per consumer process.

huey emits SIGNAL_ERROR before it decides about a retry: `task.retries` is then the number of retries left,
so 0 means this failure is final and the task becomes a dead letter (app/operations/deadletters.py). The
tasks running in this process are kept in memory (SIGNAL_EXECUTING adds, the end signals remove) and
published by the heartbeat thread with each beat, so "running" on the queue page is at most one beat old.
huey runs its startup hooks once per worker thread; `install` starts the heartbeat thread once per process.
"""
import atexit
import datetime
import logging
import os
import socket
import threading

from huey import signals
from huey.api import PeriodicTask

from app.operations import deadletters
from app.operations import heartbeat
from tasks import huey
from tasks import tx_huey

log = logging.getLogger(__name__)

_running = {}  # task id -> {"name", "id", "started_at"} of the tasks this process runs now
_running_lock = threading.Lock()
_ENDED = (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_CANCELED, signals.SIGNAL_INTERRUPTED,
          signals.SIGNAL_LOCKED, signals.SIGNAL_TIMEOUT, signals.SIGNAL_RATE_LIMITED)


def _on_signal(queue):
    def receive(signal, task, exc=None):
        if queue.immediate:  # tests and `flask` commands run a task inline, inside their caller's transaction
            return
        if signal == signals.SIGNAL_EXECUTING:
            with _running_lock:
                _running[task.id] = {"name": type(task).__name__, "id": task.id,
                                     "started_at": datetime.datetime.utcnow().isoformat(timespec="seconds")}
            return
        with _running_lock:
            _running.pop(task.id, None)
        if signal == signals.SIGNAL_ERROR:
            _record_failure(queue, task, exc)
    return receive


def _record_failure(queue, task, exc):
    # A periodic task's failure is only a recent failure, never a dead letter: its next run comes by itself, and
    # one failing every minute would otherwise fill the list.
    final = not task.retries and not isinstance(task, PeriodicTask)
    name = queue._registry.task_to_string(type(task))
    payload = arguments = None
    if final:
        payload = queue.serialize_task(task)
        arguments = ", ".join([repr(a) for a in task.args] + [f"{k}={v!r}" for k, v in task.kwargs.items()])
    try:
        deadletters.record_failure(queue.name, name, task.id, exc, task.retries, payload=payload,
                                   arguments=arguments or "", attempts=type(task).default_retries + 1)
    except Exception:  # the database is down: huey's own log line still has the failure
        log.exception("could not record the failure of %s", task.id)


for _queue in (huey, tx_huey):
    _queue.signal(signals.SIGNAL_EXECUTING, *_ENDED)(_on_signal(_queue))


# --- The heartbeat ---------------------------------------------------------------------------------

_started = set()  # the queues whose heartbeat thread runs in this process
_start_lock = threading.Lock()


def install(app):
    """Called by wsgi.py: each queue's consumer starts its heartbeat thread with its first worker thread."""
    for queue in (huey, tx_huey):
        queue.on_startup("operations_heartbeat")(lambda queue=queue: _start_once(app, queue))


def _start_once(app, queue):
    with _start_lock:
        if queue.name in _started:
            return
        _started.add(queue.name)
    Heartbeat(app, queue.name).start()


class Heartbeat(threading.Thread):
    def __init__(self, app, queue_name):
        super().__init__(daemon=True, name=f"heartbeat-{queue_name}")
        self.app, self.queue_name, self.row_id = app, queue_name, None
        self.stop_event = threading.Event()

    def run(self):
        atexit.register(self.stop)
        every = self.app.config["WORKER_HEARTBEAT_SECONDS"]
        while not self.stop_event.is_set():
            try:
                with self.app.app_context():
                    self.beat()
            except Exception:  # a database restart: beat again next time, the web side waits a minute
                log.exception("heartbeat of the %s consumer failed", self.queue_name)
            self.stop_event.wait(every)

    def beat(self):
        with _running_lock:
            running = sorted(_running.values(), key=lambda task: task["started_at"])
        if self.row_id is None or not heartbeat.beat(self.row_id, running):
            self.row_id = heartbeat.started(socket.gethostname(), os.getpid(), self.queue_name)
            heartbeat.beat(self.row_id, running)

    def stop(self):
        # A clean exit (the consumer's SIGTERM/SIGINT ends the process normally, so atexit runs); SIGKILL leaves
        # the row as it was, and the web side notices from its age.
        self.stop_event.set()
        if self.row_id is None:
            return
        try:
            with self.app.app_context():
                heartbeat.stopped(self.row_id)
        except Exception:
            log.exception("could not mark the %s consumer stopped", self.queue_name)
