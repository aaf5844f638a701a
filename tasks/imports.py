"""Tasks of the imports area: thin wrappers over app/imports.

The job's state lives in its ImportJob row, not in huey: a task lost with a
killed worker is found by the sweep below (no heartbeat for a few minutes)
and queued again, and the import carries on after its last committed chunk.
"""
from huey import crontab

from app.imports import importer
from app.imports import services
from tasks import huey
from tasks import retry_policy
from tasks.automations import advance_as_they_enter
from tasks.automations import advance_soon


@retry_policy(0, 0, "imports.resume_stalled carries an interrupted import on from its cursor")
@huey.task(name="imports.run_import")
def run_import(job_id):
    """Import (or carry on importing) one uploaded CSV file."""
    # The runs each chunk's subscribers enter (list_join automations) move while the rest of the file is still
    # importing: a welcome email leaves within seconds of its row, not after the whole import.
    importer.run_import(job_id, on_entered=advance_as_they_enter())
    advance_soon()  # the last chunks' runs


@retry_policy(0, 0, "periodic: the next run is two minutes away")
@huey.periodic_task(crontab(minute="*/2"), name="imports.resume_stalled")
def resume_stalled_imports():
    for job_id in services.claim_stalled_imports():
        run_import(job_id)
