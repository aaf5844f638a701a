"""Operations with real parts: a real huey consumer records heartbeats and is killed (banner, /health degraded,
one alert email in the catcher); a task that always fails runs through a real consumer into the dead-letter
list, and "retry" runs it again; discard one and many; secrets never stored; CSRF on the POSTs."""
import datetime
import os
import signal
import subprocess
import time

import pytest

from app.config import ROOT
from app.models import CaughtMessage
from app.models import DeadLetter
from app.models import Notice
from app.models import TaskFailure
from app.models import WorkerHeartbeat
from app.operations import deadletters
from app.operations import heartbeat
from app.operations import views as operations_views
from app.operations.scrub import scrub
from tasks import huey
from tasks import queue_for
from tests.conftest import soup
from tests.operations_support import SECRET_ERROR
from tests.operations_support import declare

ALERT_SUBJECT = "Loft: the worker is not running; sending and imports are paused"


def _consumer(app, queue_env, module="wsgi.huey", workers=1):
    env = dict(os.environ, **queue_env, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_CATCHER_PORT=str(app.config["CATCHER_PORT"]), LOFT_LOG_LEVEL="WARNING",
               LOFT_WORKER_HEARTBEAT_SECONDS="0.3")
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), module, "-w", str(workers), "-n", "-m", "0.5"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(app, condition, process, seconds=30, what="the consumer"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            if condition():
                return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"{what} did not get there: " + process.communicate(timeout=10)[0].decode()[-3000:])


def _stop(process):
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=15)


def _alerts(app):
    with app.app_context():
        return CaughtMessage.select().where(CaughtMessage.subject == ALERT_SUBJECT).count()


def test_secrets_are_scrubbed_from_errors_and_arguments():
    cleaned = scrub(SECRET_ERROR)
    assert "hunter2" not in cleaned and "AIzaSy" not in cleaned and "loft:" not in cleaned
    assert "smtp://***@mail.example.com:587" in cleaned and "password=***" in cleaned
    assert scrub("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig").count("eyJ") == 0
    assert scrub("redis://:secretpw@127.0.0.1:6379/0") == "redis://***@127.0.0.1:6379/0"
    assert scrub('{"api_key": "k-123", "smtp_password": "two words"}') == '{"api_key": ***, "smtp_password": ***}'
    assert "loft_" not in scrub("key loft_Ab12Cd34Ef56Gh78 refused")
    # what helps the reader stays
    assert scrub("ValueError: campaign 42 not found at https://example.com/c/42") == \
        "ValueError: campaign 42 not found at https://example.com/c/42"
    assert len(scrub("x" * 10000)) <= 2000


