"""Benchmark: a welcome burst. N contacts enter a live welcome automation at once (runs.enter_many), the scheduler
moves every run through its email step (app/automations/mail.py queues one Send per run in the step's hidden
campaign), and the sending engine hands every first email to postfix's smtp-sink. Then a campaign to the same N
contacts, on the same sink and SMTP account, for the ratio. Both in this one process, on SQLite (the default stack).

Run with `make bench` or
    LOFT_BENCH_WELCOME_CONTACTS=100000 .venv/bin/python -m pytest -q -s tests/bench/test_automation_welcome_bench.py
The figures are printed; nothing asserts on time."""
import os
import socket
import subprocess
import time

import pytest

from app.automations import mail
from app.automations import runs
from app.automations import scheduler
from app.models import Automation
from app.models import AutomationStep
from app.models import MailingList
from app.models import Send
from app.models import SenderDomain
from app.models import SendStatus
from app.models import utcnow
from app.senders import domains
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team

SMTP_SINK = "/usr/sbin/smtp-sink"
CONTACTS = int(os.environ.get("LOFT_BENCH_WELCOME_CONTACTS", "100000"))
CONNECTIONS = 10
BODY = "<p>Welcome, {{ contact.name }}!</p>" + "<p>Lorem ipsum dolor sit amet. </p>" * 40 + \
    '<p><a href="https://example.org/start">Start here</a></p>'

pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="postfix's smtp-sink is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sink():
    port = free_port()
    command = [SMTP_SINK, "-c", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
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


def send_all(campaign_id):
    while True:
        result = sending_tasks.run_campaign(campaign_id)
        pending = Send.select().where((Send.campaign == campaign_id) & (Send.status << ledger.PENDING)).count()
        if not pending or not result.again and result.outcome not in ("idle", "deadline", "waiting"):
            return


def test_welcome_burst_against_a_campaign(ctx, sink):
    ctx.config.update(SEND_LEASE_SECONDS=15)
    team = make_team()
    # Email steps send only From a verified domain: both sides are then DKIM-signed.
    domain = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
    make_account(team, sink, max_connections=CONNECTIONS)
    news = MailingList.create(team=team, name="Newsletter")
    contacts = make_contacts(team, CONTACTS, news)
    ids = [c.id for c in contacts]
    automation = Automation.create(team=team, name="Welcome", state="live", trigger={"kind": "manual"}, goal={},
                                   from_name="Acme", from_email="news@acme.test")
    step = AutomationStep.create(automation=automation, kind="email", config={
        "subject": "Welcome {{ contact.name }}", "preheader": "", "kind": "html", "body": BODY, "template_id": None,
        "from_name": "", "from_email": ""})
    automation.first_step_id = step.id
    automation.save()

    started = time.monotonic()
    entered = runs.enter_many(automation, ids)
    entering = time.monotonic() - started
    while scheduler.tick(limit=1000):
        pass
    queueing = time.monotonic() - started - entering
    (campaign_id,) = mail.due_campaign_ids()
    send_all(campaign_id)
    total = time.monotonic() - started
    sent = Send.select().where((Send.campaign == campaign_id) & (Send.status == SendStatus.SENT)).count()
    assert entered == CONTACTS and sent == CONTACTS

    campaign = make_campaign(team, [news], subject="Welcome {{ contact.name }}", body=BODY)
    started = time.monotonic()
    ledger.freeze_audience(campaign)
    send_all(campaign.id)
    campaign_total = time.monotonic() - started
    campaign_sent = Send.select().where((Send.campaign == campaign.id) & (Send.status == SendStatus.SENT)).count()
    assert campaign_sent == CONTACTS

    automation_rate, campaign_rate = CONTACTS / total, CONTACTS / campaign_total
    print(f"\nwelcome burst, {CONTACTS:,} contacts: enter {entering:.1f} s, scheduler through the email step "
          f"{queueing:.1f} s, all handed to SMTP after {total:.1f} s = {automation_rate:,.0f}/s")
    print(f"campaign, {CONTACTS:,} recipients: freeze + send {campaign_total:.1f} s = {campaign_rate:,.0f}/s")
    print(f"ratio automation/campaign: {automation_rate / campaign_rate:.2f}")
