"""Team mail outside campaigns: test sends and double opt-in confirmations.

The rule: mail a team writes goes out through the team's OWN SMTP
account, From an address on one of the team's verified sender domains, signed
with that domain's DKIM key. It never falls back to the instance's outbound
server: that server carries Loft's own mail (password resets, invitations,
alerts) under the instance's name, and letting any team use it would let
anyone with an account relay mail through the instance (a Guest could make a
team of their own, set any From address and "Send a test").

    check_sender(team, from_email)      raise TeamMailError unless the From domain is verified
    transport(team)                     (aiosmtplib options, description) of the team's first usable account
    signer(team, from_email)            a function DKIM-signing raw bytes, or None
    deliver(options, sender, messages)  send [(address, raw)] over one connection -> [Delivery]
    send_message(team, ...)             compose, check, sign and send one message (confirmation emails)
"""
import asyncio
import email.policy
import email.utils
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from app.errors import Problem
from app.senders import accounts
from app.senders import domains
from app.senders import smtp_client


class TeamMailError(Problem):
    """Why this team's mail cannot go out now, in words for the person who can fix it."""


@dataclass
class Delivery:
    address: str
    ok: bool
    detail: str


def check_sender(team, from_email):
    """Raise TeamMailError unless from_email is on one of the team's verified sender domains."""
    if not from_email:
        raise TeamMailError("This team has no sender address yet: set the default From address in Team settings, "
                            "on a domain verified under Sender domains.")
    if not domains.is_verified_sender(team.id, from_email):
        domain = from_email.rpartition("@")[2] or from_email
        raise TeamMailError(f"The sender domain {domain} is not verified for this team, so Loft will not send "
                            f"as {from_email}. Verify it under Sender domains, or use an address on a verified domain.")


def transport(team):
    """(aiosmtplib options, description) for the team's first usable SMTP account; TeamMailError when it has none."""
    usable = accounts.active_accounts(team.id)
    if not usable:
        raise TeamMailError("This team has no active SMTP account. Team mail goes out only through the team's own "
                            "account: add one under Sending → SMTP accounts (or resume a paused one).")
    account = usable[0]
    return smtp_client.smtp_options(account), f"SMTP account “{account.name}”"


def signer(team, from_email):
    """A function that DKIM-signs raw message bytes with the sender domain's key, or None without a key."""
    row = domains.domain_for_sender(team.id, from_email)
    return (lambda raw: domains.sign(raw, row)) if row is not None and row.dkim_private_key else None


async def _deliver(options, sender, messages):
    results = []
    smtp = smtp_client.SMTP(**options)
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as error:
        return [Delivery(address, False, f"Could not connect: {error}") for address, _raw in messages]
    try:
        for address, raw in messages:
            try:
                _errors, reply = await smtp.sendmail(sender, [address], raw)
                results.append(Delivery(address, True, reply or "accepted"))
            except aiosmtplib.SMTPResponseException as error:
                results.append(Delivery(address, False, f"{error.code} {error.message}"))
                try:
                    await smtp.rset()
                except aiosmtplib.SMTPException:
                    pass
            except (aiosmtplib.SMTPException, OSError) as error:
                results.append(Delivery(address, False, str(error)))
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
    return results


def deliver(options, sender, messages):
    """Send each (address, raw bytes) over one connection; a Delivery per address, never raises for SMTP."""
    return asyncio.run(_deliver(options, sender, messages))


def send_message(team, from_name, from_email, to, subject, text, html=None, headers=None):
    """Compose one message From the team's verified sender, sign it and send it through the team's account.

    Returns the Delivery; raises TeamMailError when the team cannot send (no
    verified sender, no account) so the caller can tell the team.
    """
    check_sender(team, from_email)
    options, via = transport(team)
    message = EmailMessage()
    message["From"] = email.utils.formataddr((from_name or "", from_email))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=from_email.rpartition("@")[2])
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    raw = message.as_bytes(policy=email.policy.SMTP)
    sign = signer(team, from_email)
    result = deliver(options, from_email, [(to, sign(raw) if sign else raw)])[0]
    result.detail = f"{result.detail} (via {via})"
    return result
