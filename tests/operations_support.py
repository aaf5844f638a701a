"""Helpers of tests/test_operations.py: a task that fails until a flag file exists and one that waits, declared on whichever queue
is given (the consumer's, through tests/operations_consumer.py, and the test's own view of the same storage),
so it never joins the global queue's registry that tests/test_structure_homes.py pins."""
import os
import time
from pathlib import Path

from tasks import retry_policy

SECRET_ERROR = ("cannot reach smtp://loft:hunter2@mail.example.com:587 with password=hunter2 "
                "api_key=AIzaSyD0123456789abcdefghijklmnopqrstuv")


def declare(queue):
    @retry_policy(1, 0, "a test task: it fails again on its one retry, then becomes a dead letter")
    @queue.task(name="operations.flaky")
    def flaky(flag_path, ran_path):
        if not os.path.exists(flag_path):
            raise ConnectionError(SECRET_ERROR)
        Path(ran_path).write_text("ran")

    @retry_policy(0, 0, "a test task: it waits for a file, so the queue page can see it running")
    @queue.task(name="operations.slow")
    def slow(release_path):
        for _ in range(300):
            if os.path.exists(release_path):
                return
            time.sleep(0.1)

    return flaky, slow
