"""Every task of both queues declares its retry policy (tasks.retry_policy), so a failure's fate is chosen,
not inherited from huey's default."""
import pytest

import wsgi  # noqa: F401  (registers every task, as the consumer does)
from tasks import huey
from tasks import retry_policy
from tasks import tx_huey


def _tasks(queue):
    return sorted(queue._registry._registry.items())


@pytest.mark.parametrize("queue", [huey, tx_huey], ids=["loft", "loft-tx"])
def test_every_task_declares_its_retry_policy(queue):
    tasks = _tasks(queue)
    assert tasks, "no task registered: wsgi imports every task module"
    missing = [name for name, task_class in tasks if "retry_policy" not in vars(task_class)]
    assert not missing, f"tasks without @retry_policy(retries, delay, why): {missing}"
    for name, task_class in tasks:
        policy = task_class.retry_policy
        assert (task_class.default_retries, task_class.default_retry_delay) == (policy.retries, policy.delay), name
        assert len(policy.why) > 10, f"{name}: say why in a line"


def test_the_policy_is_what_huey_runs():
    from tasks.system_mail import send_system_email
    assert send_system_email.s("a@example.com", "s", "t").retries == 3
    assert send_system_email.s("a@example.com", "s", "t").retry_delay == 30


def test_a_policy_given_twice_or_without_reason_is_refused():
    def job():
        return None
    with pytest.raises(ValueError, match="says why"):
        retry_policy(0, 0, " ")
    wrapper = huey.task(retries=2, name="tests.twice")(job)
    try:
        with pytest.raises(ValueError, match="only"):
            retry_policy(1, 1, "a reason long enough")(wrapper)
    finally:
        wrapper.unregister()