def test_a_killed_worker_shows_the_banner_degrades_health_and_alerts_once(app, web, public, admin, team, catcher,
                                                                          queue_env):
    huey.immediate = False  # the web side asks about the worker only when tasks do not run inline
    app.config["WORKER_STALE_SECONDS"] = 2
    heartbeat.forget()
    # A fresh install whose worker never ran: the banner, and no alert (there is no outage, only a step to take).
    page = soup(web.get("/dashboard"))
    banner = page.select_one("#worker-banner")
    assert banner is not None and banner["role"] == "alert"
    assert "Sending and imports are paused: the worker is not running" in banner.get_text()
    assert "huey_consumer wsgi.huey" in banner.get_text()
    assert web.get("/health").get_json()["worker"].startswith("error: no worker has ever run")

    consumer = _consumer(app, queue_env, workers=3)  # three worker threads, one heartbeat
    try:
        _wait(app, lambda: WorkerHeartbeat.select().where((WorkerHeartbeat.queue == "loft")
                                                          & (WorkerHeartbeat.pid == consumer.pid)).exists(), consumer)
        heartbeat.forget()
        assert soup(web.get("/dashboard")).select_one("#worker-banner") is None
        report = web.get("/health")
        assert report.status_code == 200 and report.get_json()["worker"] == "ok"
        # Running workers are on the queue page, once per process (one thread beats for all worker threads).
        time.sleep(1)  # every worker thread has started by now
        assert len(soup(web.get("/admin/queue")).select(".worker-row[data-live=yes]")) == 1
        with app.app_context():
            assert WorkerHeartbeat.select().count() == 1

        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        time.sleep(2.5)
        heartbeat.forget()
        page = soup(web.get("/dashboard"))
        assert page.select_one("#worker-banner[role=alert]") is not None
        report = web.get("/health")
        assert report.status_code == 503
        assert report.get_json()["status"] == "degraded"
        assert report.get_json()["worker"].startswith("error: no worker seen since")
        assert public.get("/health", headers={"X-Forwarded-For": "203.0.113.9"}).get_json() == {"status": "degraded"}
        _wait(app, lambda: _alerts(app) == 1, consumer, seconds=15, what="the alert email")
        for _ in range(3):  # more pages, more processes' checks: still one alert for this outage
            heartbeat.forget()
            web.get("/dashboard")
            web.get("/health")
        time.sleep(0.5)
        assert _alerts(app) == 1
        with app.app_context():
            assert Notice.select().where((Notice.team == team) & (Notice.kind == "worker_down")).count() == 1
            message = CaughtMessage.get(CaughtMessage.subject == ALERT_SUBJECT)
            assert message.recipients == [admin.email]

        # The worker comes back: the banner goes. It goes again: a new outage, a new alert.
        with app.app_context():
            row = heartbeat.started("worker.example.test", 4242, "loft")
        heartbeat.forget()
        assert soup(web.get("/dashboard")).select_one("#worker-banner") is None
        time.sleep(2.5)
        heartbeat.forget()
        assert soup(web.get("/dashboard")).select_one("#worker-banner") is not None
        _wait(app, lambda: _alerts(app) == 2, consumer, seconds=15, what="the second outage's alert")
        with app.app_context():
            assert WorkerHeartbeat.get_by_id(row).stopped_at is None
    finally:
        _stop(consumer)


@pytest.mark.parametrize("module, queue", [("wsgi.huey", "loft"), ("wsgi.tx_huey", "loft-tx")])
def test_a_cleanly_stopped_worker_marks_its_row(app, queue_env, module, queue):
    """Each consumer (the main queue's and the transactional one's) beats from one thread per process."""
    consumer = _consumer(app, queue_env, module=module)
    try:
        _wait(app, lambda: WorkerHeartbeat.select().where(WorkerHeartbeat.pid == consumer.pid).exists(), consumer)
    finally:
        _stop(consumer)
    with app.app_context():
        rows = list(WorkerHeartbeat.select().where(WorkerHeartbeat.pid == consumer.pid))
    assert len(rows) == 1 and rows[0].stopped_at is not None and rows[0].queue == queue


