"""The tracking hot path: the WSGI fast path and the buffered event writer (issue 5 speed).

Real databases throughout (a SQLite file, or PostgreSQL under make test-pg): the app fixture's
database read by a connection of the test's own, a second connection holding SQLite's write lock
for the "database busy" case, a real child Python process that exits normally, and a real
gunicorn started from the Procfile's command line and stopped with SIGTERM or SIGINT.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg
import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from app import tokens
from app.config import ROOT
from app.db import SQLITE_OPTIONS
from app.db import open_database
from app.models import Contact
from app.models import Event
from app.models import Link
from app.models import utcnow
from app.tracking import fastpath
from app.tracking import recorder
from app.tracking import services
from peewee import SqliteDatabase
from tests.tracking_support import BROWSER
from tests.tracking_support import make_campaign
from tests.tracking_support import make_contact
from tests.tracking_support import make_send
from tests.ports import free_port
from tests.stack_support import sqlite_only
from tests.tracking_support import make_team


@pytest.fixture
def world(ctx):
    team = make_team()
    contacts = [make_contact(team, email=f"reader{i}@example.com", name=f"Reader {i}") for i in range(5)]
    campaign = make_campaign(team)
    sends = [make_send(campaign, contact) for contact in contacts]
    link = Link.create(campaign=campaign, url="https://example.org/read?utm_source=loft&x=1")
    return dict(team=team, contacts=contacts, campaign=campaign, sends=sends, link=link)


def db_path(app):
    return app.config["DATABASE_URL"][len("sqlite:///"):]


def row(world, i=0, type="opened", active=True, team_id=None):
    """A recorder row for contact i, as services builds it."""
    data = {"machine": False, "send": world["sends"][i].id, "ua": BROWSER, "ip": "203.0.113.9", "n": i}
    return ((team_id or world["team"].id), world["contacts"][i].id, world["campaign"].id, type,
            Event.at.db_value(utcnow()), Event.data.db_value(data), active)


def stored(app):
    """(contact_id, type, data) of every event, read by a connection of our own."""
    database = open_database(app.config["DATABASE_URL"])
    try:
        return [(c, t, json.loads(d) if isinstance(d, str) else d) for c, t, d in database.execute_sql(
            "SELECT contact_id, type, data FROM event ORDER BY id")]
    finally:
        database.close()


def wait_for(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- The fast path answers like the views -----------------------------------------------

def flask_only(app):
    """A client for the Flask app behind the fast path (the reference behaviour)."""
    assert isinstance(app.wsgi_app, fastpath.FastPath)
    return Client(app.wsgi_app.wsgi_app, Response)


def comparable(response):
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
    return response.status_code, headers, response.get_data()


def counting_flask(app):
    """Count the requests the fast path hands on to Flask."""
    calls = []
    inner = app.wsgi_app.wsgi_app

    def counted(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)
    app.wsgi_app.wsgi_app = counted
    return calls


CLIENT = {"REMOTE_ADDR": "203.0.113.9"}


def test_the_fast_path_answers_exactly_like_the_views(world, app):
    send = world["sends"][0]
    pixel = f"/o/{tokens.sign('open', send.id)}.gif"
    click = f"/c/{tokens.sign('click', send.id)}/{world['link'].id}"
    public = app.test_client(use_cookies=False)
    reference = flask_only(app)
    for url in (pixel, click, f"/o/{tokens.sign('open', send.id + 999)}.gif"):
        fast = public.get(url, headers={"User-Agent": BROWSER, "X-Request-ID": "abc-123"}, environ_base=CLIENT)
        slow = reference.get(url, headers={"User-Agent": BROWSER, "X-Request-ID": "abc-123"}, environ_base=CLIENT)
        assert comparable(fast) == comparable(slow), url
        assert fast.headers["X-Request-ID"] == slow.headers["X-Request-ID"] == "abc-123"
    assert public.get(pixel).headers["X-Request-ID"] != public.get(pixel).headers["X-Request-ID"]
    # Two opens and one click by each path (the unknown send records nothing).
    assert [(c, t) for c, t, _ in stored(app)] == [(world["contacts"][0].id, "opened"),
                                                   (world["contacts"][0].id, "opened"),
                                                   (world["contacts"][0].id, "clicked"),
                                                   (world["contacts"][0].id, "clicked"),
                                                   (world["contacts"][0].id, "opened"),
                                                   (world["contacts"][0].id, "opened")]
    data = [d for _, t, d in stored(app)]
    assert data[0] == data[1] and data[2] == data[3]  # the same data either way
    assert data[0]["ip"] == "203.0.113.9" and data[0]["ua"] == BROWSER and data[2]["url"] == world["link"].url


def test_the_fast_path_handles_the_hot_requests_and_hands_on_the_rest(world, app):
    send = world["sends"][0]
    public = app.test_client(use_cookies=False)
    calls = counting_flask(app)
    good_click = f"/c/{tokens.sign('click', send.id)}/{world['link'].id}"
    assert public.get(f"/o/{tokens.sign('open', send.id)}.gif").status_code == 200
    assert public.get(good_click).status_code == 302
    assert public.get("/o/not-a-token.gif").status_code == 200  # the pixel whatever the token
    assert calls == []
    handed_on = [
        ("HEAD", good_click, 302),  # recorded by the view, as a bot click
        ("GET", f"/c/{tokens.sign('open', send.id)}/{world['link'].id}", 404),  # a token for another purpose
        ("GET", f"/c/{tokens.sign('click', send.id)}/{world['link'].id + 1}", 404),  # not this campaign's link
        ("GET", f"/c/{tokens.sign('click', send.id)}/0{world['link'].id}", 302),  # not canonical: Flask decides
        ("GET", f"/o/{tokens.sign('open', send.id)}.gif/", 404),
        ("POST", f"/o/{tokens.sign('open', send.id)}.gif", 405),
    ]
    for method, url, status in handed_on:
        response = public.open(url, method=method, headers={"User-Agent": BROWSER})
        assert response.status_code == status, (method, url)
    assert calls == [url for _, url, _ in handed_on]
    page = public.get(handed_on[1][1])
    assert page.mimetype == "text/html" and "Set-Cookie" not in page.headers


# --- The writer ------------------------------------------------------------------------

def make_recorder(app, **options):
    return recorder.Recorder(open_database(app.config["DATABASE_URL"]), services._sql(), **options)


def test_immediate_mode_writes_before_returning(world, app):
    writer = make_recorder(app)
    assert writer.submit(row(world, 0)) is True
    assert [c for c, _, _ in stored(app)] == [world["contacts"][0].id]
    assert Contact.get_by_id(world["contacts"][0].id).last_activity_at is not None


def test_rows_are_written_within_the_interval_with_their_data(world, app):
    writer = make_recorder(app, flush_seconds=0.05)
    try:
        rows = [row(world, 0), row(world, 1, type="clicked", active=False), row(world, 2)]
        for r in rows:
            assert writer.submit(r) is True
        wait_for(lambda: len(stored(app)) == 3)
        events = stored(app)
        assert [(c, t, d["n"]) for c, t, d in events] == [(world["contacts"][i].id, t, i)
                                                           for i, t in ((0, "opened"), (1, "clicked"), (2, "opened"))]
        event = Event.select().where(Event.contact == world["contacts"][0].id).get()
        assert (event.team_id, event.campaign_id, event.type) == (world["team"].id, world["campaign"].id, "opened")
        assert Event.at.db_value(event.at) == rows[0][4]
        # Only human-looking activity moves last_activity_at.
        assert Contact.get_by_id(world["contacts"][0].id).last_activity_at is not None
        assert Contact.get_by_id(world["contacts"][1].id).last_activity_at is None
    finally:
        assert writer.close() == 0


def test_a_full_buffer_is_written_before_the_interval_ends(world, app):
    writer = make_recorder(app, flush_seconds=3600, max_rows=4)
    try:
        for i in range(3):
            writer.submit(row(world, i))
        time.sleep(0.2)
        assert stored(app) == []  # under the threshold: waits for the (long) interval
        writer.submit(row(world, 3))
        wait_for(lambda: len(stored(app)) == 4)
        assert writer.flushes == 1 and writer.written == 4
    finally:
        writer.close()


def test_close_writes_everything_left(world, app):
    writer = make_recorder(app, flush_seconds=3600)
    for i in range(5):
        writer.submit(row(world, i))
    assert stored(app) == []
    assert writer.close() == 0
    assert sorted(d["n"] for _, _, d in stored(app)) == [0, 1, 2, 3, 4]


@sqlite_only("a second connection holds the file's write lock; PostgreSQL has no database-wide write lock to hold")
def test_a_flush_that_finds_the_database_locked_keeps_the_rows_and_retries(world, app):
    database = SqliteDatabase(db_path(app), **{**SQLITE_OPTIONS, "timeout": 0.2})
    writer = recorder.Recorder(database, services._sql(), flush_seconds=3600)
    blocker = sqlite3.connect(db_path(app), isolation_level=None)
    try:
        for i in range(3):
            writer.submit(row(world, i))
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        assert writer.flush() == 0
        assert len(writer._rows) == 3  # nothing lost, nothing written
        writer.submit(row(world, 3))
        blocker.execute("ROLLBACK")
        assert writer.flush() == 4
        assert [d["n"] for _, _, d in stored(app)] == [0, 1, 2, 3]  # still in order
    finally:
        blocker.close()
        assert writer.close() == 0


def _drop_connection_under_peewee(database):
    """What a database restart does to a kept connection: gone at the server, still open to peewee."""
    connection = database.connection()
    if isinstance(connection, sqlite3.Connection):
        connection.close()
        return
    pid = connection.info.backend_pid
    other = psycopg.connect(connection.info.dsn, password=connection.info.password, autocommit=True)
    try:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        other.close()


def test_a_connection_the_server_dropped_is_replaced_and_nothing_is_lost(world, app):
    writer = make_recorder(app, flush_seconds=3600)
    try:
        writer.submit(row(world, 0))
        assert writer.flush() == 1  # the writer's connection is open and kept
        _drop_connection_under_peewee(writer.database)
        writer.submit(row(world, 1))
        writer.submit(row(world, 2))
        assert writer.flush() == 0  # the dead connection fails; the rows are kept
        assert len(writer._rows) == 2
        assert writer.flush() == 2  # a new connection writes them
        assert [d["n"] for _, _, d in stored(app)] == [0, 1, 2]
    finally:
        assert writer.close() == 0


def test_an_unforeseen_error_in_a_flush_keeps_the_rows(world, app, monkeypatch):
    writer = make_recorder(app, flush_seconds=3600)
    real_store = writer.store
    calls = []

    def store_failing_once(rows, database=None):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("something nobody foresaw")
        return real_store(rows, database)

    monkeypatch.setattr(writer, "store", store_failing_once)
    try:
        for i in range(3):
            writer.submit(row(world, i))
        assert writer.flush() == 0
        assert len(writer._rows) == 3
        assert writer.flush() == 3
        assert sorted(d["n"] for _, _, d in stored(app)) == [0, 1, 2]
    finally:
        assert writer.close() == 0


def test_one_bad_row_does_not_take_the_batch_with_it(world, app):
    writer = make_recorder(app, flush_seconds=3600)
    writer.submit(row(world, 0))
    writer.submit(row(world, 1, team_id=987654))  # no such team: the foreign key refuses it
    writer.submit(row(world, 2))
    assert writer.flush() == 2
    assert writer.dropped == 1 and writer._rows == []
    assert [d["n"] for _, _, d in stored(app)] == [0, 2]
    assert writer.close() == 0


def test_a_normal_exit_writes_the_buffered_hits(world, app, tmp_path):
    """A real process that records opens with a one-hour interval and exits normally."""
    send_ids = [s.id for s in world["sends"]]
    script = (
        "import sys\n"
        "from app import create_app\n"
        "from app.tracking import services\n"
        "app = create_app()\n"
        "assert not app.config['TESTING']\n"
        f"for send_id in {send_ids!r}:\n"
        "    assert services.record_open(send_id, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0', '198.51.100.7')\n"
        "from app.tracking import recorder\n"
        "assert all(r.written == 0 for r in recorder._recorders.values())  # nothing written yet\n"
        "sys.exit(0)\n")
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_TRACKING_FLUSH_MS="3600000", LOFT_LOG_LEVEL="WARNING", LOFT_HUEY_PATH=str(tmp_path / "huey.db"))
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    assert sorted(d["send"] for _, t, d in stored(app) if t == "opened") == sorted(send_ids)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM graceful", "SIGINT quick"])
def test_gunicorn_stopped_writes_every_acknowledged_hit(world, app, tmp_path, stop):
    """The Procfile's web command, a one-hour flush interval, real HTTP, then a graceful (SIGTERM)
    or quick (SIGINT, as Ctrl-C under honcho) stop of the master."""
    command = next(line.partition(":")[2].strip() for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    port = free_port()
    env = dict(os.environ, LOFT_BIND=f"127.0.0.1:{port}", LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_SECRET_KEY="test-secret", LOFT_TRACKING_FLUSH_MS="3600000", LOFT_LOG_LEVEL="WARNING",
               LOFT_HUEY_PATH=str(tmp_path / "huey.db"))
    log_path = tmp_path / "server.log"  # a file, not a pipe: nothing read from it could ever hold the server up
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=log_file)
    server_log = lambda: log_path.read_text(errors="replace")[-4000:]  # noqa: E731
    try:
        for _ in range(300):
            assert server.poll() is None, server_log()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/o/x.gif", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        answered = 0
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {
            "redirect_request": lambda *args: None}))
        for send in world["sends"]:
            click = f"/c/{tokens.sign('click', send.id)}/{world['link'].id}"
            for url in (f"/o/{tokens.sign('open', send.id)}.gif", click):
                request = urllib.request.Request(f"http://127.0.0.1:{port}{url}", headers={"User-Agent": BROWSER})
                try:
                    with opener.open(request, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as redirect:
                    status = redirect.code
                assert status in (200, 302)
                answered += 1
        assert stored(app) == []  # acknowledged, still in the workers' buffers
    finally:
        server.send_signal(stop)
        code = server.wait(timeout=60)
    assert code == 0, server_log()
    events = stored(app)
    assert len(events) == answered == 10, server_log()
    assert sorted((d["send"], t) for _, t, d in events) == sorted(
        (s.id, t) for s in world["sends"] for t in ("opened", "clicked"))


def test_when_too_many_rows_wait_a_request_waits_for_room(world, app):
    writer = make_recorder(app, flush_seconds=3600, limit=3)
    try:
        for i in range(3):
            writer.submit(row(world, i))
        fourth = threading.Thread(target=writer.submit, args=(row(world, 3),))
        fourth.start()
        fourth.join(0.3)
        assert fourth.is_alive()  # not answered while nothing can be listed
        assert writer.flush() == 3
        fourth.join(5)
        assert not fourth.is_alive()
    finally:
        assert writer.close() == 0
    assert [d["n"] for _, _, d in stored(app)] == [0, 1, 2, 3]


def test_inside_a_transaction_of_the_app_hits_are_read_and_written_through_it(world, app):
    """A task or a script that records an open inside its own transaction sees its own Send and
    does not wait for the write lock that transaction holds."""
    from app.db import db
    from tests.tracking_support import make_send as new_send
    with db.atomic():
        contact = make_contact(world["team"], email="inside@example.com")
        send = new_send(world["campaign"], contact)  # not committed yet
        started = time.monotonic()
        data = services.record_open(send.id, BROWSER, "203.0.113.9")
        assert time.monotonic() - started < 2
        assert data is not None and data["send"] == send.id
    assert [(c, t) for c, t, _ in stored(app)] == [(contact.id, "opened")]


@sqlite_only("a second connection holds the file's write lock; PostgreSQL has no database-wide write lock to hold")
def test_the_writer_thread_retries_a_locked_database_until_it_can_write(world, app):
    database = SqliteDatabase(db_path(app), **{**SQLITE_OPTIONS, "timeout": 0.1})
    writer = recorder.Recorder(database, services._sql(), flush_seconds=0.02)
    blocker = sqlite3.connect(db_path(app), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        for i in range(3):
            assert writer.submit(row(world, i)) is True
        wait_for(lambda: writer._failing)  # the writer tried, and kept the rows
        assert stored(app) == [] and len(writer._rows) == 3
        blocker.execute("ROLLBACK")
        wait_for(lambda: len(stored(app)) == 3)
        assert [d["n"] for _, _, d in stored(app)] == [0, 1, 2]
    finally:
        blocker.close()
        assert writer.close() == 0
