"""Tasks of the webhooks area: thin wrappers over app/webhooks services (issue 5)."""
from tasks import huey  # noqa: F401
