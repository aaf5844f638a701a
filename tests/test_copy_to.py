"""`flask db copy-to`: an SQLite Loft copied into an empty, migrated PostgreSQL database, row for row.

The source is a real SQLite database holding a sent campaign (made by the sending engine against a
loopback SMTP server) plus a row in every other table; the target is a real PostgreSQL server: the
one `.ci/services.sh start` exported as LOFT_TEST_DATABASE_URL, else a throwaway cluster this module
starts on loopback. Without PostgreSQL binaries the tests skip, saying so.
"""
import datetime
import fcntl
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid

import peewee
import psycopg
import pytest
from peewee import SqliteDatabase
from playhouse.migrations import Runner

from app import create_app
from app.backup import copy as database_copy
from app.backup import running
from app.cli import MIGRATIONS_DIR
from app.cli import migrate
from app.db import JSONField
from app.db import db
from app.db import id_high_water
from app.db import open_database
from app.models import Campaign
from app.models import Contact
from app.models import HealthProbe
from app.models import Send
from tests.conftest import free_port
from tests.sending_support import launched
from tests.sending_support import make_team
from tests.sending_support import run_until_settled

MOMENT = datetime.datetime(2026, 12, 3, 10, 20, 30, 123456)


def _pg_bindir():
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@pytest.fixture(scope="module")
def postgres_server():
    """A URL of a PostgreSQL server's maintenance database, for creating one database per test."""
    shared = os.environ.get("LOFT_TEST_DATABASE_URL", "")
    if shared.startswith("postgres"):
        yield shared
        return
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql, or run "
                    "`.ci/services.sh start` and export what it prints")
    # Under /tmp rather than pytest's root-only folder: as root, the cluster must belong to another user.
    home = tempfile.mkdtemp(prefix="loft-copy-pg-", dir="/tmp")
    os.chmod(home, 0o755)
    as_owner = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        as_owner = ["runuser", "-u", "nobody", "--"]
    data, port = os.path.join(home, "data"), free_port()
    subprocess.run(as_owner + [f"{bindir}/initdb", "-D", data, "-U", "loft", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(as_owner + [f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(home, "server.log"), "-w",
                               "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={home} "
                                     "-c fsync=off -c synchronous_commit=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://loft@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_owner + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def new_database(postgres_server):
    """new_database() -> the URL of a new, empty PostgreSQL database; each is dropped after the test."""
    names = []

    def create():
        names.append("copy_" + uuid.uuid4().hex[:12])
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{names[-1]}"')
        return postgres_server.rsplit("/", 1)[0] + "/" + names[-1]
    yield create
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_target(new_database):
    """A new PostgreSQL database with every migration applied and nothing else."""
    url = new_database()
    database = open_database(url)
    migrate(database)
    database.close()
    return url


@pytest.fixture
def sqlite_app(tmp_path):
    """A Loft on its own SQLite file (whatever database the rest of the run uses): copy-to's source."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'loft.db'}",
                      "IMPORT_DIR": str(tmp_path / "imports"), "MEDIA_DIR": str(tmp_path / "media"),
                      "CATCHER_PORT": free_port(), "BASE_URL": "http://loft.test", "MAIL_ALLOW_PRIVATE": True})
    with app.app_context():
        migrate()
        assert isinstance(db.obj, SqliteDatabase)
        yield app
    db.close()


def _value_for(field, model):
    """A value of the field's type, with the awkward parts in it: non-ASCII text, microseconds, JSON."""
    if isinstance(field, peewee.ForeignKeyField):
        parent = field.rel_model.select(field.rel_field).order_by(field.rel_field).first()
        return getattr(parent, field.rel_field.name) if parent else None
    if isinstance(field, JSONField):
        if field.empty is list:
            return [1, "Grüße", {"nested": True}]
        return {"note": "Grüße ✓", "count": 3, "on": False, "none": None}
    if isinstance(field, peewee.BooleanField):
        return True
    if isinstance(field, peewee.DateTimeField):
        return MOMENT
    if isinstance(field, peewee.DateField):
        return MOMENT.date()
    if isinstance(field, peewee.FloatField):
        return 2.5
    if isinstance(field, peewee.IntegerField):
        return 7
    if isinstance(field, peewee.BlobField):
        return b"\x00\x01binary\xff"
    return f"{model._meta.table_name[:20]} «ü» {field.name}"[:getattr(field, "max_length", None) or 255]


def fill_every_table():
    """One row in each table the sent campaign left empty, parents first."""
    for model in database_copy.every_model():
        if model.select().exists():
            continue
        values = {field.name: _value_for(field, model) for field in model._meta.sorted_fields
                  if not isinstance(field, peewee.AutoField)}
        model.insert(**values).execute()


def rows_of(model, database):
    fields = model._meta.sorted_fields
    return list(model.select(*fields).order_by(*fields[:1]).tuples().execute(database))


def test_copy_to_copies_every_row_of_every_table_and_keeps_the_ids(sqlite_app, empty_target, smtp):
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 12, server.port)
    run_until_settled(campaign.id)
    assert Send.select().where(Send.campaign == campaign.id, Send.status == "sent").count() == 12
    resend = Campaign.create(team=team, name="Resend", parent=campaign, from_email="news@acme.test",
                             subject="Again", body="<p>Again</p>", state="draft")
    fill_every_table()
    # An id handed out and then deleted must never come back, after the move too.
    gone = Contact.create(team=team, email="gone@example.com", domain="example.com")
    Contact.delete_by_id(gone.id)
    source = db.obj
    assert all(model.select().exists() for model in database_copy.every_model())

    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])

    assert result.exit_code == 0, result.output
    assert "every count matches" in result.output
    assert re.search(rf"^campaign +{Campaign.select().count()} +{Campaign.select().count()}$", result.output, re.M)
    target = open_database(empty_target)
    try:
        for model in database_copy.every_model():
            assert rows_of(model, target) == rows_of(model, source), model._meta.table_name
        assert Campaign.get_by_id(resend.id).parent_id == campaign.id
        marks = id_high_water(target)
        assert marks["contact"] == gone.id
        # The next row each table hands out on PostgreSQL comes after every id the SQLite file ever gave.
        fresh = Contact.insert(team=team.id, email="new@example.com", domain="example.com").execute(target)
        assert fresh == gone.id + 1
        column_types = dict(target.execute_sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'campaign'").fetchall())
        assert column_types["audience"] == "jsonb"
        assert column_types["track_opens"] == "boolean"
        assert column_types["created_at"].startswith("timestamp")
    finally:
        target.close()


def test_copy_to_refuses_a_target_that_holds_data(sqlite_app, empty_target):
    make_team("Acme")
    first = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])
    assert first.exit_code == 0, first.output

    second = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])

    assert second.exit_code != 0
    assert "The target is not empty: team" in second.output
    target = open_database(empty_target)
    try:
        assert database_copy.models.Team.select().count(target) == 1
    finally:
        target.close()