def test_a_task_that_always_fails_becomes_a_dead_letter_and_retry_runs_it(app, web, admin, queue_env, tmp_path,
                                                                          monkeypatch):
    queue = queue_for(queue_env["LOFT_QUEUE_URL"], queue_env["LOFT_HUEY_PATH"])  # the consumer's queue, seen from here
    flaky, slow = declare(queue)
    monkeypatch.setattr(operations_views, "queues", lambda: {"loft": queue})
    flag, ran = tmp_path / "flag", tmp_path / "ran"
    consumer = _consumer(app, queue_env, module="tests.operations_consumer.huey")
    try:
        flaky(str(flag), str(ran))
        _wait(app, lambda: DeadLetter.select().exists(), consumer, what="the dead letter")
        with app.app_context():
            letter = DeadLetter.get()
            failures = list(TaskFailure.select().order_by(TaskFailure.id))
        assert letter.task_name == "tests.operations_support.operations.flaky" and letter.queue == "loft"
        assert letter.error_type == "ConnectionError" and letter.attempts == 2
        assert "hunter2" not in letter.error + letter.arguments and "AIzaSy" not in letter.error
        assert "mail.example.com" in letter.error and str(flag) in letter.arguments
        assert [f.retries_left for f in failures] == [1, 0]  # one retry, then final
        assert letter.first_failed_at == failures[0].failed_at
        assert not ran.exists()

        page = soup(web.get("/admin/queue"))
        assert page.select_one(f".dead-letter[data-id='{letter.id}']") is not None
        assert len(page.select(".failure-row[data-task='tests.operations_support.operations.flaky']")) == 2
        assert "hunter2" not in page.get_text()
        assert page.select_one("#queue-loft") is not None

        # CSRF: a post without the token changes nothing.
        response = web.client.post("/admin/queue/dead-letters/retry", data={"ids": [str(letter.id)]})
        assert response.status_code == 400
        with app.app_context():
            assert DeadLetter.select().count() == 1

        flag.write_text("fixed")
        response = web.post("/admin/queue/dead-letters/retry", {"ids": [str(letter.id)]}, htmx=True)
        assert response.status_code == 200
        assert "1 task queued again." in response.get_data(as_text=True)
        with app.app_context():
            assert DeadLetter.select().count() == 0
        _wait(app, ran.exists, consumer, what="the retried task")
        assert ran.read_text() == "ran"

        # A task running now is on the page (as of the worker's last heartbeat), and gone once it ended.
        release = tmp_path / "release"
        slow(str(release))
        _wait(app, lambda: any(task["name"] == "operations.slow" for row in WorkerHeartbeat.select()
                               for task in row.running), consumer, what="the running task's heartbeat")
        running = soup(web.get("/admin/queue/live")).select_one(".worker-row[data-live=yes] [data-label=Running]")
        assert "operations.slow" in running.get_text()
        release.write_text("go")
        _wait(app, lambda: not any(row.running for row in WorkerHeartbeat.select()), consumer,
              what="the task's end")
    finally:
        _stop(consumer)


def _letters(app, queue, flaky, count):
    with app.app_context():
        return [deadletters.record_failure("loft", "tests.operations_support.operations.flaky", f"id-{n}",
                                           RuntimeError("no"), 0, payload=queue.serialize_task(flaky.s("a", "b")),
                                           arguments="'a', 'b'").id for n in range(count)]


def test_discard_one_many_and_all_and_a_task_whose_code_is_gone(app, web, admin, queue_env, monkeypatch):
    queue = queue_for(queue_env["LOFT_QUEUE_URL"], queue_env["LOFT_HUEY_PATH"])
    flaky, slow = declare(queue)
    monkeypatch.setattr(operations_views, "queues", lambda: {"loft": queue})
    ids = _letters(app, queue, flaky, 4)
    assert web.client.post("/admin/queue/dead-letters/discard", data={"all": "1"}).status_code == 400  # no CSRF token
    with app.app_context():
        assert DeadLetter.select().count() == 4
    response = web.post("/admin/queue/dead-letters/discard", {"ids": [str(ids[0]), str(ids[1])]})
    assert response.status_code == 302
    with app.app_context():
        assert sorted(letter.id for letter in DeadLetter.select()) == ids[2:]
    web.post("/admin/queue/dead-letters/discard", {"all": "1"})
    with app.app_context():
        assert DeadLetter.select().count() == 0

    # A dead letter whose task no longer exists in this version: a clear message, the row kept.
    message = queue._registry.create_message(flaky.s("a", "b"))._replace(name="tasks.gone.old_task")
    with app.app_context():
        gone = deadletters.record_failure("loft", "tasks.gone.old_task", "old-1", RuntimeError("x"), 0,
                                          payload=queue.serializer.serialize(message)).id
    response = web.post("/admin/queue/dead-letters/retry", {"ids": [str(gone)]}, htmx=True)
    assert response.status_code == 200
    assert "tasks.gone.old_task no longer exists in this version of Loft" in response.get_data(as_text=True)
    with app.app_context():
        assert DeadLetter.select().where(DeadLetter.id == gone).exists()
    # Another instance's id, or nothing chosen: nothing happens, and says so.
    response = web.post("/admin/queue/dead-letters/retry", {"ids": ["999999"]}, htmx=True)
    assert "Nothing was queued: those tasks are no longer in the list." in response.get_data(as_text=True)
    response = web.post("/admin/queue/dead-letters/discard", {}, htmx=True)
    assert "Tick the tasks to discard first." in response.get_data(as_text=True)
    with app.app_context():
        assert DeadLetter.select().count() == 1


