"""Tasks of the contacts area: thin wrappers over app/contacts services (issue 3)."""
from tasks import huey  # noqa: F401
