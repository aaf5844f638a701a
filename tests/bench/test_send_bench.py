"""Benchmark: a 100,000-recipient campaign through the real pipeline into postfix's smtp-sink (issue 4).

Personalised (the contact's name in the subject and body), with open and click
tracking, a 20 KB HTML body; sent by a real `huey_consumer wsgi.huey` worker
(database ledger, aiosmtplib connections) into `smtp-sink`. In the same run,
postfix's `smtp-source` sends the same number of messages of the same size to
the same sink over the same number of connections, for the ratio. The
worker's peak RSS is its VmHWM from /proc.

Needs the Debian package postfix (for /usr/sbin/smtp-sink and smtp-source):
    apt-get install -y postfix
Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_send_bench.py
Environment: LOFT_BENCH_RECIPIENTS (default 100000), LOFT_BENCH_CONNECTIONS (default 10),
LOFT_BENCH_DKIM=1 to send from a verified domain, so every message is also DKIM-signed.
The figures are printed; nothing asserts on time.
"""
import datetime
import os
import socket
import subprocess
import sys
import time

import pytest

from app import create_app
from app.cli import migrate
from app.config import ROOT
from app.db import db
from app.models import Campaign
from app.models import MailingList
from app.models import Send
from app.models import SmtpAccount
from app.models import Team
from app.sending import ledger

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
RECIPIENTS = int(os.environ.get("LOFT_BENCH_RECIPIENTS", "100000"))
CONNECTIONS = int(os.environ.get("LOFT_BENCH_CONNECTIONS", "10"))
DKIM = os.environ.get("LOFT_BENCH_DKIM", "") == "1"
DOMAINS = 500  # recipient domains, so the per-domain limit (10 at once) is not what is measured

