"""GET /metrics (app/metrics): who may scrape it, what it counts, and the sums over real processes: a real
gunicorn with two workers and a real huey consumer writing into one PROMETHEUS_MULTIPROC_DIR."""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import collector
from app.metrics import views as metrics_views
from app.models import ImportJob
from app.models import Team
from huey import SqliteHuey

ROOT = pathlib.Path(__file__).resolve().parent.parent


def samples(text):
    """{(sample name, frozenset of labels): value} of an exposition text, parsed by prometheus-client."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found, name, **labels):
    """The sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


# --- Who may scrape ----------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_without_a_token_this_machine_may_scrape(address):
    assert metrics_views.refusal("", None, address, relayed=False) is None


@pytest.mark.parametrize("address", ["192.0.2.10", "2001:db8::1", "", "not an address"])
def test_without_a_token_other_machines_are_refused(address):
    status, message = metrics_views.refusal("", None, address, relayed=False)
    assert status == 403 and "LOFT_METRICS_TOKEN" in message


def test_a_relayed_request_is_not_this_machine_even_from_the_proxys_loopback():
    status, _ = metrics_views.refusal("", None, "127.0.0.1", relayed=True)
    assert status == 403


def test_with_a_token_it_is_required_from_everywhere():
    token = "s3cret-token"
    assert metrics_views.refusal(token, None, "127.0.0.1", False)[0] == 401
    assert metrics_views.refusal(token, "Bearer wrong", "127.0.0.1", False) == (401, metrics_views.WRONG_TOKEN)
    assert metrics_views.refusal(token, "Basic s3cret-token", "127.0.0.1", False)[0] == 401
    assert metrics_views.refusal(token, f"Bearer {token}", "203.0.113.5", True) is None
    assert metrics_views.refusal(token, f"bearer  {token} ", "203.0.113.5", False) is None


def test_the_view_applies_the_rule(app, public):
    response = public.get("/metrics")  # the test client's peer is 127.0.0.1
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "loft_queue_pending" in response.get_data(as_text=True)
    relayed = public.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert relayed.status_code == 403 and "only to this machine" in relayed.get_data(as_text=True)
    remote = public.get("/metrics", environ_overrides={"REMOTE_ADDR": "198.51.100.7"})
    assert remote.status_code == 403

    app.config["METRICS_TOKEN"] = "t0ken-for-prometheus"
    try:
        missing = public.get("/metrics")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert public.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        allowed = public.get("/metrics", headers={"Authorization": "Bearer t0ken-for-prometheus"},
                             environ_overrides={"REMOTE_ADDR": "198.51.100.7"})
        assert allowed.status_code == 200
        assert samples(allowed.get_data(as_text=True))
    finally:
        app.config["METRICS_TOKEN"] = ""


def test_a_post_is_not_a_scrape(public):
    assert public.post("/metrics").status_code in (400, 405)


# --- Requests by route ---------------------------------------------------------------------------

def test_routes_are_url_rules_and_unknown_paths_one_label(public):
    before = samples(public.get("/metrics").get_data(as_text=True))
    for path in ("/no/such/page", "/another/missing/thing/42", "/no/such/page?x=1"):
        assert public.get(path).status_code == 404
    public.get("/o/not-a-token.gif")  # the tracking fast path answers before Flask: counted as its rule
    after = samples(public.get("/metrics").get_data(as_text=True))
    unmatched = dict(name="loft_http_requests_total", route="(unmatched)", method="GET", status="404")
    assert value(after, **unmatched) - value(before, **unmatched) == 3
    assert not any(("route", "/no/such/page") in labels or ("route", "/another/missing/thing/42") in labels
                   for _, labels in after)
    pixel = dict(name="loft_http_requests_total", route="/o/<token>.gif", method="GET", status="200")
    assert value(after, **pixel) - value(before, **pixel) == 1
    scrapes = dict(name="loft_http_requests_total", route="/metrics", method="GET", status="200")
    assert value(after, **scrapes) - value(before, **scrapes) == 1  # the first scrape, answered before this one
    count = value(after, "loft_http_request_seconds_count", route="(unmatched)")
    assert count - value(before, "loft_http_request_seconds_count", route="(unmatched)") == 3


# --- The scrape-time collector ---------------------------------------------------------------------

def test_task_counts_name_what_was_read_and_count_the_rest():
    from app.operations.queues import TaskGroup
    read = [TaskGroup("imports.run_import", 2), TaskGroup("mail.send_system_email", 1)]
    assert collector.task_counts(read, 3) == {"imports.run_import": 2, "mail.send_system_email": 1}
    assert collector.task_counts(read, 10)[collector.NOT_READ] == 7
    assert collector.task_counts([], 0) == {}


