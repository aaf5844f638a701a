"""`flask db backup` and `flask db restore` on real SQLite files, with real processes beside them (issue 9.8).

A backup taken while another process writes is one consistent snapshot; a restore with a stale -wal
left beside the database (after a crash) gives a good database; a restore refuses while a web/worker
process or any SQLite connection holds the database; restoring a backup taken mid-send pauses the
campaign and tells its team, so nobody gets the mail twice without a person deciding.
"""
import datetime
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest
from PIL import Image

from app.backup import restored as after_restore
from app.config import ROOT
from app.db import db
from app.media import services as media_services
from app.models import Campaign
from app.models import MediaItem
from app.models import Notice
from app.models import Team
from app.models import utcnow
from tests.backup_support import corrupt
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_campaign
from tests.sending_support import make_team
from tests.stack_support import ON_POSTGRES
from tests.stack_support import sqlite_only


@pytest.fixture
def ops(app, tmp_path):
    """The app with its own queue file (huey.db, in WAL mode like the worker's) beside the database."""
    if ON_POSTGRES:
        pytest.skip("SQLite only: flask db backup/restore copy the SQLite files; PostgreSQL is backed up with "
                    "pg_dump (docs/scaling.md)")
    huey_file = tmp_path / "huey.db"
    queue = sqlite3.connect(huey_file)
    queue.execute("PRAGMA journal_mode=wal")
    queue.execute("CREATE TABLE IF NOT EXISTS kv (queue TEXT, key TEXT, value BLOB, PRIMARY KEY (queue, key))")
    queue.execute("INSERT INTO kv VALUES ('loft', 'marker', 'before')")
    queue.commit()
    queue.close()
    app.config.update(HUEY_PATH=str(huey_file), QUEUE_URL="")
    with app.app_context():
        yield app


def cli(app, *args):
    db.close()  # the command runs in this thread: our connection would otherwise be one of its "users"
    result = app.test_cli_runner().invoke(args=list(args))
    return result


def live_file(app):
    return app.config["DATABASE_URL"][len("sqlite:///"):]


def subprocess_env(app):
    return dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_HUEY_PATH=app.config["HUEY_PATH"],
                LOFT_SECRET_KEY="test-secret", LOFT_QUEUE_URL="", LOFT_MEDIA_DIR=app.config["MEDIA_DIR"])


def team_names():
    return sorted(t.name for t in Team.select())


def integrity(path):
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()