def test_the_queue_page_counts_waiting_tasks_by_type_with_their_age(app, web, admin, queue_env, monkeypatch):
    queue = queue_for(queue_env["LOFT_QUEUE_URL"], queue_env["LOFT_HUEY_PATH"])
    flaky, slow = declare(queue)
    monkeypatch.setattr(operations_views, "queues", lambda: {"loft": queue})
    for _ in range(3):
        flaky("a", "b")
    later = flaky.s("a", "b")  # as the consumer keeps a retry or a task due later: in huey's schedule
    later.eta = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
    queue.add_schedule(later)
    page = soup(web.get("/admin/queue/live"))
    row = page.select_one("#queue-loft .queue-pending tr[data-task='operations.flaky']")
    assert row.select_one("[data-label=Waiting]").get_text() == "3" and " s ago)" in row.get_text()
    scheduled = page.select_one("#queue-loft .queue-scheduled tr[data-task='operations.flaky']")
    assert scheduled is not None and scheduled.select_one("[data-label='Scheduled']").get_text() == "1"
    assert "No worker has reported yet" in page.get_text()
    assert "No task has failed recently." in page.get_text()
    queue.flush()
    assert "Nothing waiting." in soup(web.get("/admin/queue/live")).get_text()


def test_a_failed_periodic_task_is_a_recent_failure_not_a_dead_letter(app):
    """Its next run comes by itself; one failing every minute must not fill the dead letters."""
    from tasks import operations as task_operations
    from tasks.reports import rollup
    from tasks.system_mail import send_system_email
    with app.app_context():
        task_operations._record_failure(huey, rollup.s(), RuntimeError("database is locked"))
        assert TaskFailure.select().count() == 1 and DeadLetter.select().count() == 0
        final = send_system_email.s("a@example.com", "s", "t")
        final.retries = 0  # as huey leaves it after the last retry
        task_operations._record_failure(huey, final, OSError("connection refused"))
        letter = DeadLetter.get()
        assert letter.task_name == "tasks.mail.mail.send_system_email" and letter.attempts == 4


def test_the_banner_check_is_one_query_cached_per_process(app, web, admin, sql_statements):
    huey.immediate = False
    app.config["WORKER_STALE_SECONDS"] = 60
    heartbeat.forget()
    with app.app_context():
        heartbeat.started("worker.example.test", 4242, "loft")
    sql_statements.clear()
    for _ in range(3):
        assert soup(web.get("/dashboard")).select_one("#worker-banner") is None
    asked = [sql for sql in sql_statements if "worker_heartbeat" in sql]
    assert len(asked) == 1 and "MAX" in asked[0].upper()


def test_the_worker_down_email_honours_the_instance_admins_preferences(app, admin, team, catcher):
    from app.models import Membership
    from app.models import NotificationPreference
    from app.models import User
    with app.app_context():
        other = User.create(email="ops@example.com", name="Ops", password_hash="x", is_instance_admin=True)
        Membership.create(user=other, team=team, role="admin")
        NotificationPreference.create(user=admin, team=team, event="worker_down", by_email=False, in_app=True)
        last_seen = heartbeat.utcnow() - heartbeat.datetime.timedelta(minutes=5)
        heartbeat._send_alert(app, heartbeat.WorkerStatus(down=True, last_seen=last_seen))
        assert [m.recipients for m in CaughtMessage.select()] == [["ops@example.com"]]
        assert Notice.select().where(Notice.kind == "worker_down").count() == 1
