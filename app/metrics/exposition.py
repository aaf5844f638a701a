"""One scrape: the text Prometheus reads, from every process's values when PROMETHEUS_MULTIPROC_DIR is
set (gunicorn workers, huey consumers), else from this process's, plus the scrape-time collector."""
import os

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client import multiprocess

from app.metrics import definitions
from app.metrics.collector import LoftCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _ThisProcess:
    """The default registry's metrics (ours, and the process and GC ones) without registering them twice."""

    def collect(self):
        return REGISTRY.collect()


def scrape(queues):
    """The exposition text (bytes) for the huey instances `queues`."""
    registry = CollectorRegistry()
    if definitions.MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry, path=definitions.MULTIPROC_DIR)
    else:
        registry.register(_ThisProcess())
    registry.register(LoftCollector(queues))
    return generate_latest(registry)


def process_dead(pid):
    """gunicorn's child_exit (gunicorn.conf.py): a dead worker's "live" gauges (tasks running) stop counting;
    its counters stay in the sums."""
    if definitions.MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid, definitions.MULTIPROC_DIR)


def prepare_directory(path):
    """Create `path` and remove the files a previous start left (for whatever starts all the processes:
    stale "live" gauges of dead processes would count for ever)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
