"""The consumer of tests/test_operations.py: `huey_consumer tests.operations_consumer.huey` runs every Loft task
(wsgi, with its heartbeat) plus the test's failing task."""
from wsgi import huey  # first, as for the real consumer: the app before any task module

from tests.operations_support import declare  # noqa: I100

flaky, slow = declare(huey)
