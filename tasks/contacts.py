"""Tasks of the contacts area: thin wrappers over app/contacts."""
from app.contacts import bulk
from tasks import huey


@huey.task(name="contacts.run_bulk")
def run_bulk(job_id):
    """A bulk action recorded by bulk.start_bulk; progress and outcome live in its AuditLog row."""
    bulk.run_bulk(job_id)
