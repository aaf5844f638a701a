"""A web request's thread keeps its database connection for its next request (app.db.release_db), clean:
a transaction left open is rolled back, and a broken or old connection is replaced. Any other app context
closes its connection. On both stacks."""
import concurrent.futures
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from app.db import connection as db_module
from app.api import keys
from app.config import ROOT
from app.db import db
from app.db import release_db
from app.models import ApiKey
from app.models import Contact
from app.models import Team
from app.models import utcnow
from tests.api_support import ApiClient
from tests.conftest import free_port


@pytest.fixture
def api_outside(app, admin):
    """An API client used with no app context pushed, so every request ends its own context."""
    with app.app_context():
        key, raw = keys.create_key(Team.get(Team.name == "Acme"), name="script", role="admin")
    db.close()
    return ApiClient(app, raw, key)


def contacts_answer(api):
    response = api.get("/api/v1/contacts")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_request_keeps_its_threads_connection_for_the_next_one(api_outside):
    contacts_answer(api_outside)
    assert not db.is_closed()
    kept = db.connection()
    contacts_answer(api_outside)
    assert db.connection() is kept


def test_other_threads_keep_their_own(api_outside):
    contacts_answer(api_outside)
    mine = db.connection()
    seen = []

    def other():
        contacts_answer(api_outside)
        seen.append(db.connection())
        db.close()
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine
    assert db.connection() is mine


def test_an_app_context_outside_a_request_closes_its_connection(app, api_outside):
    with app.app_context():
        Contact.select().count()
        assert not db.is_closed()
    assert db.is_closed()


def test_a_transaction_left_open_is_rolled_back_and_the_connection_kept(app, api_outside):
    contacts_answer(api_outside)
    kept = db.connection()
    db.execute_sql("BEGIN")  # behind peewee's back, as a bug might
    team_id = Team.get(Team.name == "Acme").id
    Contact.insert(team=team_id, email="left@example.com", domain="example.com").execute()
    release_db()
    assert db.connection() is kept
    assert Contact.select().where(Contact.email == "left@example.com").count() == 0
    contacts_answer(api_outside)  # the next request finds the connection clean and usable
    assert db.connection() is kept


def test_a_broken_connection_is_closed_and_the_next_request_opens_another(api_outside):
    contacts_answer(api_outside)
    broken = db.connection()
    broken.close()  # the server went away, or a driver error closed it
    release_db()
    assert db.is_closed()
    assert contacts_answer(api_outside)["data"] == []
    assert db.connection() is not broken


def test_a_connection_older_than_the_limit_is_replaced(api_outside, monkeypatch):
    contacts_answer(api_outside)
    old = db.connection()
    monkeypatch.setattr(db_module, "KEEP_CONNECTION_SECONDS", -1)
    contacts_answer(api_outside)
    assert db.is_closed()
    contacts_answer(api_outside)
    assert db.connection() is not old


def test_a_connection_inside_a_peewee_transaction_is_not_kept(api_outside):
    contacts_answer(api_outside)
    transaction = db.atomic()
    transaction.__enter__()
    try:
        with pytest.raises(Exception, match="transaction is open"):
            release_db()  # a request that ends inside db.atomic() is a bug: it fails loudly, as before
    finally:
        transaction.__exit__(None, None, None)
    release_db()
    assert not db.is_closed()


def test_a_request_that_failed_closes_its_connection(api_outside):
    """Its traceback may keep a partly read cursor, and with it the request's read snapshot."""
    contacts_answer(api_outside)
    release_db(RuntimeError("the view failed"))
    assert db.is_closed()


# --- Served by gunicorn ------------------------------------------------------------------------------

def http(port, method, path, raw_key, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {raw_key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def from_every_thread(port, path, raw_key, count=48):
    """`count` GETs from 8 client threads at once, so every worker thread of gunicorn answers some."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: http(port, "GET", path, raw_key), range(count)))


def test_gunicorn_threads_keep_connections_and_see_every_write_at_once(app, admin, tmp_path, queue_env):
    """The Procfile's web command (2 workers, 4 threads each) over real HTTP: each thread keeps its connection,
    and a contact written through one of them reads back through every other at once, so no kept connection
    holds an old snapshot. A key revoked by another process stops working within KEY_CACHE_SECONDS."""
    with app.app_context():
        key, raw = keys.create_key(Team.get(Team.name == "Acme"), name="script", role="admin")
    db.close()
    command = next(line.partition(":")[2].strip() for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    port = free_port()
    env = dict(os.environ, LOFT_BIND=f"127.0.0.1:{port}", LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_SECRET_KEY="test-secret", LOFT_LOG_LEVEL="WARNING",
               # The revoked key's 401s count as failed sign-ins of this address: on a slow box, where the copies
               # expire process by process over several polls, more than the default 30 a minute turned every
               # answer into 429 and the poll never saw [401] * 16 (the limit has tests of its own).
               LOFT_API_AUTH_FAILURES_PER_MINUTE="100000", **queue_env)
    server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                http(port, "GET", "/api/v1/contacts", raw)
                break
            except OSError:
                time.sleep(0.1)
        assert {status for status, _ in from_every_thread(port, "/api/v1/contacts", raw)} == {200}
        status, created = http(port, "POST", "/api/v1/contacts", raw, {"email": "ann@example.com", "name": "Ann"})
        assert status == 201, created
        answers = from_every_thread(port, f"/api/v1/contacts/{created['id']}", raw)
        assert {(status, body["name"]) for status, body in answers} == {(200, "Ann")}
        status, _ = http(port, "PATCH", f"/api/v1/contacts/{created['id']}", raw, {"name": "Ann B"})
        assert status == 200
        answers = from_every_thread(port, f"/api/v1/contacts/{created['id']}", raw)
        assert {(status, body["name"]) for status, body in answers} == {(200, "Ann B")}
        with app.app_context():  # revoked by another process: the CLI, or the page served elsewhere
            ApiKey.update(revoked_at=utcnow()).where(ApiKey.id == key.id).execute()
        deadline = time.monotonic() + keys.KEY_CACHE_SECONDS + 20  # the copies' life, and room for a slow box
        while (seen := sorted(status for status, _ in from_every_thread(port, "/api/v1/contacts", raw, count=16))) \
                != [401] * 16:
            # The answers go in the message: a 200 is a stale copy or snapshot, anything else is a box too slow
            assert time.monotonic() < deadline, f"a revoked key was still accepted after the copies expired: {seen}"
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_task_thread_drops_a_broken_connection_before_its_next_task(app, admin):
    """huey's worker threads keep one app context for their whole life: without the post-execute hook a
    connection the server dropped would fail every later task of that thread."""
    from tasks import huey, release_connection, tx_huey

    assert all(queue._post_execute.get("release_connection") is release_connection for queue in (huey, tx_huey))
    immediate = huey.immediate
    huey.immediate = False  # as in the consumer (tests run tasks immediately, in the caller's transaction)
    try:
        check_release_connection(app, release_connection)
    finally:
        huey.immediate = immediate


def check_release_connection(app, release_connection):
    with app.app_context():
        Contact.select().count()
        broken = db.connection()
        broken.close()  # PostgreSQL restarted, or the network dropped
        release_connection(None, None, None)
        assert db.is_closed()
        assert Contact.select().count() == 0  # the next task opens a new connection
        kept = db.connection()
        release_connection(None, None, None)
        assert db.connection() is kept  # a clean one is kept for the next task
        release_connection(None, None, RuntimeError("the task failed"))
        assert db.is_closed()
