"""Idempotency-Key records are deleted by an hourly periodic task once older than their keeping time;
a request does not pay for the delete."""
import datetime

from app.api import idempotency
from app.models import IdempotencyRecord
from app.models import utcnow
from tasks import api as api_tasks
from tasks import huey


def record(api, key, age):
    return IdempotencyRecord.create(api_key=api.key.id, key=key, fingerprint="f" * 64, status=201, body="{}",
                                    created_at=utcnow() - age)


def test_the_periodic_task_deletes_only_expired_records(api):
    expired = record(api, "old", idempotency.KEEP + datetime.timedelta(minutes=1))
    kept = record(api, "recent", idempotency.KEEP - datetime.timedelta(minutes=1))
    api_tasks.prune_idempotency()  # huey runs tasks inline in the tests
    assert IdempotencyRecord.get_or_none(IdempotencyRecord.id == expired.id) is None
    assert IdempotencyRecord.get_or_none(IdempotencyRecord.id == kept.id) is not None


def test_an_expired_key_runs_the_request_again_after_the_task(api):
    record(api, "again", idempotency.KEEP + datetime.timedelta(hours=1))
    api_tasks.prune_idempotency()
    response = api.post("/api/v1/contacts", json={"email": "again@example.com"}, headers={"Idempotency-Key": "again"})
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers


def test_the_task_is_periodic_and_runs_every_hour():
    name = "tasks.api.api.prune_idempotency"
    assert huey._registry.string_to_task(name) is api_tasks.prune_idempotency.task_class
    start = datetime.datetime(2026, 1, 1)
    runs = [moment for moment in (start + datetime.timedelta(minutes=m) for m in range(180))
            if any(task.name == "api.prune_idempotency" for task in huey.read_periodic(moment))]
    assert len(runs) == 3
