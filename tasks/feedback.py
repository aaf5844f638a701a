"""Tasks of the feedback area: thin wrappers over app/feedback services (issue 5)."""
from tasks import huey  # noqa: F401
