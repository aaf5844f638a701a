"""kill -9 of a real huey consumer while it does the email step of many runs, then a restart: every contact gets the
step's email exactly once (the run's visit of the step holds its Send row, both written in one transaction:
app/automations/mail.py, scheduler._email_batch; the step done again after the crash finds it), and a day later
(the clock file moved) the same consumer sends the next email step once each. A real subprocess consumer, a real SMTP
server on loopback, the test clock file shared with the consumer."""
import datetime
import os
import signal
import subprocess
import sys
import time

from peewee import fn

from app import clock
from app.automations import runs
from app.automations import scheduler
from app.config import ROOT
from app.senders import domains
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import Send
from app.models import SendRun
from app.models import SenderDomain
from app.models import utcnow
from tests.conftest import free_port
from tests.sending_support import TestSmtp
from tests.sending_support import make_account
from tests.sending_support import make_contacts
from tests.sending_support import make_team

# More than one part of the batched email step (scheduler.EMAIL_PART, 500), so the kill lands between two parts
CONTACTS = 800


def emails_queued():
    """Visits that hold a queued email (their send_id), of any email step."""
    return AutomationVisit.select().where(AutomationVisit.send_id.is_null(False)).count()


def start_consumer(env):
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "2", "-m", "0.1",
                             "--flush-locks"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def output(process):
    try:
        return process.communicate(timeout=10)[0].decode(errors="replace")[-3000:]
    except subprocess.TimeoutExpired:
        process.kill()
        return "(no output)"


def ledger_state(app):
    """What a stuck restart left behind, for the failure message: Send rows by status, the campaign, live runs."""
    with app.app_context():
        statuses = {row.status: row.n for row in Send.select(Send.status, fn.COUNT(Send.id).alias("n"))
                    .group_by(Send.status)}
        campaigns = [(c.state, c.state_reason) for c in Campaign.select()]
        return f"sends {statuses}, campaigns {campaigns}, engine runs {SendRun.select().count()}"


