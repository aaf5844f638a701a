"""Tasks running, completed, failed and retried, from huey's signals (tasks/__init__.py connects both
queues). Other handlers (dead letters) connect to the same signals beside these."""
import threading

from huey import signals

from app.metrics.definitions import TASKS_COMPLETED
from app.metrics.definitions import TASKS_FAILED
from app.metrics.definitions import TASKS_RETRIED
from app.metrics.definitions import TASKS_RUNNING

# A task leaves "running" by several signals (complete, error, a cancel before or during it, an
# interrupt), and some outcomes send two of them: each task id is taken off once only.
_running = set()
_lock = threading.Lock()
_ENDED = (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_CANCELED, signals.SIGNAL_INTERRUPTED,
          signals.SIGNAL_TIMEOUT, signals.SIGNAL_LOCKED, signals.SIGNAL_RATE_LIMITED, signals.SIGNAL_RETRYING)


def watch(huey):
    queue = huey.name

    def on_signal(signal, task, *args, **kwargs):
        name = getattr(task, "name", "") or type(task).__name__
        key = (queue, getattr(task, "id", None))
        if signal == signals.SIGNAL_EXECUTING:
            with _lock:
                _running.add(key)
            TASKS_RUNNING.labels(queue, name).inc()
            return
        if signal == signals.SIGNAL_COMPLETE:
            TASKS_COMPLETED.labels(queue, name).inc()
        elif signal in (signals.SIGNAL_ERROR, signals.SIGNAL_TIMEOUT):
            TASKS_FAILED.labels(queue, name).inc()
        elif signal == signals.SIGNAL_RETRYING:
            TASKS_RETRIED.labels(queue, name).inc()
        if signal in _ENDED or signal == "ended":
            with _lock:
                was_running = key in _running
                _running.discard(key)
            if was_running:
                TASKS_RUNNING.labels(queue, name).dec()

    huey.signal(signals.SIGNAL_EXECUTING, *_ENDED)(on_signal)

    # A task that raised RetryTask emits no signal of its own: the post-execute hook ends "running" for
    # every task that got that far (the signals above cover the rest; an id is only taken off once).
    def metrics_task_ended(task, value, exc):
        on_signal("ended", task)

    huey.post_execute()(metrics_task_ended)
    return on_signal
