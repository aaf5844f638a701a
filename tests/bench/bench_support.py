"""What the benchmarks share: the stack they run on.

  LOFT_BENCH_STACK=postgres  start a throwaway PostgreSQL + Redis with .ci/services.sh (stopped after), or
  LOFT_BENCH_DATABASE_URL=postgresql://.../db and LOFT_BENCH_QUEUE_URL=redis://.../N to use running ones
Neither: SQLite and huey's SQLite queue.
"""
import collections
import contextlib
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis
from peewee import Value

from app import create_app
from app import db as dialect
from app.cli import migrate
from app.config import ROOT
from app.db import db
from app.models import Contact
from app.models import Subscription
from app.models import WorkerHeartbeat
from tests.stack_support import PostgresServer

SMTP_SINK = "/usr/sbin/smtp-sink"  # postfix's: apt-get install -y postfix
DOMAINS = 500  # recipient domains, so the per-domain limit (10 at once) is not what is measured
FILL_BATCH = 10_000
STACK = os.environ.get("LOFT_BENCH_STACK", "sqlite")
DATABASE_URL = os.environ.get("LOFT_BENCH_DATABASE_URL", "")
QUEUE_URL = os.environ.get("LOFT_BENCH_QUEUE_URL", "")
PLACEHOLDERS = re.compile(r"\?(, \?)*|%s(, %s)*")


