"""Which stack the suite runs on, and the throwaway databases and queues for the PostgreSQL + Redis one.

With no settings the suite runs on SQLite and huey's SQLite queue, exactly as `make test` always has.
`make test-pg` (.ci/services.sh) starts a loopback PostgreSQL and Redis and sets:

    LOFT_TEST_DATABASE_URL=postgresql://loft@127.0.0.1:PORT/loft_test   the server; each test gets its own database
    LOFT_TEST_QUEUE_URL=redis://127.0.0.1:PORT/0                       a real queue, for tests that start a consumer

On PostgreSQL the migrations run once per session (and per xdist worker) into a template database; each test's
database is CREATE DATABASE ... TEMPLATE of it, STRATEGY FILE_COPY, dropped when the test ends: measured with
the suite running, create + drop took about 70 ms, where one TRUNCATE of the 58 tables with RESTART IDENTITY took
120 ms before re-inserting what the migrations seed (the default WAL_LOG copy took 250 ms).

A test that cannot run on one stack says so with `sqlite_only("why")` or `postgres_only("why")`: it is
reported as skipped with that reason (`pytest -rs`), never left out silently.
"""
import itertools
import logging
import os

import psycopg
import pytest
import redis

DATABASE_URL = os.environ.get("LOFT_TEST_DATABASE_URL", "")
QUEUE_URL = os.environ.get("LOFT_TEST_QUEUE_URL", "")
ON_POSTGRES = DATABASE_URL.startswith(("postgresql://", "postgres://"))
ON_REDIS = QUEUE_URL.startswith("redis://")


def sqlite_only(reason):
    return pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite only: {reason}")


def postgres_only(reason):
    return pytest.mark.skipif(not ON_POSTGRES, reason=f"PostgreSQL only (make test-pg): {reason}")


def _worker():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


class PostgresServer:
    """Creates and drops this session's databases on the test server, over one autocommit connection."""

    def __init__(self, url):
        self.base_url = url.rsplit("/", 1)[0]
        self.connection = psycopg.connect(url, autocommit=True)
        self.prefix = f"loft_{_worker()}_{os.getpid()}"
        self.numbers = itertools.count(1)

    def url(self, name):
        return f"{self.base_url}/{name}"

    def create(self, name, template=None):
        self.drop(name)
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop(self, name):
        # FORCE: a thread or subprocess the test started may still hold a connection.
        self.connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def template_name(self):
        return f"{self.prefix}_template"

    def next_test_name(self):
        return f"{self.prefix}_{next(self.numbers)}"

    def close(self):
        self.connection.close()


def redis_queue_url():
    """This worker's own Redis database, emptied: a consumer started by one test sees only its tasks."""
    number = 1 + int(_worker()[2:]) if _worker().startswith("gw") else 0
    url = QUEUE_URL.rsplit("/", 1)[0] + f"/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def queue_env(tmp_path):
    """The settings that give a subprocess (huey_consumer, flask, gunicorn) a real queue of its own: a
    SQLite queue file in the test's folder, or this worker's Redis database when LOFT_TEST_QUEUE_URL is set."""
    env = {"LOFT_HUEY_PATH": str(tmp_path / "huey.db"), "LOFT_QUEUE_URL": "", "LOFT_REDIS_URL": ""}
    if ON_REDIS:
        env["LOFT_QUEUE_URL"] = redis_queue_url()
    return env


class _StatementList(logging.Handler):
    def __init__(self, statements):
        super().__init__(logging.DEBUG)
        self.statements = statements

    def emit(self, record):
        if isinstance(record.msg, tuple):  # peewee logs (sql, params) for every statement it runs
            self.statements.append(record.msg[0])


@pytest.fixture
def sql_statements():
    """A list that receives every SQL statement peewee runs during the test, on either stack (SQLite's
    set_trace_callback exists only there)."""
    statements = []
    logger = logging.getLogger("peewee")
    handler, level = _StatementList(statements), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield statements
    logger.removeHandler(handler)
    logger.setLevel(level)
