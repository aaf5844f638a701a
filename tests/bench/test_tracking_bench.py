"""Benchmark: the open pixel and click redirect under load, served by gunicorn as in the Procfile (issue 5).

Goal: >= 3,000 requests/s on loopback with every hit recorded.

A seeded SQLite database holds one team, LOFT_BENCH_SENDS contacts (default 10,000), a sent
campaign with ten tracked links and one Send per contact. The load is one URL list, alternating
an open-pixel URL and a click URL for every Send (20,000 distinct URLs), each with a valid
token, fetched in rotation with a desktop browser's User-Agent, so every hit is a human open or
click: one Event insert plus one Contact update, the heaviest path.

The server is the Procfile's `web:` command line itself (read from the Procfile, run by sh from
the project root, so gunicorn.conf.py applies), pointed at the bench database by LOFT_* variables.
The load generator is Debian's `wrk` (C, one thread, LOFT_BENCH_CONNECTIONS connections, default
48) with a Lua script that rotates through the URL list. After a warm-up, the main run lasts
LOFT_BENCH_SECONDS (default 15). In the last second of each run the script asks only for a path
that does not exist (a 404 that records nothing), so when wrk stops no tracking request is left
without its answer: the number of 2xx/3xx answers is then exactly the number of hits the server
acknowledged. gunicorn is stopped gracefully (SIGTERM) and the test asserts that the Event rows
written equal the acknowledged hits, warm-up and main run each counted on their own. It never
asserts on the request rate; the rate, latency percentiles, CPU used and the machine's load
average are printed.

Needs `wrk` (apt-get install -y wrk; `make bench` installs it); skipped with the reason otherwise.
Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_tracking_bench.py
Environment: LOFT_BENCH_SENDS, LOFT_BENCH_SECONDS, LOFT_BENCH_CONNECTIONS, LOFT_BENCH_LOG_LEVEL
(default INFO, as in production: one JSON access line per request).
"""
import datetime
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from app import create_app
from app.cli import migrate
from app.config import ROOT
from app.db import db
from app.models import Campaign
from app.models import Link
from app.models import Team
from app.tokens import Signer

WRK = shutil.which("wrk")
SENDS = int(os.environ.get("LOFT_BENCH_SENDS", "10000"))
SECONDS = int(os.environ.get("LOFT_BENCH_SECONDS", "15"))
CONNECTIONS = int(os.environ.get("LOFT_BENCH_CONNECTIONS", "48"))
LOG_LEVEL = os.environ.get("LOFT_BENCH_LOG_LEVEL", "INFO")
WARMUP_SECONDS = 4
TAIL_SECONDS = 1.0  # the last second of a run asks only for TAIL_PATH
TAIL_PATH = "/bench-tail-not-found"
LINKS = 10
SECRET = "bench-secret"
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")

pytestmark = pytest.mark.skipif(WRK is None, reason="wrk is not installed (apt-get install -y wrk)")

LUA = r"""
-- Rotates through the URL list (args: file, seconds, tail seconds); in the last `tail`
-- seconds it asks only for a path that records nothing, so every tracking request is
-- answered before wrk stops. done() prints one JSON line.
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } loft_timespec;
           int clock_gettime(int, loft_timespec *); ]]
local ts = ffi.new("loft_timespec")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9 end

wrk.headers["User-Agent"] = "%(agent)s"
local paths, n, i, stop_at = {}, 0, 0, 0
real, first_at, tail_at, id, verified = 0, 0, 0, 0, false
local tail = wrk.format(nil, "%(tail)s")

function init(args)
  for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
  stop_at = now() + tonumber(args[2]) - tonumber(args[3])
  tail_at = stop_at
end

function request()
  if id == 1 and not verified then verified = true; return tail end  -- wrk's one check call, never sent
  local t = now()
  if t < stop_at then
    if real == 0 then first_at = t end
    real = real + 1
    i = i %% n + 1
    return wrk.format(nil, paths[i])
  end
  return tail
end

local threads = {}
function setup(thread) table.insert(threads, thread); thread:set("id", #threads) end

function done(summary, latency, requests)
  local sent, first, last = 0, 1e18, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("real")
    first = math.min(first, t:get("first_at"))
    last = math.max(last, t:get("tail_at"))
  end
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "timeout": %%d, "real_sent": %%d, "real_seconds": %%.4f, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, sent, last - first, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web_command():
    """The Procfile's `web:` command line, as honcho would run it."""
    with open(ROOT / "Procfile") as f:
        for line in f:
            if line.startswith("web:"):
                return line.partition(":")[2].strip()
    raise AssertionError("the Procfile has no web: process")


