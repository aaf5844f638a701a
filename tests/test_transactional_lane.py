"""The transactional stream's own lane, with real huey consumers: while a campaign's send task holds the only
worker of the main queue, a transactional message queued on `tx_huey` is picked up by the `tx` consumer and
reaches its SMTP server. On the PostgreSQL stack the consumers use the test's database and, with
LOFT_TEST_QUEUE_URL, Redis (the transactional queue under its own name in the same Redis database)."""
import os
import subprocess
import sys
import time

import pytest

from app.config import ROOT
from app.models import Campaign
from app.models import SenderDomain
from app.models import SendRun
from app.models import TxMessage
from app.models import utcnow
from app.senders import domains
from app.transactional import service
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_team

TIMEOUT = 60
RECIPIENTS = 600


@pytest.fixture
def sinks():
    campaign_sink, tx_sink = TestSmtp(delay=0.01), TestSmtp()
    yield campaign_sink, tx_sink
    campaign_sink.stop()
    tx_sink.stop()


def consumer(queue, env, log_path, *options):
    log = open(log_path, "wb")
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), queue, "-w", "1", "--no-periodic",
                                *options], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def wait_for(what, condition, logs, state=lambda: ""):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {TIMEOUT} s waiting for {what} {state()}\n"
                        + "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs))
        time.sleep(0.05)


def test_a_receipt_goes_out_while_a_campaign_holds_the_main_queues_worker(app, sinks, queue_env, tmp_path):
    campaign_sink, tx_sink = sinks
    with app.app_context():
        team = make_team()
        row = domains.add_domain(team, "acme.test")
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
        # 600 recipients at 10 a second (campaigns leave the receipts' account alone): the campaign's run holds
        # the main worker for about a minute.
        campaign, _contacts, _account = launched(team, RECIPIENTS, campaign_sink.port, connections=1, per_second=10)
        make_account(team, tx_sink.port, name="Receipts", transactional=True, max_connections=1)
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test", LOFT_DOTENV="0",
               LOFT_MAIL_ALLOW_PRIVATE="true", LOFT_SENDING_PROCESSES="1", **queue_env)
    logs = [tmp_path / "main.log", tmp_path / "tx.log"]
    main = consumer("wsgi.huey", env, logs[0], "-m", "1")
    tx_consumer = None
    try:
        enqueue = f"import wsgi; from tasks.sending import send_campaign; send_campaign({campaign.id})"
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)

        def campaign_running():
            with app.app_context():
                return SendRun.select().where(SendRun.campaign == campaign.id).exists() \
                    and campaign_sink.handler.total() > 0
        wait_for("the campaign's run to hold the main worker", campaign_running, logs)

        tx_consumer = consumer("wsgi.tx_huey", env, logs[1], "-d", "0.05", "-m", "0.2")
        with app.app_context():
            tx = service.accept(team, api_key=None, message={"to": "buyer@example.com", "subject": "Your receipt",
                                                              "html": "<p>Thanks!</p>"})
        queue_tx = f"import wsgi; from tasks.transactional import send_tx; send_tx({tx.id})"
        subprocess.run([sys.executable, "-c", queue_tx], cwd=ROOT, env=env, check=True, timeout=60)
        def history():
            with app.app_context():
                return service.status_history(tx)
        wait_for("the receipt in its SMTP server", lambda: tx_sink.handler.delivered["buyer@example.com"] == 1, logs,
                 history)

        with app.app_context():
            assert Campaign.get_by_id(campaign.id).state == "sending"  # the campaign still held the main worker
            assert SendRun.select().where(SendRun.campaign == campaign.id).exists()
            wait_for("the receipt's status", lambda: TxMessage.get_by_id(tx.id).status == "sent", logs)
        assert campaign_sink.handler.total() < RECIPIENTS and tx_sink.handler.total() == 1
        assert campaign_sink.handler.delivered["buyer@example.com"] == 0
    finally:
        for process in (main, tx_consumer):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (main, tx_consumer):
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