def test_collector_reads_queue_depth_by_task_and_imports_in_progress(ctx, tmp_path, monkeypatch):
    queue = SqliteHuey("metrics-test", filename=str(tmp_path / "q.db"))

    @queue.task()
    def first(n):
        return n

    @queue.task()
    def second():
        return None

    first.schedule(args=(9,), delay=3600)
    queue.execute(queue.dequeue())  # as the consumer does: not due yet, so it moves to the schedule
    for n in range(3):
        first(n)
    second()
    team = Team.create(name="Imports")
    for status in ("running", "queued", "queued", "done", "failed", "uploaded"):
        ImportJob.create(team=team, filename="a.csv", path="/nonexistent", mapping={}, status=status)

    found = {(m.name, tuple(sorted(s.labels.items()))): s.value
             for m in collector.LoftCollector([queue]).collect() for s in m.samples}
    assert found[("loft_queue_pending", (("queue", "metrics-test"), ("task", first.task_class.__name__)))] == 3
    assert found[("loft_queue_pending", (("queue", "metrics-test"), ("task", second.task_class.__name__)))] == 1
    assert found[("loft_queue_scheduled", (("queue", "metrics-test"), ("task", first.task_class.__name__)))] == 1
    assert found[("loft_queue_readable", (("queue", "metrics-test"),))] == 1
    assert found[("loft_imports_in_progress", (("status", "running"),))] == 1
    assert found[("loft_imports_in_progress", (("status", "queued"),))] == 2

    # A task this process does not know (queued by another version) is counted all the same.
    other = SqliteHuey("metrics-test", filename=str(tmp_path / "q.db"))
    found = {(m.name, tuple(sorted(s.labels.items()))): s.value
             for m in collector.LoftCollector([other]).collect() for s in m.samples}
    assert sum(v for k, v in found.items() if k[0] == "loft_queue_pending") == 4

    # Past READ_LIMIT, the rest is counted without being unpickled.
    monkeypatch.setattr(collector, "READ_LIMIT", 2)
    found = {(m.name, tuple(sorted(s.labels.items()))): s.value
             for m in collector.LoftCollector([queue]).collect() for s in m.samples}
    pending = {k[1][1][1]: v for k, v in found.items() if k[0] == "loft_queue_pending"}
    assert sum(pending.values()) == 4 and pending[collector.NOT_READ] == 2


def test_an_unreadable_queue_is_reported_and_the_rest_still_served(ctx, tmp_path):
    class Broken:
        name = "broken"

        def pending_count(self):
            raise OSError("disk gone")

    families = {m.name: m for m in collector.LoftCollector([Broken()]).collect()}
    assert [s.value for s in families["loft_queue_readable"].samples] == [0]
    assert families["loft_imports_in_progress"].samples


# --- Task signals ---------------------------------------------------------------------------------

def test_task_signals_count_completed_failed_retried_and_running(tmp_path):
    from app.metrics import tasks as task_metrics
    queue = SqliteHuey("metrics-signals", filename=str(tmp_path / "s.db"))
    task_metrics.watch(queue)
    seen_running = []

    @queue.task()
    def works():
        seen_running.append(running())
        return 1

    @queue.task(retries=1)
    def breaks():
        raise RuntimeError("always")

    def running():
        return collect("loft_tasks_running", works.task_class.__name__)

    def collect(name, task):
        from prometheus_client import REGISTRY
        return REGISTRY.get_sample_value(name, {"queue": "metrics-signals", "task": task}) or 0.0

    works()
    breaks()
    for _ in range(3):  # works, breaks, breaks again (its retry)
        message = queue.dequeue()
        if message is not None:
            queue.execute(message)
    assert seen_running == [1.0] and running() == 0
    assert collect("loft_tasks_completed_total", works.task_class.__name__) == 1
    assert collect("loft_tasks_failed_total", breaks.task_class.__name__) == 2
    assert collect("loft_tasks_retried_total", breaks.task_class.__name__) == 1
    assert collect("loft_tasks_running", breaks.task_class.__name__) == 0


# --- Real processes ---------------------------------------------------------------------------------

