"""Tasks of the contacts area: thin wrappers over app/contacts services."""
from app.contacts import services
from tasks import huey


@huey.task(name="contacts.run_bulk")
def run_bulk(job_id):
    """A bulk action recorded by services.start_bulk; progress and outcome live in its AuditLog row."""
    services.run_bulk(job_id)
