"""LOFT_QUEUE_URL picks huey's queue: unset, the SQLite file as always; redis://..., RedisHuey (LOFT_REDIS_URL
is its older name). The settings are read when `tasks` is imported, so those cases run in a fresh Python;
the task that really goes through Redis uses a redis-server this module starts on loopback."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import redis
from huey import RedisHuey
from huey import SqliteHuey

from app.config import ROOT
from tasks import queue_for
from tests.conftest import free_port

SHOW_QUEUE = ("import app, tasks; q = tasks.huey; "
              "print(type(q).__name__, getattr(q.storage, 'filename', ''), "
              "q.storage.pool.connection_kwargs if hasattr(q.storage, 'pool') else '')")


def queue_in_fresh_python(tmp_path, **settings):
    env = {name: value for name, value in os.environ.items()
           if name not in ("LOFT_QUEUE_URL", "LOFT_REDIS_URL", "LOFT_HUEY_PATH")}
    env.update(LOFT_DOTENV="0", LOFT_HUEY_PATH=str(tmp_path / "queue" / "huey.db"), **settings)
    done = subprocess.run([sys.executable, "-c", SHOW_QUEUE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_without_a_queue_url_the_queue_is_the_sqlite_file(tmp_path):
    shown = queue_in_fresh_python(tmp_path)

    assert shown.startswith(f"SqliteHuey {tmp_path / 'queue' / 'huey.db'}")
    assert (tmp_path / "queue").is_dir()


def test_a_redis_queue_url_makes_a_redis_queue(tmp_path):
    shown = queue_in_fresh_python(tmp_path, LOFT_QUEUE_URL="redis://127.0.0.1:6390/4")

    assert shown.startswith("RedisHuey")
    assert "'port': 6390" in shown and "'db': 4" in shown
    assert not (tmp_path / "queue").exists()  # no SQLite file made beside it


def test_loft_redis_url_still_works_and_loft_queue_url_wins(tmp_path):
    assert queue_in_fresh_python(tmp_path, LOFT_REDIS_URL="redis://127.0.0.1:6391/0").startswith("RedisHuey")
    both = queue_in_fresh_python(tmp_path, LOFT_REDIS_URL="redis://127.0.0.1:6391/0",
                                 LOFT_QUEUE_URL="redis://127.0.0.1:6392/0")
    assert "'port': 6392" in both


def test_a_queue_url_that_is_not_redis_is_refused_in_words(tmp_path):
    shown = queue_in_fresh_python(tmp_path, LOFT_QUEUE_URL="amqp://guest:secret@127.0.0.1/")

    assert "LOFT_QUEUE_URL must be empty (the SQLite queue) or a Redis URL" in shown
    assert "secret" not in shown


def test_queue_for_builds_either_queue_without_a_server(tmp_path):
    assert isinstance(queue_for("", str(tmp_path / "q" / "huey.db")), SqliteHuey)
    queue = queue_for("redis://127.0.0.1:1/0", str(tmp_path / "unused.db"))  # port 1: nothing listens there
    assert isinstance(queue, RedisHuey)
    assert not (tmp_path / "unused.db").exists()


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on loopback, stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (or run .ci/services.sh start)")
    port = free_port()
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
                               "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_a_task_runs_through_the_redis_queue(redis_url, tmp_path):
    queue = queue_for(redis_url, str(tmp_path / "unused.db"))

    @queue.task()
    def add(a, b):
        return a + b

    result = add(2, 3)
    assert queue.pending_count() == 1  # waiting in Redis, not run inline
    consumer = queue.create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        assert result.get(blocking=True, timeout=20) == 5
    finally:
        consumer.stop(graceful=True)
    assert queue.pending_count() == 0
