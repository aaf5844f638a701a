"""The stack is chosen by URLs: SQLite and huey's SQLite queue with no settings, exactly as before;
PostgreSQL (psycopg 3) for a postgresql:// database URL, JSON columns as JSONB there; Redis for a redis://
queue URL. The tests marked postgres_only run under `make test-pg` and say so when skipped."""
import os
import subprocess
import sys
from pathlib import Path

import peewee
import pytest
from huey import RedisHuey
from peewee import PostgresqlDatabase

from app import models
from app.cli import migrate
from app.db import BaseModel
from app.db import JSONField
from app.db import db
from app.db import init_db
from tests.stack_support import ON_POSTGRES
from tests.stack_support import ON_REDIS
from tests.stack_support import postgres_only
from tests.stack_support import redis_queue_url

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9]*.py"))


def json_columns():
    tables = [value for value in vars(models).values()
              if isinstance(value, type) and issubclass(value, peewee.Model) and value is not BaseModel]
    return sorted({(model._meta.table_name, field.column_name) for model in tables
                   for field in model._meta.sorted_fields if isinstance(field, JSONField)})


def stack_seen_by_a_fresh_process(**settings):
    """What a new Loft process picks, with only `settings` (no LOFT_* from this shell, no .env)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LOFT_")}
    env.update(LOFT_DOTENV="0", LOFT_HUEY_PATH="/tmp/loft-stack-test-huey.db")
    env.update(settings)
    code = ("from app.config import Config; from tasks import huey; from app.db import init_db; "
            "database = init_db(Config.DATABASE_URL); "
            "print(Config.DATABASE_URL); print(type(database).__name__); print(type(huey).__name__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_no_settings_is_sqlite_and_the_sqlite_queue_as_before():
    url, database, queue = stack_seen_by_a_fresh_process()
    assert url == f"sqlite:///{ROOT / 'var' / 'loft.db'}"
    assert (database, queue) == ("PromptSqliteDatabase", "SqliteHuey")  # app.db: SQLite whose writers retry promptly


def test_a_postgresql_url_picks_postgresql_through_psycopg3():
    url, database, queue = stack_seen_by_a_fresh_process(LOFT_DATABASE_URL="postgresql://loft@127.0.0.1:9/loft")
    assert (url, database, queue) == ("postgresql://loft@127.0.0.1:9/loft", "PostgresqlDatabase", "SqliteHuey")
    database = PostgresqlDatabase("loft", host="127.0.0.1", port=9)  # no connection is made until used
    assert type(database._adapter).__name__ == "Psycopg3Adapter"


def test_a_redis_url_picks_huey_redis_queue():
    for setting in ("LOFT_QUEUE_URL", "LOFT_REDIS_URL"):
        _, database, queue = stack_seen_by_a_fresh_process(**{setting: "redis://127.0.0.1:9/0"})
        assert (database, queue) == ("PromptSqliteDatabase", "RedisHuey"), setting


def test_a_subprocess_queue_is_the_tests_own(queue_env, tmp_path):
    """queue_env gives a consumer started by a test its own queue: a file in the test's folder on SQLite,
    this worker's emptied Redis database under make test-pg."""
    _, _, queue = stack_seen_by_a_fresh_process(**queue_env)
    if ON_REDIS:
        assert queue == "RedisHuey" and queue_env["LOFT_QUEUE_URL"].startswith("redis://127.0.0.1:")
    else:
        assert queue == "SqliteHuey" and queue_env == {"LOFT_HUEY_PATH": str(tmp_path / "huey.db"),
                                                       "LOFT_QUEUE_URL": "", "LOFT_REDIS_URL": ""}


def test_json_columns_are_text_on_sqlite_and_jsonb_on_postgresql():
    """The column type each dialect writes for a JSONField (no server needed to compile DDL)."""
    sqlite, postgres = peewee.SqliteDatabase(":memory:"), PostgresqlDatabase("loft")

    class Document(peewee.Model):
        body = JSONField()

    for database, column in ((sqlite, '"body" TEXT NOT NULL'), (postgres, '"body" JSONB NOT NULL')):
        with database.bind_ctx([Document]):
            sql, _ = Document._schema._create_table(safe=False).query()
        assert column in sql, sql