# --- Backup ------------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sqlite3, sys, os
    path, stop = sys.argv[1], sys.argv[2]
    c = sqlite3.connect(path, timeout=30, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE IF NOT EXISTS pair_a (n INTEGER)")
    c.execute("CREATE TABLE IF NOT EXISTS pair_b (n INTEGER, pad TEXT)")
    n = 0
    while not os.path.exists(stop):
        n += 1
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO pair_a VALUES (?)", (n,))
        c.execute("INSERT INTO pair_b VALUES (?, ?)", (n, "x" * 2000))  # pages in the WAL, not yet checkpointed
        c.execute("COMMIT")
""")


def test_a_backup_taken_while_another_process_writes_is_consistent(ops, tmp_path):
    live = live_file(ops)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, live, str(stop)])
    try:
        reader = sqlite3.connect(live, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if reader.execute("SELECT count(*) FROM pair_b").fetchone()[0] >= 200:
                    break
            except sqlite3.OperationalError:
                pass  # the writer has not made its tables yet
            time.sleep(0.02)
        copies = []
        for name in ("during", "during.tar", "during.tar.gz"):
            committed = reader.execute("SELECT count(*) FROM pair_a").fetchone()[0]
            result = cli(ops, "db", "backup", str(tmp_path / "backups" / name))
            assert result.exit_code == 0, result.output
            copies.append((tmp_path / "backups" / name, committed))
        reader.close()
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert writer.returncode == 0
    for path, committed in copies:
        folder = path
        if path.suffix != "" or path.name.endswith(".tar.gz"):
            folder = tmp_path / ("unpacked-" + path.name)
            with tarfile.open(path) as tar:
                tar.extractall(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["format"] == "loft-backup" and manifest["loft_version"] == ops.config["VERSION"]
        assert manifest["migration"] and manifest["created_at"].endswith("Z")
        assert set(manifest["files"]) == {"loft.db", "huey.db"}
        copy = folder / "loft.db"
        assert not (folder / "loft.db-wal").exists()
        assert integrity(copy) == [("ok",)]
        connection = sqlite3.connect(copy)
        a = connection.execute("SELECT count(*), max(n) FROM pair_a").fetchone()
        b = connection.execute("SELECT count(*), max(n) FROM pair_b").fetchone()
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        connection.close()
        assert a == b  # every transaction whole, none half
        assert a[0] >= committed  # nothing committed before the backup is missing
        import hashlib
        for name, info in manifest["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == info["sha256"]


def test_a_backup_of_a_damaged_database_is_refused_and_writes_nothing(ops, tmp_path):
    corrupt(live_file(ops))
    result = cli(ops, "db", "backup", str(tmp_path / "nightly"))
    assert result.exit_code == 1
    assert "integrity check" in result.output
    assert not (tmp_path / "nightly").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".loft-backup-")]


def test_a_backup_never_overwrites_another(ops, tmp_path):
    assert cli(ops, "db", "backup", str(tmp_path / "b.tar.gz")).exit_code == 0
    again = cli(ops, "db", "backup", str(tmp_path / "b.tar.gz"))
    assert again.exit_code == 1 and "already exists" in again.output


# --- Restore -----------------------------------------------------------------------------------

CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sqlite3, sys
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("PRAGMA wal_autocheckpoint=0")  # everything stays in the -wal, as when a process dies mid-work
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE team SET name = 'After the backup'")
    columns = ", ".join(row[1] for row in c.execute("PRAGMA table_info(team)") if row[1] != "id")
    c.execute(f"INSERT INTO team ({columns}) SELECT {columns} FROM team")  # an id only the -wal knows
    c.execute("CREATE TABLE filler (pad TEXT)")
    for _ in range(300):
        c.execute("INSERT INTO filler VALUES (?)", ("y" * 3000,))
    c.execute("COMMIT")
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_restore_with_a_leftover_wal_file_gives_a_good_database_and_keeps_the_old_one(ops, tmp_path):
    make_team("Before the backup")
    assert cli(ops, "db", "backup", str(tmp_path / "nightly.tar.gz")).exit_code == 0
    live = live_file(ops)
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, live])
    assert os.path.getsize(live + "-wal") > 100_000  # the crash left its log beside the database
    huey_wal = ops.config["HUEY_PATH"] + "-wal"
    with open(huey_wal, "wb") as f:  # and a stale queue log (huey leaves one even after a clean stop)
        f.write(os.urandom(40_000))

    result = cli(ops, "db", "restore", str(tmp_path / "nightly.tar.gz"), "--yes")

    assert result.exit_code == 0, result.output
    assert integrity(live) == [("ok",)]
    assert integrity(ops.config["HUEY_PATH"]) == [("ok",)]
    assert team_names() == ["Before the backup"]
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("before-restore-")]
    assert str(aside) in result.output
    assert {"loft.db", "loft.db-wal", "huey.db", "huey.db-wal"} <= {p.name for p in aside.iterdir()}
    old = sqlite3.connect(aside / "loft.db")  # nothing is lost: the replaced data opens with its own log
    assert ("After the backup",) in old.execute("SELECT name FROM team").fetchall()
    [(in_the_wal,)] = old.execute("SELECT max(id) FROM team").fetchall()
    old.close()
    from app.backup import restored
    assert Team.create(name="New").id > in_the_wal + restored.KNOWN_MARGIN  # the restore read the -wal too
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".loft-restore-")]


def test_restore_refuses_a_damaged_or_foreign_backup_and_touches_nothing(ops, tmp_path):
    make_team("Live")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    with open(tmp_path / "b" / "loft.db", "r+b") as f:
        f.seek(5000)
        f.write(b"tampered")
    damaged = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert damaged.exit_code == 1 and "checksum" in damaged.output

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "loft.db").write_bytes(b"")
    foreign = cli(ops, "db", "restore", str(tmp_path / "other"), "--yes")
    assert foreign.exit_code == 1 and "manifest.json" in foreign.output

    assert cli(ops, "db", "backup", str(tmp_path / "c")).exit_code == 0
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["migration"] = "9999_from_the_future"
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    newer = cli(ops, "db", "restore", str(tmp_path / "c"), "--yes")
    assert newer.exit_code == 1 and "newer Loft" in newer.output

    assert team_names() == ["Live"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("before-restore-", ".loft-restore-"))]


HOLDERS = {
    # a Loft process: web, worker and mail all load wsgi.py
    "loft process": "import time, wsgi; print('ready', flush=True); time.sleep(60)",
    # an idle one, with no SQLite connection open: only its lock on <database>.running shows it
    "idle loft process": textwrap.dedent("""
        import os, time
        from app.backup import running
        running.hold(os.environ["LOFT_DATABASE_URL"][len("sqlite:///"):])
        print('ready', flush=True)
        time.sleep(60)
    """),
    # any SQLite connection at all, e.g. a sqlite3 shell left open
    "sqlite connection": textwrap.dedent("""
        import os, sqlite3, time
        c = sqlite3.connect(os.environ["LOFT_DATABASE_URL"][len("sqlite:///"):])
        c.execute("SELECT count(*) FROM team").fetchone()
        print('ready', flush=True)
        time.sleep(60)
    """),
}


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_restore_refuses_while_a_process_holds_the_database(ops, tmp_path, holder):
    make_team("Live")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    make_team("Written after the backup")
    process = subprocess.Popen([sys.executable, "-c", HOLDERS[holder]], cwd=ROOT, env=subprocess_env(ops),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"ready", process.stderr.read()[-2000:]
        refused = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
        assert refused.exit_code == 1
        assert "Refusing to restore" in refused.output
        assert team_names() == ["Live", "Written after the backup"]  # untouched
    finally:
        process.kill()
        process.wait()
    restored = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert restored.exit_code == 0, restored.output
    assert team_names() == ["Live"]


def test_restore_asks_before_replacing(ops, tmp_path):
    make_team("Live")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    make_team("Later")
    answered_no = cli(ops, "db", "restore", str(tmp_path / "b"))  # no input: the prompt answers "no"
    assert answered_no.exit_code == 1
    assert team_names() == ["Later", "Live"]


@pytest.fixture
def smtp_sink():
    server = TestSmtp()
    yield server
    server.stop()


def test_restoring_a_backup_taken_mid_send_pauses_the_campaign_and_tells_the_team(ops, tmp_path, smtp_sink):
    import asyncio
    import threading

    from app.models import Send
    from tasks import sending as sending_tasks
    ops.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_MAX_IN_RUN_WAIT=5.0)
    team = make_team()
    campaign, contacts, _ = launched(team, 30, smtp_sink.port, connections=2)
    due = make_campaign(team, state="scheduled", name="Due", scheduled_at=utcnow() - datetime.timedelta(minutes=5))
    later = make_campaign(team, state="scheduled", name="Later", scheduled_at=utcnow() + datetime.timedelta(days=3))
    # The SMTP server takes 10 messages, then holds the rest until the backup is made.
    gate = threading.Event()
    accept = smtp_sink.handler.handle_DATA

    admitted = [0]

    async def held_after_ten(server, session, envelope):
        while admitted[0] >= 10 and not gate.is_set():
            await asyncio.sleep(0.01)
        admitted[0] += 1  # no await between the check and this: one event loop runs every session
        return await accept(server, session, envelope)
    smtp_sink.handler.handle_DATA = held_after_ten

    def send():
        with ops.app_context():
            sending_tasks.send_campaign(campaign.id)
    worker = threading.Thread(target=send)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while Send.select().where((Send.campaign == campaign) & (Send.status == "sent")).count() < 10:
            assert time.monotonic() < deadline, "the engine did not record the first 10 messages"
            time.sleep(0.02)
        backup = cli(ops, "db", "backup", str(tmp_path / "mid-send.tar"))  # while the engine runs
    finally:
        gate.set()
        worker.join(timeout=60)
    assert backup.exit_code == 0, backup.output
    for _ in range(20):  # on a loaded machine a run may hand back before the end, as the worker's would
        if Campaign.get_by_id(campaign.id).state != "sending":
            break
        sending_tasks.send_campaign(campaign.id)
    assert Campaign.get_by_id(campaign.id).state == "completed"  # the send finished after the backup
    assert smtp_sink.handler.delivered == {c.email: 1 for c in contacts}

    result = cli(ops, "db", "restore", str(tmp_path / "mid-send.tar"), "--yes")

    assert result.exit_code == 0, result.output
    restored = Campaign.get_by_id(campaign.id)
    assert restored.state == "paused"
    assert "backup" in restored.state_reason and "twice" in restored.state_reason
    assert Campaign.get_by_id(due.id).state == "draft"  # its time had come: it may have gone out after the backup
    assert Campaign.get_by_id(later.id).state == "scheduled"
    notices = {n.campaign_id: n for n in Notice.select().where(Notice.kind == "restore")}
    assert set(notices) == {campaign.id, due.id}
    assert notices[campaign.id].team_id == team.id
    assert "twice" in notices[campaign.id].text and "paused" in notices[campaign.id].text
    assert f"Campaign {campaign.id}" in result.output
    assert Send.select().where((Send.campaign == campaign) & (Send.status == "sent")).count() == 10  # as backed up
    # Whatever "send" tasks the restored queue still holds, and the minute tick, send nothing more.
    sending_tasks.send_campaign(campaign.id)
    sending_tasks.tick()
    assert smtp_sink.handler.delivered == {c.email: 1 for c in contacts}


def test_restoring_an_older_backup_runs_the_migrations_it_lacks(ops, tmp_path):
    import hashlib
    make_team("Old times")
    assert cli(ops, "db", "backup", str(tmp_path / "old")).exit_code == 0
    # Turn the backup into one made before the newest migration (as by an older Loft).
    copy = tmp_path / "old" / "loft.db"
    connection = sqlite3.connect(copy)
    newest = connection.execute("SELECT name FROM schema_migration ORDER BY name DESC LIMIT 1").fetchone()[0]
    assert newest >= "0033_health_probe"
    connection.execute("DROP TABLE health_probe")
    connection.execute("DELETE FROM schema_migration WHERE name = '0033_health_probe'")
    connection.commit()
    connection.close()
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    manifest["files"]["loft.db"]["sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))

    result = cli(ops, "db", "restore", str(tmp_path / "old"), "--yes")

    assert result.exit_code == 0, result.output
    assert "0033_health_probe" in result.output
    assert team_names() == ["Old times"]
    assert db.execute_sql("SELECT count(*) FROM health_probe").fetchone()[0] == 1


def test_restore_refuses_a_backup_whose_manifest_is_damaged(ops, tmp_path):
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    del manifest["created_at"]
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 1 and "damaged" in result.output


def test_with_the_queue_on_redis_the_backup_holds_the_data_only_and_says_so(ops, tmp_path):
    ops.config.update(QUEUE_URL="redis://127.0.0.1:1/0")  # never contacted: the backup only reads the setting
    result = cli(ops, "db", "backup", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert "Redis" in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"loft.db"}


def test_backups_are_private_and_a_restore_keeps_the_owner_and_mode_of_the_database(ops, tmp_path):
    import stat
    assert cli(ops, "db", "backup", str(tmp_path / "b.tar.gz")).exit_code == 0
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "b.tar.gz").st_mode) == 0o600  # password hashes inside
    assert stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o700
    live = live_file(ops)
    os.chmod(live, 0o640)
    if os.geteuid() == 0:  # as an operator running the restore with sudo, for a service user's files
        os.chown(live, 4321, 4321)

    assert cli(ops, "db", "restore", str(tmp_path / "b.tar.gz"), "--yes").exit_code == 0

    after = os.stat(live)
    assert stat.S_IMODE(after.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (after.st_uid, after.st_gid) == (4321, 4321)


def test_a_restore_that_fails_after_the_swap_puts_everything_back(ops, tmp_path, monkeypatch):
    from app.backup import restored
    make_team("Backed up")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    make_team("Live only")

    def broken(created, now=None):
        raise RuntimeError("a notice could not be written")
    monkeypatch.setattr(restored, "settle_campaigns", broken)  # e.g. a failing migration or a full disk
    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")

    assert result.exit_code == 1
    assert "put back" in result.output and "a notice could not be written" in result.output
    assert team_names() == ["Backed up", "Live only"]
    assert integrity(live_file(ops)) == [("ok",)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("before-restore-", ".loft-restore-"))]


def test_the_real_flask_commands_back_up_and_restore(ops, tmp_path):
    """As an operator runs them: `flask --app wsgi ...` loads wsgi.py, which marks its own process as a
    Loft process; the restore must not take itself for one."""
    make_team("Backed up")
    flask = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "db"]
    env = subprocess_env(ops)
    db.close()
    backup = subprocess.run(flask + ["backup", str(tmp_path / "b.tar.gz")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert backup.returncode == 0, backup.stderr
    make_team("Later")
    db.close()
    restore = subprocess.run(flask + ["restore", str(tmp_path / "b.tar.gz"), "--yes"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert restore.returncode == 0, restore.stderr
    assert "Restored the backup" in restore.stdout
    assert team_names() == ["Backed up"]


# --- Ids are never handed out twice -----------------------------------------------------------

def _message_after_the_backup(team, news, campaign, prefix):
    """A contact on the list, a message sent to them (its send id is in their links), an event."""
    from app.models import Event
    from app.models import Send
    from app.models import Subscription
    from tests.sending_support import make_contacts
    [contact] = make_contacts(team, 1, news, prefix=prefix)
    send = Send.create(campaign=campaign, contact=contact, email=contact.email, status="sent", sent_at=utcnow())
    event = Event.create(team=team, contact=contact, campaign_id=campaign.id, type="sent")
    subscription = Subscription.get(Subscription.contact == contact)
    return {"contact": contact.id, "send": send.id, "subscription": subscription.id, "event": event.id}


def _a_sent_campaign():
    from app.models import MailingList
    team = make_team()
    news = MailingList.create(team=team, name="News", visibility="public")
    campaign = make_campaign(team, [news], state="completed")
    return team, news, campaign


def test_a_restore_never_hands_out_again_the_ids_given_after_the_backup(ops, tmp_path):
    """Alice's unsubscribe link from a message sent after the backup must never unsubscribe Bob,
    whose row is made after the restore (with SQLite's max(id) + 1 he got Alice's send id)."""
    from app import tokens
    from app.db import id_high_water
    from app.models import Contact
    from app.models import Subscription
    team, news, campaign = _a_sent_campaign()
    _message_after_the_backup(team, news, campaign, "before")
    assert cli(ops, "db", "backup", str(tmp_path / "b.tar.gz")).exit_code == 0
    alice = _message_after_the_backup(team, news, campaign, "alice")  # ids N+1 ... after the backup
    for n in range(3):
        _message_after_the_backup(team, news, campaign, f"more{n}-")
    given = id_high_water(db)
    unsubscribe_link = f"/u/{tokens.sign('unsubscribe', alice['send'])}"
    view_link = f"/v/{tokens.sign('view', alice['send'])}"

    result = cli(ops, "db", "restore", str(tmp_path / "b.tar.gz"), "--yes")

    assert result.exit_code == 0, result.output
    assert not Contact.select().where(Contact.id == alice["contact"]).exists()  # the restore took her away
    bob = _message_after_the_backup(team, news, campaign, "bob")  # the first message after the restore

    public = ops.test_client(use_cookies=False)
    assert public.get(view_link).status_code == 404  # not Bob's message
    page = public.get(unsubscribe_link)
    assert "bob" not in page.get_data(as_text=True)
    assert public.post(unsubscribe_link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Contact.get_by_id(bob["contact"]).status == "active"
    assert Subscription.get_by_id(bob["subscription"]).status == "subscribed"
    for kind in ("contact", "send", "subscription", "event"):
        assert bob[kind] > given[kind], kind
    from app.models import Campaign as CampaignModel
    assert CampaignModel.create(team=team, name="New", state="draft").id > given["campaign"]
    after = id_high_water(db)
    assert all(after[table] >= mark for table, mark in given.items() if table != "schema_migration"), \
        {t: (given[t], after[t]) for t in given if after[t] < given[t]}
    assert "Ids go on above the highest ones the replaced database had handed out" in result.output


def test_a_restore_onto_a_lost_box_jumps_the_ids_ahead_and_says_so(ops, tmp_path):
    from app.backup import restored
    from app.db import id_high_water
    team, news, campaign = _a_sent_campaign()
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    _message_after_the_backup(team, news, campaign, "lost")
    given = id_high_water(db)
    db.close()
    live = live_file(ops)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(live + suffix):
            os.remove(live + suffix)  # the disk died with the box

    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")

    assert result.exit_code == 0, result.output
    assert "there was no database to replace" in result.output and "jump ahead by" in result.output
    bob = _message_after_the_backup(team, news, campaign, "bob")
    for kind in ("contact", "send", "subscription", "event"):
        assert bob[kind] > given[kind] and bob[kind] > restored.UNKNOWN_MARGIN, kind


def test_ids_are_jumped_ahead_when_the_replaced_database_is_not_a_later_state_of_the_backup():
    from app.backup import restored
    backup_time = datetime.datetime(2026, 12, 1, 3, 15)
    now = backup_time + datetime.timedelta(hours=1)
    later = {"send": 900, "contact": 50}
    floors, margin, why = restored.id_floors({"send": 800, "contact": 40}, later, "", backup_time, now)
    assert not why and margin == restored.KNOWN_MARGIN and floors == {"send": 900 + margin, "contact": 50 + margin}
    fresh_install = {"send": 0, "contact": 1}
    floors, margin, why = restored.id_floors({"send": 800, "contact": 40}, fresh_install, "", backup_time, now)
    assert "not a later state" in why and "contact" in why
    assert margin == restored.UNKNOWN_MARGIN + 3600 * restored.UNKNOWN_RATE
    assert floors == {"send": 800 + margin, "contact": 40 + margin}
    floors, margin, why = restored.id_floors({"send": 800}, None, "it could not be read", backup_time, now)
    assert why == "it could not be read" and floors == {"send": 800 + margin}


def _schema(path):
    connection = sqlite3.connect(path)
    try:
        return {(kind, name, sql.replace(" AUTOINCREMENT", "")) for kind, name, sql in connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL")}
    finally:
        connection.close()


def test_migration_0038_gives_every_id_autoincrement_and_keeps_schema_rows_and_keys(tmp_path):
    from peewee import SqliteDatabase
    from playhouse.migrations import Runner

    from app.cli import MIGRATIONS_DIR
    from app.db import SQLITE_OPTIONS
    path = tmp_path / "old.db"
    database = SqliteDatabase(str(path), **SQLITE_OPTIONS)
    Runner(database, MIGRATIONS_DIR).up(target="0037_list_visibility")
    database.execute_sql("INSERT INTO team (name, time_zone, default_from_name, default_from_email, postal_address, "
                         "created_at) VALUES ('Acme', 'UTC', '', '', '', '2026-01-01'), ('Beta', 'UTC', '', '', '', "
                         "'2026-01-01')")
    for team_id in (1, 2):
        database.execute_sql("INSERT INTO contact (team_id, email, domain, status, name, attributes, source, "
                             "consent_source, consent_ip, consent_text, created_at, updated_at) VALUES (?, ?, 'x.test',"
                             " 'active', '', '{}', '', '', '', '', '2026-01-01', '2026-01-01')", (team_id, f"{team_id}@x.test"))
    before = _schema(path)
    rows = database.execute_sql("SELECT * FROM contact ORDER BY id").fetchall()
    database.close()

    Runner(database, MIGRATIONS_DIR).up(target="0038_ids_never_reused")

    assert _schema(path) == before  # same columns, constraints, foreign keys and indexes, by name
    assert database.execute_sql("SELECT * FROM contact ORDER BY id").fetchall() == rows
    assert database.execute_sql("PRAGMA foreign_key_check").fetchall() == []
    assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    plain = [name for name, sql in database.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
             if '"id" INTEGER NOT NULL PRIMARY KEY' in sql and "AUTOINCREMENT" not in sql]
    assert plain == ["schema_migration"]
    # Deleting the newest row no longer gives its id back; foreign keys still cascade to the rebuilt tables.
    database.execute_sql("DELETE FROM team WHERE id = 2")
    assert database.execute_sql("SELECT count(*) FROM contact WHERE team_id = 2").fetchone()[0] == 0
    database.execute_sql("INSERT INTO team (name, time_zone, default_from_name, default_from_email, postal_address, "
                         "created_at) VALUES ('Gamma', 'UTC', '', '', '', '2026-01-01')")
    assert database.execute_sql("SELECT id FROM team WHERE name = 'Gamma'").fetchone()[0] == 3
    database.close()


@sqlite_only("reads sqlite_master for AUTOINCREMENT; a PostgreSQL SERIAL's sequence never goes back anyway")
def test_every_table_with_an_id_never_reuses_it(app, tmp_path):
    """A table a later migration creates needs `id = IdField()` (app/db/ids.py) in its frozen model."""
    from peewee import CharField
    from peewee import Model
    from peewee import SqliteDatabase

    from app.db import IdField
    with app.app_context():
        plain = [name for name, sql in db.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                 if '"id" INTEGER' in sql and "PRIMARY KEY" in sql and "AUTOINCREMENT" not in sql
                 and name != "schema_migration"]
    assert plain == [], f"give these tables `id = IdField()` (app/db/ids.py), or rebuild them like migration 0038: {plain}"

    database = SqliteDatabase(str(tmp_path / "new.db"))

    class Later(Model):
        id = IdField()
        name = CharField()

        class Meta:
            table_name = "later"

    Later._meta.set_database(database)
    database.create_tables([Later])
    sql = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'later'").fetchone()[0]
    assert sql.startswith('CREATE TABLE "later" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, ')
    database.close()


def test_skip_ids_after_a_restore_by_other_means(ops, tmp_path):
    """pg_restore (or a copied file) brings the counters back to the dump's: `flask db skip-ids` moves them on."""
    from app.backup import restored
    team, news, campaign = _a_sent_campaign()
    first = _message_after_the_backup(team, news, campaign, "first")
    an_hour_ago = (utcnow() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = cli(ops, "db", "skip-ids", an_hour_ago)
    assert result.exit_code == 0, result.output
    assert "jump ahead by" in result.output
    after = _message_after_the_backup(team, news, campaign, "after")
    for kind in ("contact", "send", "subscription", "event"):
        assert after[kind] > first[kind] + restored.UNKNOWN_MARGIN + 3600 * restored.UNKNOWN_RATE, kind
    assert cli(ops, "db", "skip-ids", "yesterday").exit_code == 1


def test_freezing_an_audience_steps_over_the_gap_a_restore_leaves_in_the_ids(ops):
    """After a jump of 10^12 ids, freezing walks the contacts there are, not every empty range between."""
    from app.db import raise_id_counters
    from app.models import MailingList
    from app.models import Send
    from app.sending import ledger
    from tests.sending_support import make_contacts
    team = make_team()
    news = MailingList.create(team=team, name="News")
    before = make_contacts(team, 5, news, prefix="before")
    raise_id_counters(db, {"contact": before[-1].id + 10 ** 12})
    after = make_contacts(team, 5, news, prefix="after")
    assert after[0].id > 10 ** 12
    campaign = make_campaign(team, [news], state="draft")
    started = time.monotonic()
    assert ledger.freeze_audience(campaign, chunk=2) == 10
    assert time.monotonic() - started < 5
    assert {s.contact_id for s in Send.select().where(Send.campaign == campaign)} == {c.id for c in before + after}


# --- The media library's images ---------------------------------------------------------------

def _png(colour):
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return out.getvalue()


def _upload(team, colour, name="photo.png"):
    item, added = media_services.upload(team, None, name, io.BytesIO(_png(colour)))
    assert added
    return item


def _media_tree(app):
    """{name below the media folder: bytes} of every file there."""
    root = app.config["MEDIA_DIR"]
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


def _leftovers(tmp_path):
    return [p.name for p in tmp_path.iterdir() if p.name.startswith(("before-restore-", ".loft-restore-"))
            or p.name.endswith(".restoring")]


@pytest.mark.parametrize("target", ["folder", "b.tar.gz", "b.tar"])
def test_a_backup_holds_the_images_and_a_restore_puts_them_back(ops, tmp_path, target):
    team = make_team("Backed up")
    kept = _upload(team, (200, 30, 30))
    deleted_later = _upload(team, (30, 200, 30))
    os.makedirs(os.path.join(ops.config["MEDIA_DIR"], str(team.id)), exist_ok=True)
    (tmp_path / "media" / str(team.id) / "upload-in-progress.png.part").write_bytes(b"half")
    before = {name: data for name, data in _media_tree(ops).items() if not name.endswith(".part")}
    dest = tmp_path / target
    result = cli(ops, "db", "backup", str(dest))
    assert result.exit_code == 0, result.output
    assert "media: 2 image file(s)" in result.output

    media_services.delete(team, deleted_later)
    added_after = _upload(team, (30, 30, 200))
    result = cli(ops, "db", "restore", str(dest), "--yes")
    assert result.exit_code == 0, result.output
    assert "Restored 2 image file(s)" in result.output

    assert _media_tree(ops) == before  # the deleted one is back, the later one and the unfinished upload are not
    assert {item.key for item in MediaItem.select()} == {kept.key, deleted_later.key}
    served = ops.test_client().get(f"/m/{deleted_later.key}.{deleted_later.extension}")
    assert served.status_code == 200 and served.data == before[f"{team.id}/{deleted_later.key}.png"]
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("before-restore-")]
    assert (aside / "media" / str(team.id) / f"{added_after.key}.png").exists()  # set aside, not deleted
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".loft-restore-") or p.name.endswith(".restoring")]


