"""Whether each SMTP account can be reached, as the sending engine last found it.

An outage was invisible: with the server gone, the campaign kept showing its last rate, the account
said "Active" and the worker logged nothing. Now the engine records each change of an account's
connection state (never each retry), and the account card and the campaign page say it in words:
"waiting for SMTP host smtp.example.com: connection refused since 12:01, retrying".

    smtp_account.connection_state   "" (not used yet) | "ok" | "failing"
    smtp_account.last_error         the last connection failure, in words
    smtp_account.failing_since      when the current run of failures began (UTC)
    smtp_account.connected_at       the last time a connection succeeded (UTC)

The engine calls record_failure / record_ok on its database thread only when the state changes, so
a dead host costs one write, however often the connection is retried.
"""
import logging

from peewee import fn

from app.models import SmtpAccount
from app.models import utcnow

log = logging.getLogger(__name__)


def record_failure(account_id, error, now=None):
    """The account cannot be reached: keep the first failure's time and the latest error in words."""
    now = now or utcnow()
    changed = (SmtpAccount.update(connection_state="failing", last_error=str(error)[:1000],
                                  failing_since=fn.COALESCE(SmtpAccount.failing_since, now))
               .where(SmtpAccount.id == account_id).execute())
    return bool(changed)


def record_ok(account_id, now=None):
    """A connection succeeded: the account is reachable (again)."""
    now = now or utcnow()
    return bool(SmtpAccount.update(connection_state="ok", last_error="", failing_since=None, connected_at=now)
                .where(SmtpAccount.id == account_id).execute())


def failing(team_id):
    """The team's usable accounts the engine cannot reach right now, oldest failure first."""
    return list(SmtpAccount.select()
                .where((SmtpAccount.team == team_id) & (SmtpAccount.status == "active")
                       & (SmtpAccount.connection_state == "failing"))
                .order_by(SmtpAccount.failing_since, SmtpAccount.id))
