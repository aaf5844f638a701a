"""Tasks of the reports area: thin wrappers over app/reports services.

rollup() runs every minute and counts the events that arrived since the last
run (app.reports.rollup; one run at a time), then each team's contacts for the dashboard; retention() runs once a day and
deletes raw events past LOFT_EVENT_RETENTION_DAYS that were counted.
"""
from flask import current_app
from huey import crontab

from app.reports import rollup as rollup_service
from tasks import huey
from tasks import retry_policy


@retry_policy(0, 0, "periodic: the next minute carries on from the cursor")
@huey.periodic_task(crontab(minute="*"), name="reports.rollup")
@huey.lock_task("reports-rollup")
def rollup():
    rollup_service.run(max_seconds=50)
    rollup_service.count_contacts()


@retry_policy(0, 0, "daily: the next night deletes what this one left")
@huey.periodic_task(crontab(minute="17", hour="3"), name="reports.retention")
@huey.lock_task("reports-rollup")
def retention():
    rollup_service.run(max_seconds=300)
    rollup_service.retention(current_app.config["EVENT_RETENTION_DAYS"])