pytestmark = pytest.mark.skipif(
    not (os.path.exists(SMTP_SINK) and os.path.exists(SMTP_SOURCE)),
    reason="postfix's smtp-sink/smtp-source are not installed (apt-get install -y postfix)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def html_body(size=20_000):
    """About `size` bytes of newsletter HTML: personalised, with a dozen tracked links."""
    parts = ['<h1>Hello {{ contact.name }},</h1>',
             '<p>Here is what happened this month at Acme. Thanks for reading, {{ contact.name }}.</p>']
    i = 0
    while sum(len(p) for p in parts) < size:
        i += 1
        parts.append(
            f'<h2 style="font-family:Helvetica,Arial,sans-serif;color:#222">Story {i}: a headline that is long enough</h2>'
            f'<p style="font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#333">'
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
            "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
            "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse. "
            f'<a href="https://acme.example/stories/{i}?utm_source=newsletter">Read story {i}</a></p>')
    return "\n".join(parts)


def fill(team_id, list_id):
    connection = db.connection()
    now = str(datetime.datetime(2026, 11, 1))
    with db.atomic():
        connection.executemany(
            "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, created_at, updated_at, "
            "consent_source, consent_ip, consent_text) VALUES (?, ?, ?, ?, 'active', '{}', 'import', ?, ?, '', '', '')",
            ((team_id, f"reader{i}@d{i % DOMAINS}.example", f"d{i % DOMAINS}.example", f"Reader {i}", now, now)
             for i in range(RECIPIENTS)))
        first = connection.execute("SELECT min(id) FROM contact WHERE team_id = ?", (team_id,)).fetchone()[0]
        connection.executemany(
            "INSERT INTO subscription (contact_id, list_id, status, created_at) VALUES (?, ?, 'subscribed', ?)",
            ((first + i, list_id, now) for i in range(RECIPIENTS)))


@pytest.fixture(scope="module")
def sink():
    port = free_port()
    command = [SMTP_SINK, "-c", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # smtp-sink refuses to run as root without a user to become
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def bench_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("sendbench") / "loft.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "bench-secret", "DATABASE_URL": f"sqlite:///{path}",
                      "BASE_URL": "https://loft.example",
                      "MAIL_ALLOW_PRIVATE": True})  # smtp-sink listens on loopback (app/netguard.py)
    with app.app_context():
        migrate()
    yield app, path
    db.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_send_100k_through_the_worker_and_compare_with_smtp_source(bench_app, sink, tmp_path):
    app, path = bench_app
    with app.app_context():
        started = time.perf_counter()
        team = Team.create(name="Bench", postal_address="1 Main Street, Springfield", default_from_name="Acme",
                           default_from_email="news@acme.example")
        newsletter = MailingList.create(team=team, name="Newsletter")
        fill(team.id, newsletter.id)
        if DKIM:
            from app.models import SenderDomain
            from app.senders import domains
            row = domains.add_domain(team, "acme.example")
            SenderDomain.update(verified_at=datetime.datetime.utcnow()).where(SenderDomain.id == row.id).execute()
        SmtpAccount.create(team=team, name="smtp-sink", host="127.0.0.1", port=sink, tls_mode="none",
                           max_connections=CONNECTIONS)
        campaign = Campaign.create(team=team, name="Monthly news", from_name="Acme", from_email="news@acme.example",
                                   subject="{{ contact.name }}, your monthly news", body=html_body(),
                                   audience={"lists": [newsletter.id]}, track_opens=True, track_clicks=True)
        built = time.perf_counter() - started
        started = time.perf_counter()
        total = ledger.freeze_audience(campaign)
        frozen = time.perf_counter() - started
        assert total == RECIPIENTS
        Campaign.update(state="sending", started_at=datetime.datetime.utcnow()).where(
            Campaign.id == campaign.id).execute()
        from app.content.message import MessageFactory
        sample = Send.select().where(Send.campaign == campaign).first()
        message = MessageFactory(campaign).build(sample, sample.contact)
        size = len(message)
        html_size = len(campaign.body)
    print(f"\n{RECIPIENTS:,} contacts built in {built:.1f} s; audience frozen (INSERT ... SELECT) in {frozen:.2f} s; "
          f"message {size:,} bytes (HTML source {html_size:,} bytes)")

    env = dict(os.environ, LOFT_HUEY_PATH=str(tmp_path / "huey.db"), LOFT_DATABASE_URL=f"sqlite:///{path}",
               LOFT_SECRET_KEY="bench-secret", LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="https://loft.example",
               LOFT_MAIL_ALLOW_PRIVATE="true")  # the worker too: smtp-sink listens on loopback
    consumer = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "2", "-m", "1",
                                 "-n"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(2)  # let the worker import the app before the clock starts
        assert consumer.poll() is None, consumer.stderr.read().decode()[-2000:]
        cpu_before = cpu_seconds(consumer.pid)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import wsgi; from tasks.sending import send_campaign; "
                                              f"send_campaign({campaign.id})"],
                       cwd=ROOT, env=env, check=True, timeout=60)
        with app.app_context():
            while Campaign.get_by_id(campaign.id).state != "completed":
                assert consumer.poll() is None, consumer.stderr.read().decode()[-2000:]
                assert time.perf_counter() - started < 1800, "did not finish in 30 minutes"
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(consumer.pid) - cpu_before
            rss = peak_rss_mb(consumer.pid)
            first, last = (Send.select(Send.sent_at).where(Send.campaign == campaign)
                           .order_by(Send.sent_at.asc() if i == 0 else Send.sent_at.desc()).scalar() for i in (0, 1))
            counts = ledger.status_counts(campaign.id)
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
    assert counts == {"sent": RECIPIENTS}
    loft_rate = RECIPIENTS / elapsed
    sending_rate = RECIPIENTS / max((last - first).total_seconds(), 1e-9)

    source = {}
    for label, extra in (("one message per connection (default)", []), ("connections reused (-d)", ["-d"])):
        started = time.perf_counter()
        subprocess.run([SMTP_SOURCE, *extra, "-s", str(CONNECTIONS), "-m", str(RECIPIENTS), "-l", str(size),
                        "-f", "news@acme.example", "-t", "reader@d1.example", f"127.0.0.1:{sink}"],
                       check=True, timeout=1800, stdout=subprocess.DEVNULL)
        source[label] = RECIPIENTS / (time.perf_counter() - started)

    print(f"Loft{' (DKIM-signed)' if DKIM else ''}: {RECIPIENTS:,} messages over {CONNECTIONS} connections in {elapsed:.1f} s = {loft_rate:,.0f} msg/s "
          f"(enqueue to completed; {sending_rate:,.0f} msg/s between first and last sent_at); "
          f"worker CPU {cpu:.1f} s; worker peak RSS {rss:.0f} MB")
    for label, rate in source.items():
        print(f"smtp-source, {label}: {rate:,.0f} msg/s -> Loft is {loft_rate / rate:.0%} of it")