def test_an_image_whose_key_starts_with_a_dash_is_backed_up_and_restored(ops, tmp_path):
    # One key in 64 starts with "-" (secrets.token_urlsafe); such an image was left out of backups.
    team = make_team("Dash")
    item = _upload(team, (200, 30, 30))
    old_path = media_services.file_path(item)
    item.key = "-" + item.key[1:]
    item.save()
    os.rename(old_path, media_services.file_path(item))
    before = _media_tree(ops)
    result = cli(ops, "db", "backup", str(tmp_path / "b"))
    assert result.exit_code == 0 and "media: 1 image file(s)" in result.output, result.output
    os.remove(media_services.file_path(item))
    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 0 and "Restored 1 image file(s)" in result.output, result.output
    assert _media_tree(ops) == before


def test_a_backup_made_before_images_were_in_backups_restores_and_says_it_holds_none(ops, tmp_path):
    team = make_team("Backed up")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    del manifest["media"]  # the manifest of a backup made before
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(tmp_path / "b" / "media")
    _upload(team, (200, 30, 30))
    live_images = _media_tree(ops)

    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 0, result.output
    assert "This backup holds no images" in result.output
    assert _media_tree(ops) == live_images  # left as it was
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("before-restore-")]
    assert not (aside / "media").exists()