def seed(path):
    """One team, SENDS contacts, a sent campaign with LINKS links and one Send per contact; the URL list."""
    app = create_app({"TESTING": True, "SECRET_KEY": SECRET, "DATABASE_URL": f"sqlite:///{path}"})
    then = datetime.datetime.utcnow() - datetime.timedelta(days=1)
    with app.app_context():
        migrate()
        team = Team.create(name="Bench", postal_address="1 Main Street", default_from_name="Acme",
                           default_from_email="news@acme.example")
        campaign = Campaign.create(team=team, name="Bench news", state="completed", subject="Hello",
                                   body="<p>Hi</p>", from_name="Acme", from_email="news@acme.example",
                                   started_at=then, finished_at=then, total=SENDS, sent=SENDS)
        links = [Link.create(campaign=campaign, url=f"https://acme.example/story/{i}?utm_source=loft").id
                 for i in range(LINKS)]
        connection = db.connection()
        with db.atomic():
            connection.executemany(
                "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, created_at, "
                "updated_at, consent_source, consent_ip, consent_text) "
                "VALUES (?, ?, ?, ?, 'active', '{}', 'import', ?, ?, '', '', '')",
                ((team.id, f"reader{i}@d{i % 100}.example", f"d{i % 100}.example", f"Reader {i}", str(then),
                  str(then)) for i in range(SENDS)))
            connection.execute(
                "INSERT INTO send (campaign_id, contact_id, email, status, attempts, message_id, error, sent_at) "
                "SELECT ?, id, email, 'sent', 1, '', '', ? FROM contact WHERE team_id = ? ORDER BY id",
                (campaign.id, str(then), team.id))
        send_ids = [row[0] for row in connection.execute(
            "SELECT id FROM send WHERE campaign_id = ? ORDER BY id", (campaign.id,))]
        db.close()
    signer = Signer(SECRET)
    urls = []
    for n, send_id in enumerate(send_ids):
        urls.append(f"/o/{signer.sign_one('open', send_id)}.gif")
        urls.append(f"/c/{signer.sign_one('click', send_id)}/{links[n % LINKS]}")
    return urls


def count_events(path):
    connection = sqlite3.connect(path)
    try:
        return dict(connection.execute(
            "SELECT type, count(*) FROM event WHERE type IN ('opened', 'clicked') GROUP BY type").fetchall())
    finally:
        connection.close()


def process_tree(pid):
    """The pid and its children's pids (gunicorn's master and workers)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_wrk(script, urls_file, port, seconds):
    output = subprocess.run(
        [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}", "--", str(urls_file), str(seconds), str(TAIL_SECONDS)],
        check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK-JSON "))
    result = json.loads(line[len("WRK-JSON "):])
    result["acked"] = result["requests"] - result["status_errors"]  # 2xx/3xx answers: tracking hits only
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


def check_recorded(result, recorded, label):
    """Every acknowledged hit was recorded, and nothing more than was asked for."""
    assert result["requests"] > 0, f"{label}: wrk got no answers"
    if result["socket_errors"] == 0:
        # All real requests were answered before the tail (the script's bookkeeping agrees).
        assert result["acked"] == result["real_sent"], (label, result)
        assert recorded == result["acked"], (label, recorded, result)
    else:
        # A request in flight on a broken connection may or may not have been recorded.
        assert result["acked"] <= recorded <= result["real_sent"], (label, recorded, result)


def test_open_and_click_endpoints_under_load(tmp_path):
    started = time.perf_counter()
    path = tmp_path / "loft.db"
    urls = seed(path)
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n")
    script = tmp_path / "rotate.lua"
    script.write_text(LUA % {"agent": BROWSER, "tail": TAIL_PATH})
    print(f"\nseeded {SENDS:,} sends and {len(urls):,} distinct tracking URLs in {time.perf_counter() - started:.1f} s")

    port = free_port()
    command = procfile_web_command()
    env = dict(os.environ, LOFT_BIND=f"127.0.0.1:{port}", LOFT_DATABASE_URL=f"sqlite:///{path}",
               LOFT_SECRET_KEY=SECRET, LOFT_HUEY_PATH=str(tmp_path / "huey.db"), LOFT_LOG_LEVEL=LOG_LEVEL,
               LOFT_BASE_URL="https://loft.example")
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        for _ in range(300):
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/o/x.gif", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("gunicorn did not answer in 30 s")

        warm = run_wrk(script, urls_file, port, WARMUP_SECONDS)
        time.sleep(2)  # anything the server holds back must be written by now, without a shutdown
        after_warmup = sum(count_events(path).values())
        check_recorded(warm, after_warmup, "warm-up")

        pids = process_tree(server.pid)
        load_before = os.getloadavg()
        cpu_before = cpu_seconds(pids)
        result = run_wrk(script, urls_file, port, SECONDS)
        cpu = cpu_seconds(pids) - cpu_before
        load_after = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish, then exit
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0, log_path.read_text()[-3000:]
    counts = count_events(path)
    recorded = sum(counts.values()) - after_warmup
    check_recorded(result, recorded, "main run")

    rate = result["acked"] / result["real_seconds"]
    flush = env.get("LOFT_TRACKING_FLUSH_MS", "50 (default)")
    print(f"command: {command} (LOFT_LOG_LEVEL={LOG_LEVEL}, LOFT_TRACKING_FLUSH_MS={flush}); "
          f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s")
    print(f"tracking hits: {rate:,.0f} requests/s ({result['acked']:,} answered 2xx/3xx in "
          f"{result['real_seconds']:.2f} s; the last {TAIL_SECONDS:.0f} s of the run asked for a 404 only); "
          f"all requests incl. the tail: {result['requests'] / (result['duration_us'] / 1e6):,.0f}/s")
    print(f"latency (all requests): p50 {result['p50_us'] / 1000:.2f} ms, p90 {result['p90_us'] / 1000:.2f} ms, "
          f"p99 {result['p99_us'] / 1000:.2f} ms, max {result['max_us'] / 1000:.1f} ms; "
          f"socket errors {result['socket_errors']}")
    print(f"recorded: {recorded:,} events in the main run (= answered hits), {after_warmup:,} in the warm-up; "
          f"all: {counts}")
    print(f"gunicorn CPU {cpu:.1f} s over the run ({cpu / max(result['acked'], 1) * 1e6:.0f} µs per hit); "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), {os.cpu_count()} CPUs")