def test_copy_to_refuses_a_target_without_the_migrations(sqlite_app, new_database):
    make_team("Acme")
    bare = new_database()

    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", bare])

    assert result.exit_code != 0
    assert "The target is not migrated" in result.output
    assert "flask db upgrade" in result.output
    target = open_database(bare)
    try:
        assert target.get_tables() == []
    finally:
        target.close()


def test_copy_to_refuses_a_target_at_another_migration(sqlite_app, empty_target):
    target = open_database(empty_target)
    history = Runner(target, MIGRATIONS_DIR).History
    newest = max(name for (name,) in history.select(history.name).tuples())
    history.delete().where(history.name == newest).execute()
    target.close()

    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])

    assert result.exit_code != 0
    assert "The target is at" in result.output and f"this database is at {newest}" in result.output


def test_a_failed_copy_leaves_the_target_empty(sqlite_app, empty_target, monkeypatch):
    team = make_team("Acme")
    for i in range(30):
        Contact.create(team=team, email=f"reader{i}@example.com", domain="example.com")
    # A value PostgreSQL refuses (text holding a NUL byte) in the last contact: the copy of earlier tables and
    # of the contacts before it must not stay behind.
    Contact.update(name="bad\x00name").where(Contact.email == "reader29@example.com").execute()
    monkeypatch.setattr(database_copy, "ROWS_PER_BATCH", 10)  # several batches before the bad row

    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])

    assert result.exit_code != 0
    assert "Copying contact failed after" in result.output and "nothing was kept in the target" in result.output
    target = open_database(empty_target)
    try:
        assert database_copy.models.Team.select().count(target) == 0
        assert Contact.select().count(target) == 0
        assert HealthProbe.select().count(target) == 1  # the migrations' own row is still there
    finally:
        target.close()


def test_copy_to_streams_a_table_in_batches(sqlite_app, empty_target, monkeypatch):
    team = make_team("Acme")
    Contact.insert_many([{"team": team.id, "email": f"r{i}@example.com", "domain": "example.com"}
                         for i in range(250)]).execute()
    monkeypatch.setattr(database_copy, "ROWS_PER_BATCH", 60)
    progress = []
    target = open_database(empty_target)
    try:
        counts = database_copy.copy_database(db.obj, target, MIGRATIONS_DIR,
                                             progress=lambda table, rows: progress.append((table, rows)))
    finally:
        target.close()

    assert [rows for table, rows in progress if table == "contact"] == [60, 120, 180, 240, 250]
    assert [(c.source, c.target) for c in counts if c.table == "contact"] == [(250, 250)]


def test_copy_to_refuses_when_this_loft_is_not_on_sqlite(sqlite_app, empty_target):
    sqlite_app.config["DATABASE_URL"] = empty_target

    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])

    assert result.exit_code != 0
    assert "LOFT_DATABASE_URL is not an SQLite file" in result.output


def test_copy_to_refuses_while_a_loft_process_uses_the_database(sqlite_app, empty_target):
    make_team("Acme")
    database_file = running.sqlite_path(sqlite_app.config["DATABASE_URL"])
    # What every web, worker and mail process holds while it runs (app/backup/running.py).
    mark = os.open(running.lock_path(database_file), os.O_RDONLY | os.O_CREAT)
    fcntl.flock(mark, fcntl.LOCK_SH)
    try:
        refused = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target])
    finally:
        os.close(mark)

    assert refused.exit_code != 0
    assert "Refusing to copy: a Loft process (web, worker or mail) is running on this database" in refused.output
    target = open_database(empty_target)
    try:
        assert database_copy.models.Team.select().count(target) == 0
    finally:
        target.close()
    assert sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", empty_target]).exit_code == 0


def test_copy_to_says_when_the_target_cannot_be_reached(sqlite_app):
    make_team("Acme")

    result = sqlite_app.test_cli_runner().invoke(
        args=["db", "copy-to", f"postgresql://loft:hunter2@127.0.0.1:{free_port()}/loft"])

    assert result.exit_code != 0
    assert "Cannot connect to the target: connection failed" in result.output
    assert "hunter2" not in result.output


def test_copy_to_refuses_a_target_that_is_not_postgresql(sqlite_app, tmp_path):
    result = sqlite_app.test_cli_runner().invoke(args=["db", "copy-to", f"sqlite:///{tmp_path / 'other.db'}"])

    assert result.exit_code != 0
    assert "The target must be a PostgreSQL database" in result.output
    assert not (tmp_path / "other.db").exists()