@postgres_only("reads PostgreSQL's catalogue")
def test_every_json_column_is_jsonb_after_the_migrations(app):
    with app.app_context():
        types = dict(((table, column), kind) for table, column, kind in db.execute_sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()").fetchall())
    columns = json_columns()
    assert len(columns) > 20
    assert {column: types.get(column) for column in columns} == {column: "jsonb" for column in columns}


@postgres_only("the per-test database is a PostgreSQL one")
def test_each_test_gets_its_own_migrated_postgresql_database(app):
    assert app.config["DATABASE_URL"].startswith("postgresql://")
    assert app.config["DATABASE_URL"] != os.environ["LOFT_TEST_DATABASE_URL"]
    with app.app_context():
        assert isinstance(db.obj, PostgresqlDatabase)
        applied = [name for (name,) in db.execute_sql("SELECT name FROM schema_migration ORDER BY name")]
        assert applied == MIGRATIONS
        models.Team.create(name="Only here")
        assert models.Team.select().count() == 1


def _postgres_contents(database):
    tables = [name for (name,) in database.execute_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
    columns = database.execute_sql(
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, column_name").fetchall()
    indexes = database.execute_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname").fetchall()
    rows = {table: sorted(map(repr, database.execute_sql(f'SELECT * FROM "{table}"').fetchall()))
            for table in tables if table != "schema_migration"}
    migrations = database.execute_sql("SELECT name FROM schema_migration ORDER BY name").fetchall()
    return columns, indexes, rows, migrations


@postgres_only("the per-test database is copied from a PostgreSQL template")
def test_each_tests_database_copy_matches_a_fresh_migration_on_postgresql(app, postgres_server):
    """The template copy holds exactly what running every migration on an empty database gives."""
    with app.app_context():
        copied = _postgres_contents(db.obj)
        db.close()
    name = postgres_server.next_test_name() + "_fresh"
    fresh = init_db(postgres_server.create(name))
    try:
        assert migrate()[:1] == ["0001_initial"]
        assert _postgres_contents(fresh) == copied
    finally:
        fresh.close()
        init_db(app.config["DATABASE_URL"])  # the database proxy is process-wide: give it back
        postgres_server.drop(name)


@postgres_only("a second test sees a database without the first one's rows")
def test_the_next_test_does_not_see_the_previous_ones_rows(app):
    with app.app_context():
        assert models.Team.select().count() == 0


def test_json_documents_round_trip(app):
    """A nested document, unicode and all, reads back as written on either stack, and a key inside it is
    queryable with the same peewee expression."""
    document = {"plan": "pro", "nested": {"n": 3, "list": [1, "zwei", None]}, "name": "Zoë ✓"}
    with app.app_context():
        team = models.Team.create(name="Acme")
        contact = models.Contact.create(team=team, email="zoe@example.com", domain="example.com",
                                            attributes=document)
        assert models.Contact.get_by_id(contact.id).attributes == document
        found = models.Contact.select().where(models.Contact.attributes["plan"] == "pro")
        assert [row.id for row in found] == [contact.id]


def test_a_json_value_column_keeps_strings_and_null(app):
    with app.app_context():
        models.InstanceSetting.create(key="footer", value="{not a document, just text}")
        models.InstanceSetting.create(key="nothing", value=None)
        models.InstanceSetting.create(key="flags", value=[True, 2.5, "x"])
        models.InstanceSetting.create(key="blank", value="")
        assert {s.key: s.value for s in models.InstanceSetting.select()} == {
            "footer": "{not a document, just text}", "nothing": None, "flags": [True, 2.5, "x"], "blank": ""}


@pytest.mark.skipif(not ON_REDIS, reason="Redis only (make test-pg sets LOFT_TEST_QUEUE_URL)")
def test_the_redis_queue_is_this_workers_own_and_starts_empty():
    url = redis_queue_url()
    producer, consumer = RedisHuey("loft", url=url), RedisHuey("loft", url=url)

    @producer.task()
    def add(a, b):
        return a + b

    add(2, 3)
    assert consumer.pending_count() == 1
    assert redis_queue_url() == url and consumer.pending_count() == 0


def test_the_stack_flags_agree_with_the_settings():
    assert ON_POSTGRES == os.environ.get("LOFT_TEST_DATABASE_URL", "").startswith(("postgresql://", "postgres://"))
    assert init_db  # the module under test is importable on either stack
