"""What /metrics reads when it is scraped: the queues' depth by task and the imports in progress.

Cheap by design (the whole scrape has 50 ms at 1,000,000 contacts, docs/benchmarks.md): each queue is read
through the queue page's own reader (app/operations/queues.py, one home for "what a queue holds") with a small
sample: the totals are huey's counters, at most READ_LIMIT messages of each list are read to name their tasks,
and the rest is counted as task "(not read)". Imports are one small query on import_job, a table of one row per
upload. Nothing here reads contacts or sends."""
import logging

from peewee import fn
from prometheus_client.core import GaugeMetricFamily

from app.models import ImportJob
from app.operations import queues

log = logging.getLogger(__name__)

READ_LIMIT = 200  # queued messages read per queue and list to name their tasks
NOT_READ = "(not read)"
IMPORT_STATES = ("queued", "running")


def task_counts(groups, total):
    """{task name: count} of the queue page's groups, and what the list holds beyond them as NOT_READ."""
    counts = {group.name: group.count for group in groups}
    beyond = total - sum(counts.values())
    if beyond > 0:
        counts[NOT_READ] = counts.get(NOT_READ, 0) + beyond
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
            snapshot = queues.snapshot(huey, sample=READ_LIMIT)
            if snapshot.error:  # a queue that cannot be read must not take the other metrics away
                log.warning("metrics: queue %s: %s", huey.name, snapshot.error)
                up.add_metric([huey.name], 0)
                continue
            up.add_metric([huey.name], 1)
            for name, count in sorted(task_counts(snapshot.pending, snapshot.pending_count).items()):
                pending.add_metric([huey.name, name], count)
            for name, count in sorted(task_counts(snapshot.scheduled, snapshot.scheduled_count).items()):
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
