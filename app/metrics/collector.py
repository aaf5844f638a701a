"""What /metrics reads when it is scraped: the queues' depth by task and the imports in progress.

Cheap by design (the whole scrape has 50 ms at 1,000,000 contacts, docs/benchmarks.md): each queue's
sizes are counters of its storage, and at most READ_LIMIT queued messages are read to name their tasks
(the rest are counted as task "(not read)"); imports are one small query on import_job, a table of one
row per upload. Nothing here reads contacts or sends."""
import collections
import logging

from peewee import fn
from prometheus_client.core import GaugeMetricFamily

from app.models import ImportJob

log = logging.getLogger(__name__)

READ_LIMIT = 200  # queued messages unpickled per queue and kind to name their tasks
NOT_READ = "(not read)"
IMPORT_STATES = ("queued", "running")


def task_counts(messages, total):
    """{task name: count} of the messages read, and what the queue holds beyond them as NOT_READ."""
    counts = collections.Counter(getattr(task, "name", "") or type(task).__name__ for task in messages)
    beyond = total - sum(counts.values())
    if beyond > 0:
        counts[NOT_READ] += beyond
    return counts


class LoftCollector:
    """A prometheus_client collector (collect() only, so registering it runs nothing)."""

    def __init__(self, queues):
        self.queues = queues  # huey instances

    def collect(self):
        pending = GaugeMetricFamily("loft_queue_pending", "Tasks waiting in a queue to be run now, by task",
                                    labels=["queue", "task"])
        scheduled = GaugeMetricFamily("loft_queue_scheduled", "Tasks scheduled for later (retries, delays), "
                                      "by task", labels=["queue", "task"])
        up = GaugeMetricFamily("loft_queue_readable", "1 when the queue could be read at this scrape",
                               labels=["queue"])
        for huey in self.queues:
            try:
                waiting = task_counts(huey.pending(READ_LIMIT), huey.pending_count())
                later = task_counts(huey.scheduled(READ_LIMIT), huey.scheduled_count())
            except Exception:  # noqa: BLE001 - a queue that cannot be read must not take the other metrics away
                log.exception("metrics: reading queue %s failed", huey.name)
                up.add_metric([huey.name], 0)
                continue
            up.add_metric([huey.name], 1)
            for name, count in sorted(waiting.items()):
                pending.add_metric([huey.name, name], count)
            for name, count in sorted(later.items()):
                scheduled.add_metric([huey.name, name], count)
        yield pending
        yield scheduled
        yield up
        yield self.imports()

    def imports(self):
        family = GaugeMetricFamily("loft_imports_in_progress", "Contact imports queued or running",
                                   labels=["status"])
        counts = dict.fromkeys(IMPORT_STATES, 0)
        rows = (ImportJob.select(ImportJob.status, fn.COUNT(ImportJob.id))
                .where(ImportJob.status.in_(IMPORT_STATES)).group_by(ImportJob.status).tuples())
        for status, count in rows:
            counts[status] = count
        for status, count in counts.items():
            family.add_metric([status], count)
        return family