def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _children(pid):
    try:
        return {int(p) for p in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def test_gunicorn_workers_and_a_consumer_are_summed(app, tmp_path, queue_env, catcher):
    from tests.conftest import free_port
    metrics_dir = tmp_path / "metrics"
    port = free_port()
    command = next(line.partition(":")[2].strip() for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    assert "--workers 2" in command
    env = dict(os.environ, **queue_env, LOFT_BIND=f"127.0.0.1:{port}", LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_CATCHER_PORT=str(app.config["CATCHER_PORT"]), LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_METRICS_TOKEN="", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    log_path = tmp_path / "processes.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=log_file)
        consumer = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "2", "-m", "1"],
                                    cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    processes_log = lambda: log_path.read_text(errors="replace")[-4000:]  # noqa: E731
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert server.poll() is None, processes_log()
            try:
                urllib.request.urlopen(f"{base}/o/x.gif", timeout=2).close()  # another route than the counted one
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not answer: " + processes_log())
        workers = _children(server.pid)
        assert len(workers) == 2, workers

        # Requests from many threads at once, until both workers have answered some (each writes its own file).
        lock = threading.Lock()

        answers = []

        def hit(n):
            for _ in range(n):
                try:
                    answer = _get(f"{base}/favicon.ico")[0]
                except Exception as exc:  # noqa: BLE001 - reported below, not lost with the thread
                    answer = repr(exc)
                with lock:
                    answers.append(answer)

        for _ in range(10):
            threads = [threading.Thread(target=hit, args=(5,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            counted_by = {pid for pid in workers if (metrics_dir / f"counter_{pid}.db").exists()}
            if counted_by == workers:
                break
        assert set(answers) == {200}, answers
        made = len(answers)
        assert counted_by == workers, "one worker answered every request"
        for path in ("/missing/one", "/missing/two/3"):
            assert _get(base + path)[0] == 404

        # A task through the real consumer: a system email into the catcher.
        enqueue = ("import wsgi; from tasks.system_mail import send_system_email; "
                   "send_system_email('metrics@example.com', 'Counted', 'Body')")
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            status, text = _get(f"{base}/metrics")
            assert status == 200, text
            found = samples(text)
            done = value(found, "loft_tasks_completed_total", queue="loft", task="mail.send_system_email")
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert done == 1, processes_log()
        assert (metrics_dir / f"counter_{consumer.pid}.db").exists()
        assert value(found, "loft_tasks_running", queue="loft", task="mail.send_system_email") == 0

        assert value(found, "loft_http_requests_total", route="/favicon.ico", method="GET", status="200") == made
        assert value(found, "loft_http_request_seconds_count", route="/favicon.ico") == made
        assert value(found, "loft_http_requests_total", route="(unmatched)", method="GET", status="404") == 2
        assert not any(("route", "/missing/one") in labels for _, labels in found)
        assert total(found, "loft_queue_pending", queue="loft") == 0
        assert value(found, "loft_queue_readable", queue="loft-tx") == 1

        # From "elsewhere" (a proxy's header) without a token: refused, and nothing about the instance said.
        status, text = _get(f"{base}/metrics", {"X-Forwarded-For": "203.0.113.9"})
        assert status == 403 and "loft_" not in text
    finally:
        consumer.terminate()
        server.send_signal(signal.SIGTERM)
        consumer.wait(timeout=30)
        server.wait(timeout=60)
    # Both stopped cleanly: their "live" gauges no longer count.
    assert not list(metrics_dir.glob("gauge_livesum_*.db")), list(metrics_dir.iterdir())


# --- The Grafana dashboard --------------------------------------------------------------------------

def test_the_grafana_dashboard_queries_only_metrics_loft_exposes(ctx):
    import json
    import re
    from prometheus_client import Counter
    from prometheus_client import Histogram
    from prometheus_client.metrics import MetricWrapperBase
    from app.metrics import definitions
    exposed = set()
    for metric in vars(definitions).values():
        if isinstance(metric, MetricWrapperBase):
            if isinstance(metric, Counter):
                exposed.add(metric._name + "_total")
            elif isinstance(metric, Histogram):
                exposed.update(metric._name + suffix for suffix in ("_bucket", "_sum", "_count"))
            else:
                exposed.add(metric._name)
    exposed.update(family.name for family in collector.LoftCollector([]).collect())
    exposed.update(("loft_queue_pending", "loft_queue_scheduled", "loft_queue_readable"))  # no queue given above

    dashboard = json.loads((ROOT / "docs" / "grafana" / "loft-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\bloft_[a-z_]+", target["expr"])}
    assert queried and queried <= exposed, queried - exposed
    for wanted in ("loft_messages_total", "loft_queue_pending", "loft_http_request_seconds_bucket",
                   "loft_tracking_hits_total", "loft_ai_cost_usd_total", "loft_tasks_failed_total"):
        assert wanted in queried


# --- Counted where it happens: the engine and tracking ---------------------------------------------------

def _registry_value(name, **labels):
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_engine_counts_results_reply_classes_and_latency(ctx, smtp):
    from tests.sending_support import launched
    from tests.sending_support import make_team
    from tests.sending_support import run
    ctx.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_BATCH_SIZE=50)
    server = smtp(reject=("reader1@", "reader2@"))
    campaign, _, _ = launched(make_team(), 6, server.port)
    sent0 = _registry_value("loft_messages_total", result="sent", stream="campaign")
    bounce0 = _registry_value("loft_messages_total", result="bounce", stream="campaign")
    ok0 = _registry_value("loft_smtp_replies_total", reply_class="2xx")
    refused0 = _registry_value("loft_smtp_replies_total", reply_class="5xx")
    timed0 = _registry_value("loft_send_seconds_count")

    assert run(campaign.id).outcome == "completed"

    assert _registry_value("loft_messages_total", result="sent", stream="campaign") - sent0 == 4
    assert _registry_value("loft_messages_total", result="bounce", stream="campaign") - bounce0 == 2
    assert _registry_value("loft_smtp_replies_total", reply_class="2xx") - ok0 == 4
    assert _registry_value("loft_smtp_replies_total", reply_class="5xx") - refused0 == 2
    assert _registry_value("loft_send_seconds_count") - timed0 == 6


def test_an_open_and_a_click_are_counted_once_recorded(ctx, smtp, public):
    from app import tokens
    from app.models import Link
    from app.models import Send
    from tests.sending_support import launched
    from tests.sending_support import make_team
    from tests.sending_support import run
    ctx.config.update(SEND_FLUSH_INTERVAL=0.05, SEND_STATE_INTERVAL=0.1)
    server = smtp()
    campaign, _, _ = launched(make_team(), 1, server.port)
    assert run(campaign.id).outcome == "completed"
    send = Send.get(Send.campaign == campaign)
    opens0 = _registry_value("loft_tracking_hits_total", kind="open", stream="campaign")
    clicks0 = _registry_value("loft_tracking_hits_total", kind="click", stream="campaign")
    assert public.get(f"/o/{tokens.sign('open', send.id)}.gif").status_code == 200
    assert public.get("/o/forged.gif").status_code == 200  # a pixel for nobody: served, not counted
    link = Link.create(campaign=campaign, url="https://www.example.com/spring")
    assert public.get(f"/c/{tokens.sign('click', send.id)}/{link.id}").status_code == 302
    assert _registry_value("loft_tracking_hits_total", kind="open", stream="campaign") - opens0 == 1
    assert _registry_value("loft_tracking_hits_total", kind="click", stream="campaign") - clicks0 == 1


def test_ai_tokens_and_cost_are_counted_once_and_not_for_a_cached_answer(ctx, gemini, monkeypatch):
    import pytest as _pytest
    from app.ai import generate as ai
    from app.ai import providers
    from app.models import User
    monkeypatch.setattr(providers, "sleep", lambda seconds: None)
    team = Team.create(name="Writers")
    user = User.create(email="writer@example.com", name="Wren", password_hash="x")
    items = [{"subject": f"Spring {n}", "preheader": f"Bulbs {n}"} for n in range(1, 6)]
    gemini.reply(data={"items": items}, input_tokens=1000, output_tokens=500)
    inputs0 = _registry_value("loft_ai_tokens_total", direction="input")
    outputs0 = _registry_value("loft_ai_tokens_total", direction="output")
    cost0 = _registry_value("loft_ai_cost_usd_total")
    first = ai.generate(team, user, "subject_lines", {"brief": "Roses and bulbs in April."})
    again = ai.generate(team, user, "subject_lines", {"brief": "Roses and bulbs in April."})
    assert not first.cached and again.cached
    assert _registry_value("loft_ai_tokens_total", direction="input") - inputs0 == 1000
    assert _registry_value("loft_ai_tokens_total", direction="output") - outputs0 == 500
    assert _registry_value("loft_ai_cost_usd_total") - cost0 == _pytest.approx(first.cost_usd) and first.cost_usd > 0


def test_transactional_messages_are_counted_by_result(ctx, smtp):
    from app.models import TxMessage
    from app.transactional import service
    from tasks import transactional as tx_tasks
    from tests.sending_support import make_account
    from tests.sending_support import make_team
    from app.models import SenderDomain
    from app.models import utcnow
    from app.senders import domains
    team = make_team()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    server = smtp(reject=("refused@",))
    make_account(team, server.port)
    sent0 = _registry_value("loft_messages_total", result="sent", stream="transactional")
    bounce0 = _registry_value("loft_messages_total", result="bounce", stream="transactional")
    for to in ("buyer@example.com", "refused@example.com"):
        tx = service.accept(team, api_key=None, message={"to": to, "subject": "Receipt", "html": "<p>Thanks</p>"})
        tx_tasks.queue([tx])
    assert sorted(TxMessage.select(TxMessage.status).tuples()) == [("failed",), ("sent",)]
    assert _registry_value("loft_messages_total", result="sent", stream="transactional") - sent0 == 1
    assert _registry_value("loft_messages_total", result="bounce", stream="transactional") - bounce0 == 1
