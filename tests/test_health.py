"""/health tells the truth when the database cannot be written or is damaged, and when the queue
cannot be written (issue 9.8 and 9.11): SELECT 1 answering is not enough."""
import sqlite3

import pytest
from huey import SqliteHuey
from peewee import SqliteDatabase

from app.db import SQLITE_OPTIONS
from app.db import db
from app.db import init_db
from app.health import services
from tests.backup_support import corrupt
from tests.stack_support import ON_POSTGRES
from tests.stack_support import sqlite_only


def live_file(app):
    return app.config["DATABASE_URL"][len("sqlite:///"):]


@pytest.fixture
def reopen(app):
    """Rebind the app's database (read-only, ...) for one test, and give the real one back after."""
    def rebind(database):
        with app.app_context():
            db.close()
        db.initialize(database)
    yield rebind
    with app.app_context():
        db.close()
    init_db(app.config["DATABASE_URL"])


def read_only_open(path):
    # Tests run as root, where chmod does not stop writes: SQLite's own read-only modes do, like a
    # read-only mount or a file the service user may not write.
    return SqliteDatabase(f"file:{path}?mode=ro", uri=True, **SQLITE_OPTIONS)


def query_only(path):
    options = dict(SQLITE_OPTIONS, pragmas=dict(SQLITE_OPTIONS["pragmas"], query_only=1))
    return SqliteDatabase(path, **options)


def test_health_writes_its_probe_row(app, client):
    response = client.get("/health")
    assert response.status_code == 200
    with app.app_context():
        assert db.execute_sql("SELECT checked_at FROM health_probe WHERE id = 1").fetchone()[0] is not None


@sqlite_only("opens the SQLite file read-only")
@pytest.mark.parametrize("opener", [read_only_open, query_only], ids=["read-only file", "query_only"])
def test_health_is_degraded_when_the_database_cannot_be_written(app, client, reopen, opener):
    reopen(opener(live_file(app)))
    with app.app_context():
        assert db.execute_sql("SELECT count(*) FROM team").fetchone()  # reads still answer

    response = client.get("/health")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["database"].startswith("error: cannot write")
    assert "readonly" in body["database"] or "read-only" in body["database"] or "query_only" in body["database"]


@sqlite_only("damages the SQLite file; PostgreSQL checks its own pages")
def test_health_is_degraded_when_the_database_is_corrupt(app, client):
    with app.app_context():
        db.close()
    corrupt(live_file(app))
    with app.app_context():
        assert db.execute_sql("SELECT 1").fetchone()  # the old check: still "answers"

    response = client.get("/health")

    assert response.status_code == 503
    assert response.get_json()["database"].startswith("error: corrupt")


@sqlite_only("damages the SQLite file; PostgreSQL checks its own pages")
def test_the_integrity_check_runs_once_per_interval_per_database(app, client, monkeypatch):
    assert client.get("/health").get_json()["database"] == "ok"
    with app.app_context():
        db.close()
    corrupt(live_file(app))
    # Within the interval the last verdict stands (quick_check reads the whole file: not every second) ...
    assert client.get("/health").get_json()["database"] == "ok"
    # ... and the next check after it finds the damage.
    monkeypatch.setattr(services, "INTEGRITY_EVERY", 0)
    assert client.get("/health").get_json()["database"].startswith("error: corrupt")


def test_health_is_degraded_when_the_queue_cannot_be_written(app, tmp_path):
    queue = SqliteHuey("loft-test", filename=str(tmp_path / "huey.db"))
    with app.app_context():
        assert services.health("x", queue)["status"] == "ok"
        queue.storage.conn.execute("PRAGMA query_only=1")  # as a read-only huey.db would
        report = services.health("x", queue)
    assert report["status"] == "degraded"
    assert report["queue"].startswith("error: cannot write")
    assert report["database"] == "ok"
    sqlite3.connect(tmp_path / "huey.db").close()


@pytest.fixture
def tiny_disk(app, tmp_path):
    """The app's database moved onto a real 4 MB file system (tmpfs), which a test can fill up."""
    if ON_POSTGRES:
        pytest.skip("SQLite only: moves the SQLite file onto a small disk; PostgreSQL's disk is the server's")
    import shutil
    import subprocess
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root privileges)")
    with app.app_context():
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    shutil.copy(live_file(app), mount_point / "loft.db")
    db.initialize(SqliteDatabase(str(mount_point / "loft.db"), **SQLITE_OPTIONS))
    yield mount_point
    with app.app_context():
        db.close()
    init_db(app.config["DATABASE_URL"])
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(folder):
    """Write zeros until not one more page fits."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (65536, 4096):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


def test_health_is_degraded_when_the_disk_is_full(client, tiny_disk, monkeypatch):
    monkeypatch.setattr(services, "DISK_LOW_BYTES", 0)  # only the write itself decides here
    worker = sqlite3.connect(tiny_disk / "loft.db")  # another process's connection keeps -wal and -shm in place
    worker.execute("SELECT count(*) FROM team").fetchone()
    assert client.get("/health").status_code == 200
    fill(tiny_disk)
    with client.application.app_context():
        assert db.execute_sql("SELECT count(*) FROM team").fetchone()  # reads still answer

    response = client.get("/health")

    worker.close()
    assert response.status_code == 503
    assert response.get_json()["database"].startswith("error: cannot write")
    assert "full" in response.get_json()["database"]


def test_health_is_degraded_when_the_disk_is_almost_full(client, tiny_disk):
    response = client.get("/health")  # 4 MB in all: below the margin writes need

    assert response.status_code == 503
    assert response.get_json()["database"].startswith("error: disk almost full")
