"""Tasks of the imports area: thin wrappers over app/imports services (issue 3)."""
from tasks import huey  # noqa: F401
