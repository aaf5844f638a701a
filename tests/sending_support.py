"""Helpers for the sending-engine tests: real SMTP servers on loopback and campaign fixtures.

TestSmtp is a real aiosmtpd server (its own thread and event loop) that
counts what it accepted per recipient and can misbehave on purpose:
greylist (451 the first time per recipient), answer 421 and close the
connection, drop the connection during DATA, refuse some recipients with
550 5.1.1, or claim the account hit its daily limit.
"""
import asyncio
import collections
import datetime
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult

from app.models import Campaign
from app.models import Contact
from app.models import MailingList
from app.models import Send
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Team
from app.models import utcnow
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.conftest import free_port


class Handler:
    def __init__(self, delay=0.0, greylist=False, close_421_every=0, drop_every=0, reject=(),
                 reject_reply="550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
                 limit_after=None, limit_reply="550 5.7.1 Message rejected: You have exceeded your daily sending limit",
                 always_451=(), track_domains=False, stall_first=0.0, pipelining=True):
        self.delay = delay
        self.pipelining = pipelining  # offered in the EHLO reply (aiosmtpd reads pipelined commands in order)
        self.greylist = greylist
        self.close_421_every = close_421_every
        self.drop_every = drop_every
        self.reject = tuple(reject)
        self.reject_reply = reject_reply
        self.limit_after = limit_after
        self.limit_reply = limit_reply
        self.always_451 = tuple(always_451)
        self.track_domains = track_domains
        self.stall_first = stall_first  # seconds of silence after the first DATA for each recipient
        self.stalled = collections.Counter()
        self.lock = threading.Lock()
        self.delivered = collections.Counter()  # recipient -> messages accepted (250 after DATA)
        self.messages = []  # (mail_from, recipient, raw bytes) of the first 200 accepted
        self.seen_rcpt = collections.Counter()
        self.sessions = 0
        self.refused = collections.Counter()  # reply code -> how many times
        self.active = collections.Counter()  # recipient domain -> deliveries in progress now
        self.max_active = collections.Counter()  # recipient domain -> the most at once
        self.max_active_total = 0
        self.accepted_at = []  # loop time of each accepted message

    def total(self):
        return sum(self.delivered.values())

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not getattr(session, "counted", False):
            session.counted = True
            session.transactions = 0
            with self.lock:
                self.sessions += 1
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.limit_after is not None and self.total() >= self.limit_after:
            self.refused[int(self.limit_reply[:3])] += 1
            return self.limit_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.seen_rcpt[address] += 1
            first = self.seen_rcpt[address] == 1
        if address.startswith(self.always_451):
            self.refused[451] += 1
            return "451 4.3.0 Mailbox temporarily unavailable, try later"
        if self.greylist and first:
            self.refused[451] += 1
            return "451 4.7.1 Greylisted, please try again later"
        if self.reject and address.startswith(self.reject):
            self.refused[550] += 1
            return self.reject_reply.format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        session.transactions = getattr(session, "transactions", 0) + 1
        if self.close_421_every and session.transactions % self.close_421_every == 0:
            self.refused[421] += 1
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, closing transmission channel"
        if self.drop_every and session.transactions % self.drop_every == 0:
            self.refused[0] += 1
            server.transport.abort()  # gone without a reply: the client cannot know
            return "250 never seen"
        if self.stall_first and not any(self.stalled[rcpt] for rcpt in envelope.rcpt_tos):
            for rcpt in envelope.rcpt_tos:
                self.stalled[rcpt] += 1
            await asyncio.sleep(self.stall_first)
            if server.transport is None or server.transport.is_closing():
                return "451 4.4.2 nobody is listening any more"  # the client gave up: not delivered
        domains = {rcpt.rpartition("@")[2] for rcpt in envelope.rcpt_tos}
        if self.track_domains:
            for domain in domains:
                self.active[domain] += 1
                self.max_active[domain] = max(self.max_active[domain], self.active[domain])
            self.max_active_total = max(self.max_active_total, sum(self.active.values()))
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            if self.track_domains:
                for domain in domains:
                    self.active[domain] -= 1
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.delivered[rcpt] += 1
                if len(self.messages) < 200:
                    self.messages.append((envelope.mail_from, rcpt, envelope.original_content or envelope.content))
            self.accepted_at.append(asyncio.get_running_loop().time())
        return "250 2.0.0 Ok: queued"