def _hostile_archive(folder, dest, name, member):
    """The backup in `folder` as a .tar.gz whose manifest lists the image `name`, stored as `member`."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["media"] = {name: {"sha256": "0" * 64, "bytes": 4}}
    data = json.dumps(manifest).encode()
    with tarfile.open(dest, "w:gz") as tar:
        for db_file in ("loft.db", "huey.db"):
            tar.add(folder / db_file, arcname=db_file)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(member)


def _link(name, target):
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    return member


@pytest.mark.parametrize("name, member, says", [
    ("../../outside.png", _link("media/../../outside.png", "/etc/passwd"), "outside the media folder"),
    ("/tmp/absolute.png", _link("media//tmp/absolute.png", "/etc/passwd"), "outside the media folder"),
    ("1/..", _link("media/1/..", "/etc"), "outside the media folder"),
    ("1/linked.png", _link("media/1/linked.png", "/etc/passwd"), "link"),
])
def test_a_restore_refuses_an_archive_whose_images_would_land_outside_and_changes_nothing(ops, tmp_path, name,
                                                                                            member, says):
    team = make_team("Live")
    _upload(team, (200, 30, 30))
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    _hostile_archive(tmp_path / "b", tmp_path / "hostile.tar.gz", name, member)
    make_team("Later")
    live_images = _media_tree(ops)

    result = cli(ops, "db", "restore", str(tmp_path / "hostile.tar.gz"), "--yes")
    assert result.exit_code == 1 and says in result.output, result.output
    assert team_names() == ["Later", "Live"]
    assert _media_tree(ops) == live_images
    assert not (tmp_path / "outside.png").exists() and not _leftovers(tmp_path)


def test_a_restore_refuses_an_image_that_does_not_match_its_checksum_and_changes_nothing(ops, tmp_path):
    team = make_team("Live")
    item = _upload(team, (200, 30, 30))
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    copy = tmp_path / "b" / "media" / str(team.id) / f"{item.key}.png"
    copy.write_bytes(_png((0, 0, 0)))  # still an image, not the one backed up
    make_team("Later")
    live_images = _media_tree(ops)

    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 1 and "checksum" in result.output and f"{item.key}.png" in result.output
    assert team_names() == ["Later", "Live"]
    assert _media_tree(ops) == live_images and not _leftovers(tmp_path)


def test_a_restore_that_fails_after_the_swap_puts_the_media_folder_back(ops, tmp_path, monkeypatch):
    team = make_team("Backed up")
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    _upload(team, (200, 30, 30))
    live_images = _media_tree(ops)

    def broken(created, now=None):
        raise RuntimeError("a notice could not be written")
    monkeypatch.setattr(after_restore, "settle_campaigns", broken)
    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 1 and "put back" in result.output
    assert _media_tree(ops) == live_images and len(live_images) == 1 and not _leftovers(tmp_path)


def test_a_backup_folder_whose_image_is_a_link_is_refused_even_with_the_right_checksum(ops, tmp_path):
    team = make_team("Live")
    item = _upload(team, (200, 30, 30))
    assert cli(ops, "db", "backup", str(tmp_path / "b")).exit_code == 0
    copy = tmp_path / "b" / "media" / str(team.id) / f"{item.key}.png"
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(copy.read_bytes())
    copy.unlink()
    copy.symlink_to(elsewhere)
    make_team("Later")

    result = cli(ops, "db", "restore", str(tmp_path / "b"), "--yes")
    assert result.exit_code == 1 and "no regular file" in result.output, result.output
    assert team_names() == ["Later", "Live"] and not _leftovers(tmp_path)


def test_a_restore_onto_a_box_without_a_media_folder_creates_it_writable_by_its_owner(ops, tmp_path):
    team = make_team("Backed up")
    item = _upload(team, (200, 30, 30))
    image = _media_tree(ops)
    assert cli(ops, "db", "backup", str(tmp_path / "b.tar.gz")).exit_code == 0
    shutil.rmtree(ops.config["MEDIA_DIR"])  # a new machine: the images are only in the backup

    result = cli(ops, "db", "restore", str(tmp_path / "b.tar.gz"), "--yes")
    assert result.exit_code == 0, result.output
    assert _media_tree(ops) == image
    restored_file = os.stat(os.path.join(ops.config["MEDIA_DIR"], str(team.id), f"{item.key}.png"))
    assert (restored_file.st_uid, restored_file.st_mode & 0o600) == (os.stat(tmp_path).st_uid, 0o600)
    assert _upload(team, (30, 200, 30)).key  # the library takes new images into the restored folder