@contextlib.contextmanager
def bench_servers():
    """(PostgreSQL URL, Redis URL) to run on, or ("", "") for SQLite and huey's SQLite queue."""
    if DATABASE_URL:
        yield DATABASE_URL, QUEUE_URL
        return
    if STACK != "postgres":
        yield "", ""
        return
    # Not under pytest's folders: those are private to root, and PostgreSQL runs as its own user.
    parent = tempfile.mkdtemp(prefix="loft-bench-services-")
    os.chmod(parent, 0o755)
    env = dict(os.environ, LOFT_SERVICES_DIR=os.path.join(parent, "svc"))
    script = str(ROOT / ".ci" / "services.sh")
    started = subprocess.run([script, "start"], env=env, check=True, capture_output=True, text=True, timeout=300)
    settings = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield settings["LOFT_TEST_DATABASE_URL"], settings["LOFT_TEST_QUEUE_URL"]
    finally:
        subprocess.run([script, "stop"], env=env, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def smtp_sink(backlog=1000):
    """postfix's smtp-sink on a free loopback port, which accepts and drops every message: the port."""
    port = free_port()
    command = [SMTP_SINK, "-c", f"127.0.0.1:{port}", str(backlog)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # smtp-sink refuses to run as root without a user to become
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def consumers(env, folder, workers):
    """One real `huey_consumer wsgi.huey` process per entry of `workers` (its thread count), without periodic
    tasks, each logging to folder/consumerN.log."""
    processes = []
    for number, threads in enumerate(workers):
        log = open(folder / f"consumer{number}.log", "wb")
        processes.append(subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w",
                                           str(threads), "-m", "1", "-n"], cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
        log.close()
    return processes


def wait_until_consuming(processes, folder, timeout=120):
    """Wait until every consumer process has started its worker threads: its heartbeat row (tasks/operations.py,
    written at the consumer's start-up) is there. A blind three-second sleep could end while two consumers were still
    importing the app together on two cores, and a campaign's join task that finds no other consumer alive is
    dropped: one campaign was sent by one run all through (1,729/s instead of 3,000, 2026-12-05). That happened once
    more with both heartbeats there (docs/benchmarks.md), so this removes one cause of it, not every one.
    Call inside the app context."""
    deadline = time.monotonic() + timeout
    pids = {process.pid for process in processes}
    while True:
        assert all(process.poll() is None for process in processes), consumer_logs(folder)
        alive = {pid for (pid,) in WorkerHeartbeat.select(WorkerHeartbeat.pid).where(
            WorkerHeartbeat.pid << list(pids), WorkerHeartbeat.stopped_at.is_null()).tuples()}
        if alive >= pids:
            return
        assert time.monotonic() < deadline, f"consumers without a heartbeat after {timeout} s: {pids - alive}"
        time.sleep(0.1)


def enqueue(env, code):
    """Run `code` in a process of its own that imports the app (as a web request or the CLI would) to enqueue a
    task, e.g. "from tasks.sending import send_campaign; send_campaign(7)". Its start-up is the caller's to leave out
    of any clock."""
    subprocess.run([sys.executable, "-c", "import wsgi; " + code], cwd=ROOT, env=env, check=True, timeout=120)


def consumer_logs(folder):
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
                     for path in sorted(folder.glob("consumer*.log")))


def stop(processes):
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


@contextlib.contextmanager
def bench_application(servers, folder, processes, name):
    """The app on a fresh, migrated database (SQLite in `folder`, or a database `name` on the PostgreSQL of
    `servers`), and the environment its consumer processes get: (app, env, stack label)."""
    server_url, queue_url = servers
    server = None
    if server_url:
        server = PostgresServer(server_url)
        url = server.create(name)
    else:
        url = f"sqlite:///{folder / 'loft.db'}"
    env = dict(os.environ, LOFT_DATABASE_URL=url, LOFT_SECRET_KEY="bench-secret", LOFT_LOG_LEVEL="WARNING",
               LOFT_BASE_URL="https://loft.example", LOFT_DOTENV="0", LOFT_SENDING_PROCESSES=str(processes),
               LOFT_HUEY_PATH=str(folder / "huey.db"), LOFT_QUEUE_URL=queue_url, LOFT_REDIS_URL="",
               LOFT_MAIL_ALLOW_PRIVATE="true",  # the workers too: smtp-sink listens on loopback
               # No DNS leaves the box: the domain-health gate is off and the resolver a closed loopback port.
               LOFT_DOMAIN_HEALTH_GATE="false", LOFT_DNS_NAMESERVER=f"127.0.0.1:{free_port()}")
    if queue_url:
        client = redis.Redis.from_url(queue_url)
        client.flushdb()
        client.close()
    app = create_app({"TESTING": True, "SECRET_KEY": "bench-secret", "DATABASE_URL": url,
                      "BASE_URL": "https://loft.example", "SENDING_PROCESSES": processes,
                      "MAIL_ALLOW_PRIVATE": True})  # smtp-sink listens on loopback (app/netguard.py)
    with app.app_context():
        migrate()
    try:
        yield app, env, "PostgreSQL + Redis" if server_url else "SQLite"
    finally:
        db.close()
        if server is not None:
            server.drop(name)
            server.close()


def fill_list(team_id, list_id, count):
    """`count` active contacts (reader0@d0.example, ... over DOMAINS domains) subscribed to the list, in batched
    executemany (the same statement on either stack); their ids in order."""
    now = datetime.datetime(2026, 11, 1)
    contacts = dialect.insert_many([Contact.team, Contact.email, Contact.domain, Contact.name, Contact.status,
                                    Contact.attributes, Contact.source, Contact.created_at, Contact.updated_at,
                                    Contact.consent_source, Contact.consent_ip, Contact.consent_text])
    for start in range(0, count, FILL_BATCH):
        with db.atomic():
            contacts.run([(team_id, f"reader{i}@d{i % DOMAINS}.example", f"d{i % DOMAINS}.example", f"Reader {i}",
                           "active", "{}", "import", now, now, "", "", "")
                          for i in range(start, min(count, start + FILL_BATCH))])
    with db.atomic():
        Subscription.insert_from(
            Contact.select(Contact.id, Value(list_id), Value("subscribed"), Value(now)).where(Contact.team == team_id),
            [Subscription.contact, Subscription.list, Subscription.status, Subscription.created_at]).execute()
    return [row[0] for row in Contact.select(Contact.id).where(Contact.team == team_id).order_by(Contact.id).tuples()]


def cpu_seconds(pid):
    """(user, system) CPU seconds of the process so far: the system part is mostly the kernel copying
    each message through loopback TCP."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def box_cpu():
    """(busy, all) CPU seconds of the whole machine since boot, every core and process (the kernel's included), from
    /proc/stat: two readings give the share of the box that was busy between them."""
    with open("/proc/stat") as f:
        ticks = [int(value) for value in f.readline().split()[1:8]]  # user nice system idle iowait irq softirq
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def busy_share(before, after):
    """The share of the machine's CPU that was busy between two box_cpu() readings."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1e-9)


@contextlib.contextmanager
def statement_times():
    """CPU seconds this process spends in each kind of statement while inside, by its first words (a Many's
    executemany and every execute_sql): {statement: [count, seconds]}. On SQLite that is the database's own work;
    on PostgreSQL only the driver's. For finding which write a change made cheaper, where a whole bench's time
    varies by more than the change."""
    found = collections.defaultdict(lambda: [0, 0.0])
    execute_sql, run = type(db.obj).execute_sql, dialect.Many.run

    def count(sql, started):
        entry = found[PLACEHOLDERS.sub("?", sql)[:70]]  # a statement of 500 parameters reads as one of 1
        entry[0] += 1
        entry[1] += time.process_time() - started

    def timed_execute_sql(self, sql, *args, **kwargs):
        started = time.process_time()
        try:
            return execute_sql(self, sql, *args, **kwargs)
        finally:
            count(sql, started)

    def timed_run(self, rows, cursor=None):
        started = time.process_time()
        try:
            return run(self, rows, cursor)
        finally:
            count("executemany " + self.sql, started)

    type(db.obj).execute_sql, dialect.Many.run = timed_execute_sql, timed_run
    try:
        yield found
    finally:
        type(db.obj).execute_sql, dialect.Many.run = execute_sql, run
