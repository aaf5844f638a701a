"""Idempotency-Key on API POSTs: a retried request gets the first answer instead of doing the work again.

The first request with a key inserts its IdempotencyRecord (unique per API key and Idempotency-Key) with
the fingerprint of what it asks, runs, and stores its answer. A later request with the same key:
- the same fingerprint and an answer stored: that answer again (Idempotent-Replayed: true);
- the same fingerprint while the first still runs: it waits up to WAIT_SECONDS for the answer, else 409;
- another fingerprint: 422, the key belongs to another request.
A request that fails (a refusal or a crash) removes its record, so fixing the body and retrying with the
same key runs it. Records are kept KEEP long; the hourly task tasks/api.py deletes older ones.
"""
import datetime
import hashlib
import time

from flask import Response
from flask import request
from peewee import IntegrityError

from app.db import db
from app.errors import Problem
from app.models import IdempotencyRecord
from app.models import utcnow

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
KEEP = datetime.timedelta(hours=24)


class IdempotencyProblem(Problem):
    def __init__(self, status, detail, headers=None):
        super().__init__(detail, field=HEADER)
        self.status = status
        self.headers = headers or {}


def fingerprint():
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def guarded(api_key, view, args, kwargs):
    """Run `view` once per Idempotency-Key of `api_key` (or simply run it when the request has none)."""
    key = request.headers.get(HEADER)
    if key is None:
        return view(*args, **kwargs)
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise IdempotencyProblem(400, f"An Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters.")
    asked = fingerprint()
    record = _claim(api_key, key, asked)
    if record.status is not None:
        return _replay(record)
    try:
        response = view(*args, **kwargs)
    except BaseException:
        IdempotencyRecord.delete().where(IdempotencyRecord.id == record.id).execute()
        raise
    if response.status_code >= 500:
        IdempotencyRecord.delete().where(IdempotencyRecord.id == record.id).execute()
        return response
    (IdempotencyRecord.update(status=response.status_code, body=response.get_data(as_text=True),
                              location=response.headers.get("Location", ""))
     .where(IdempotencyRecord.id == record.id).execute())
    return response


def _claim(api_key, key, asked):
    """This request's new record (status None), or the earlier request's record once it has its answer."""
    try:
        with db.atomic():
            return IdempotencyRecord.create(api_key=api_key.id, key=key, fingerprint=asked)
    except IntegrityError:
        pass
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = IdempotencyRecord.get_or_none((IdempotencyRecord.api_key == api_key.id)
                                               & (IdempotencyRecord.key == key))
        if record is None:
            # The first request failed and let the key go: this one runs instead.
            return _claim(api_key, key, asked)
        if record.fingerprint != asked:
            raise IdempotencyProblem(422, "This Idempotency-Key was used for a different request (another "
                                          "path or body). Use a new key for a new request.")
        if record.status is not None:
            return record
        if time.monotonic() >= deadline:
            raise IdempotencyProblem(409, "A request with this Idempotency-Key is still being processed; "
                                          "retry in a moment to get its answer.", headers={"Retry-After": "1"})
        time.sleep(POLL_SECONDS)


def _replay(record):
    response = Response(record.body, status=record.status, mimetype="application/json")
    if record.location:
        response.headers["Location"] = record.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def prune(now=None):
    """Delete the records older than KEEP; returns how many went."""
    return IdempotencyRecord.delete().where(IdempotencyRecord.created_at < (now or utcnow()) - KEEP).execute()
