"""Tasks of the reports area: thin wrappers over app/reports services (issue 5)."""
from tasks import huey  # noqa: F401