def enqueue_tick(env):
    code = "import wsgi; from tasks.automations import advance; advance()"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_kill_9_during_an_email_step_sends_it_exactly_once_after_a_restart(app, tmp_path, queue_env):
    sink = TestSmtp(delay=0.001)
    clock_file = tmp_path / "clock.txt"
    app.config["CLOCK_FILE"] = str(clock_file)
    try:
        with app.app_context():
            start = clock.set_time(clock_file, utcnow().replace(microsecond=0))
            team = make_team()
            domain = domains.add_domain(team, "acme.test")  # email steps send only From a verified domain
            SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == domain.id).execute()
            make_account(team, sink.port, max_connections=4)
            contacts = make_contacts(team, CONTACTS)
            automation = Automation.create(team=team, name="Welcome", state="live", trigger={"kind": "manual"},
                                           goal={}, from_name="Acme", from_email="news@acme.test")
            welcome = AutomationStep.create(automation=automation, kind="email", config={
                "subject": "Welcome {{ contact.name }}", "preheader": "", "kind": "html", "body": "<p>Hi</p>",
                "template_id": None, "from_name": "", "from_email": ""})
            wait = AutomationStep.create(automation=automation, kind="wait",
                                         config={"mode": "duration", "minutes": 24 * 60})
            day_two = AutomationStep.create(automation=automation, kind="email", config={
                "subject": "Day two", "preheader": "", "kind": "html", "body": "<p>Again</p>",
                "template_id": None, "from_name": "", "from_email": ""})
            AutomationStep.update(next_id=wait.id).where(AutomationStep.id == welcome.id).execute()
            AutomationStep.update(next_id=day_two.id).where(AutomationStep.id == wait.id).execute()
            automation.first_step_id = welcome.id
            automation.save()
            for person in contacts:
                assert runs.enter(automation, person, {}, start) is not None
        env = dict(os.environ, **queue_env, LOFT_DATABASE_URL=app.config["DATABASE_URL"],
                   LOFT_SECRET_KEY=app.config["SECRET_KEY"],  # the DKIM key is stored encrypted with it
                   LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test",
                   LOFT_MAIL_ALLOW_PRIVATE="true", LOFT_SENDING_PROCESSES="1",
                   LOFT_CLOCK_FILE=str(clock_file), LOFT_TESTING="1",
                   # As the in-process tests' config: no domain-health gate, and no DNS question leaves loopback.
                   # With the gate on, the consumer's periodic domain check found acme.test without DMARC or MX
                   # and paused the step's campaign: the "0 of 400 got the email" failures.
                   LOFT_DOMAIN_HEALTH_GATE="false", LOFT_DNS_NAMESERVER=f"127.0.0.1:{free_port()}")
        enqueue_tick(env)
        consumer = start_consumer(env)
        try:
            deadline = time.monotonic() + 60
            while True:
                with app.app_context():
                    queued = emails_queued()
                if queued:  # the email step has begun: kill now, with most of the runs still to do
                    break
                if time.monotonic() > deadline or consumer.poll() is not None:
                    consumer.kill()
                    raise AssertionError("the consumer did not start the email step: " + output(consumer))
                time.sleep(0.005)
            os.kill(consumer.pid, signal.SIGKILL)
            consumer.wait(timeout=10)
        finally:
            if consumer.poll() is None:
                consumer.kill()

        with app.app_context():
            at_kill = emails_queued()
            # The batched step writes each part's visits (with their outcomes and emails), Sends and moves in one
            # transaction (scheduler._email_batch): a kill leaves whole parts done and the others untouched.
            recorded = AutomationVisit.select().where((AutomationVisit.step == welcome.id)
                                                      & (AutomationVisit.outcome != "")).count()
            assert Send.select().count() == at_kill  # each queued email is one Send row, written together
        assert CONTACTS > scheduler.EMAIL_PART
        assert at_kill < CONTACTS or recorded < CONTACTS, \
            f"the kill came after the email step: nothing was tested ({at_kill} queued, {recorded} recorded)"

        # The dead tick's lease on its runs (5 minutes of the engine's clock) runs out; a new consumer takes over.
        clock.advance(clock_file, minutes=6)
        restarted = start_consumer(env)
        try:
            enqueue_tick(env)
            # Room for a loaded box: a send the dead consumer had begun waits out its run's lease and its claims
            # (15 s each, real time) and then the sending engine's next minute tick.
            deadline = time.monotonic() + 240
            while sum(1 for count in sink.handler.delivered.values() if count) < CONTACTS:
                if time.monotonic() > deadline or restarted.poll() is not None:
                    restarted.kill()
                    raise AssertionError(f"{len(sink.handler.delivered)} of {CONTACTS} got the email; "
                                         f"at the kill {at_kill} were queued; {ledger_state(app)}: "
                                         + output(restarted))
                time.sleep(0.1)
            time.sleep(1.5)  # anything sent twice would arrive now
            delivered = dict(sink.handler.delivered)
            assert set(delivered) == {c.email for c in contacts}
            twice = sorted(address for address, count in delivered.items() if count != 1)
            assert not twice, f"{len(twice)} got the email more than once: {twice[:5]}"
            with app.app_context():
                assert emails_queued() == CONTACTS and Send.select().count() == CONTACTS
                assert {run.step_id for run in AutomationRun.select()} == {wait.id}
                assert AutomationRun.select().where(
                    AutomationRun.next_at > start + datetime.timedelta(hours=23)).count() == CONTACTS

            # A day later (the clock file, which the consumer reads too) the same consumer sends day two, once each.
            enqueue_tick(env)
            time.sleep(1.0)
            assert sink.handler.total() == CONTACTS  # the wait holds them: not a day yet
            clock.advance(clock_file, days=1)
            enqueue_tick(env)
            deadline = time.monotonic() + 120
            while sink.handler.total() < 2 * CONTACTS:
                if time.monotonic() > deadline or restarted.poll() is not None:
                    restarted.kill()
                    raise AssertionError(f"{sink.handler.total() - CONTACTS} of {CONTACTS} got day two: "
                                         + output(restarted))
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            restarted.terminate()
            restarted.wait(timeout=15)
        assert set(sink.handler.delivered.values()) == {2}
        with app.app_context():
            assert {run.state for run in AutomationRun.select()} == {"done"}
    finally:
        sink.stop()
