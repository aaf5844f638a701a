"""Tasks of the sending engine: thin wrappers over app/sending services (issue 4)."""
from tasks import huey  # noqa: F401
