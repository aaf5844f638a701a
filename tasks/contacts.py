"""Tasks of the contacts area: thin wrappers over app/contacts."""
from app.contacts import bulk
from app.contacts import validity
from tasks import huey
from tasks import retry_policy
from tasks.automations import advance_as_they_enter
from tasks.automations import advance_soon


@retry_policy(0, 0, "its AuditLog row records the failure; a half-done bulk action is not repeated unasked")
@huey.task(name="contacts.run_bulk")
def run_bulk(job_id):
    """A bulk action recorded by bulk.start_bulk; progress and outcome live in its AuditLog row."""
    # Contacts a bulk "add to list" or "start an automation" enters move batch by batch, and the last ones at the end.
    bulk.run_bulk(job_id, after_batch=advance_as_they_enter())
    advance_soon()


@retry_policy(0, 0, "its job row records the failure; the person starts it again")
@huey.task(name="contacts.validate_list")
def validate_list(job_id):
    """A "Validate this list" job started by validity.start_job; progress and counts live in its row."""
    validity.run_job(job_id)
