"""The JSON API under /api/v1: framework.py (the blueprint, the `operation` decorator, problem+json errors,
the generated OpenAPI document), one module per resource, reference.py (openapi.json and the reference
page) and keys.py (the API keys it is called with). How to add an operation: docs/architecture.md, "API"."""
from app.api import bulk  # noqa: F401 (registers its operations)
from app.api import contacts  # noqa: F401
from app.api import fields  # noqa: F401
from app.api import lists  # noqa: F401
from app.api import suppressions  # noqa: F401
from app.api import activity  # noqa: F401
from app.api import segments  # noqa: F401
from app.api import webhooks  # noqa: F401
from app.api import campaigns  # noqa: F401
from app.api import templates  # noqa: F401
from app.api import transactional  # noqa: F401
from app.api import events  # noqa: F401
from app.api import reference  # noqa: F401 (registers its pages)
from app.api.framework import bp
from app.api.framework import problem_for
from app.api.framework import wants_problem

__all__ = ["bp", "problem_for", "wants_problem"]