def tls_context():
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (made with cryptography)."""
    import ipaddress
    import ssl
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    return context


class _Controller(Controller):
    def __init__(self, handler, login=None, starttls=False, **kwargs):
        super().__init__(handler, **kwargs)
        self.login = login
        self.tls = tls_context() if starttls else None

    def factory(self):
        options = dict(hostname="sink.test", data_size_limit=10 * 1024 * 1024)
        if self.login:
            options.update(auth_required=True, auth_require_tls=self.tls is not None, authenticator=self.authenticate)
        if self.tls is not None:
            options.update(tls_context=self.tls, require_starttls=True)
        return SMTPServer(self.handler, **options)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.login
        return AuthResult(success=ok, handled=False)


class TestSmtp:
    """A started server; `.port`, `.handler`, `.stop()`. login=("user", "password") requires AUTH;
    starttls=True requires STARTTLS (self-signed certificate) before anything else."""
    __test__ = False

    def __init__(self, login=None, starttls=False, port=None, **behaviour):
        self.handler = Handler(**behaviour)
        self.port = port or free_port()  # a given port: a server that comes back where one was missing
        self.controller = _Controller(self.handler, login=login, starttls=starttls, hostname="127.0.0.1",
                                      port=self.port, ready_timeout=10)
        self.controller.start()

    def stop(self):
        self.controller.stop()


# --- Data -----------------------------------------------------------------------------

def make_team(name="Acme"):
    return Team.create(name=name, default_from_email="news@acme.test", default_from_name="Acme",
                       postal_address="1 Main Street, Springfield")


def make_contacts(team, count, mailing_list=None, domain="example.com", prefix="reader", status="active",
                  start=0, domains=None):
    """`count` contacts (reader0@example.com, ...), subscribed to `mailing_list` when given."""
    rows = []
    now = utcnow()
    for i in range(start, start + count):
        host = domains[i % len(domains)] if domains else domain
        rows.append({"team": team.id, "email": f"{prefix}{i}@{host}", "domain": host, "status": status,
                     "name": f"Reader {i}", "attributes": {}, "created_at": now, "updated_at": now})
    for chunk in range(0, len(rows), 500):
        Contact.insert_many(rows[chunk:chunk + 500]).execute()
    contacts = list(Contact.select().where((Contact.team == team) & Contact.email.in_([r["email"] for r in rows]))
                    .order_by(Contact.id))
    if mailing_list is not None:
        subs = [{"contact": c.id, "list": mailing_list.id, "status": "subscribed", "created_at": now}
                for c in contacts]
        for chunk in range(0, len(subs), 500):
            Subscription.insert_many(subs[chunk:chunk + 500]).execute()
    return contacts


def make_account(team, port, name="Loopback", **limits):
    values = dict(team=team, name=name, host="127.0.0.1", port=port, tls_mode="none", max_connections=4)
    values.update(limits)
    return SmtpAccount.create(**values)


def make_campaign(team, lists=(), state="sending", **fields):
    values = dict(team=team, name="Spring news", from_email="news@acme.test", from_name="Acme",
                  subject="Hello {{ contact.name }}", body="<p>Hi {{ contact.name }}</p>",
                  audience={"lists": [l.id for l in lists], "segments": [], "exclude_lists": [],
                                       "exclude_segments": []},
                  state=state, track_opens=True, track_clicks=True)
    values.update(fields)
    return Campaign.create(**values)


def launched(team, recipients, port, connections=4, **account_limits):
    """A team with `recipients` contacts on a list, an account on `port`, a frozen sending campaign."""
    mailing_list = MailingList.create(team=team, name="Newsletter")
    contacts = make_contacts(team, recipients, mailing_list)
    account = make_account(team, port, max_connections=connections, **account_limits)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)
    return Campaign.get_by_id(campaign.id), contacts, account


def statuses(campaign):
    return ledger.status_counts(campaign.id)


def sends(campaign):
    return list(Send.select().where(Send.campaign == campaign).order_by(Send.id))


# Engine timings for tests that run real sends with several runs: short waits, the 15 s lease kept.
FAST_SENDING = dict(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                    SEND_STATE_INTERVAL=0.1, SEND_MAX_IN_RUN_WAIT=1.0, SEND_BATCH_SIZE=50, SEND_LEASE_SECONDS=15)


def run(campaign_id, **kwargs):
    return sending_tasks.run_campaign(campaign_id, **kwargs)


def two_campaigns_sent_at_once(ctx, team, recipients=12):
    """Two campaigns of `team` ("Spring" and "Summer", `recipients` contacts each), each sent by its own
    engine run in its own thread, both started together: (campaigns, {campaign id: run result})."""
    campaigns = []
    for name in ("Spring", "Summer"):
        mailing_list = MailingList.create(team=team, name=name)
        make_contacts(team, recipients, mailing_list, prefix=name.lower())
        campaign = make_campaign(team, [mailing_list], name=name)
        ledger.freeze_audience(campaign)
        campaigns.append(campaign)
    results, started = {}, threading.Barrier(2)

    def send(campaign_id):
        with ctx.app_context():
            started.wait()
            results[campaign_id] = run(campaign_id)
    threads = [threading.Thread(target=send, args=(c.id,)) for c in campaigns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return campaigns, results


def run_until_settled(campaign_id, limit=10):
    """Run again while the engine asks to (the task does this through the queue)."""
    for _ in range(limit):
        result = run(campaign_id)
        if not result.again:
            return result
    raise AssertionError("the campaign did not settle")
