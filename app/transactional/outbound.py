"""The transactional worker's SMTP connections: one per account, kept open between messages.

    send(account, options, sender, recipient, raw)   ("sent" | "temporary" | "permanent", the server's words)
    close_all()                                      close every kept connection (tests, shutdown)

A receipt should not pay a TCP + TLS + AUTH handshake when the previous one went out a moment ago, so each
process keeps one connection per SMTP account open for LOFT_TX_CONNECTION_IDLE seconds after its last message
(0: a connection per message). The connections live on one event loop in a thread of their own, which the
worker threads (huey's, an SMTP submission handler's) hand their messages to: a connection belongs to the loop
it was opened on, and the workers' own asyncio.run loops end with each message.

One connection per account and process: messages to the same account take turns on it, spaced by the
account's per-second limit. A kept connection is checked with NOOP before reuse, so a server that closed it
while idle costs one reconnect, never a lost or doubled message.
"""
import asyncio
import hashlib
import os
import threading
import time

import aiosmtplib

from app.senders import mailservers
from app.senders import smtp_client

SEND_TIMEOUT = 300  # seconds a worker waits for its message's turn and conversation before giving up


class _Kept:
    """One account's connection, its turn-taking lock, and when the next message may start."""

    def __init__(self):
        self.smtp = None
        self.lock = asyncio.Lock()
        self.next_start = 0.0
        self.closer = None


class _Loop:
    """The event loop thread of this process (made again after a fork: a thread does not survive one)."""

    def __init__(self):
        self.guard = threading.Lock()
        self.pid = None
        self.loop = None
        self.kept = {}

    def get(self):
        with self.guard:
            if self.pid != os.getpid() or self.loop is None or not self.loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                loop.call_soon(started.set)
                threading.Thread(target=loop.run_forever, name="loft-tx-smtp", daemon=True).start()
                started.wait()
                self.pid, self.loop, self.kept = os.getpid(), loop, {}
            return self.loop


_loop = _Loop()


def _key(account, options):
    # A changed host, port, login or TLS mode is another connection: the old one closes when idle.
    fingerprint = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in options.items())).encode()).hexdigest()
    return account.id, fingerprint


def send(account, options, sender, recipient, raw, idle=10):
    """Send one message through `account` on a kept connection; blocks the caller until it is done."""
    options = dict(options, allow_private=mailservers.private_hosts_allowed())  # read here: it needs the app
    loop = _loop.get()
    coroutine = _send(_key(account, options), options, account.per_second, sender, recipient, raw, idle)
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(SEND_TIMEOUT)


async def _send(key, options, per_second, sender, recipient, raw, idle):
    kept = _loop.kept.setdefault(key, _Kept())
    async with kept.lock:
        if kept.closer is not None:
            kept.closer.cancel()
            kept.closer = None
        now = time.monotonic()
        if per_second and kept.next_start > now:
            await asyncio.sleep(kept.next_start - now)
        kept.next_start = max(now, kept.next_start) + (1.0 / per_second if per_second else 0.0)
        if kept.smtp is not None and not await _alive(kept.smtp):
            kept.smtp = None
        if kept.smtp is None:
            smtp = smtp_client.SMTP(**options)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError) as error:
                smtp.close()
                return "temporary", f"Could not connect: {error}"
            kept.smtp = smtp
        outcome, keep = await _conversation(kept.smtp, sender, recipient, raw)
        if keep and idle > 0:
            kept.closer = asyncio.get_running_loop().call_later(idle, lambda: asyncio.ensure_future(_close(key)))
        else:
            await _quit(kept.smtp)
            kept.smtp = None
        return outcome


async def _alive(smtp):
    if not smtp.is_connected:
        return False
    try:
        await smtp.noop()
        return True
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
        return False


async def _conversation(smtp, sender, recipient, raw):
    """((kind, the server's words), whether the connection can carry the next message)."""
    try:
        _refused, reply = await smtp.sendmail(sender, [recipient], raw)
        return ("sent", reply or "accepted"), True
    except aiosmtplib.SMTPRecipientsRefused as refused:  # the one recipient was refused at RCPT
        error = refused.recipients[0]
        return ("permanent" if 500 <= error.code < 600 else "temporary", f"{error.code} {error.message}"), True
    except aiosmtplib.SMTPResponseException as error:
        # 421 and the like mean the server is closing; anything else leaves a reset session (aiosmtplib RSETs).
        keep = error.code != 421 and smtp.is_connected
        return ("permanent" if 500 <= error.code < 600 else "temporary", f"{error.code} {error.message}"), keep
    except (aiosmtplib.SMTPException, OSError) as error:
        return ("temporary", str(error) or type(error).__name__), False


async def _quit(smtp):
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


async def _close(key):
    kept = _loop.kept.get(key)
    if kept is None:
        return
    async with kept.lock:
        if kept.smtp is not None:
            await _quit(kept.smtp)
            kept.smtp = None
        kept.closer = None


async def _close_everything():
    for key in list(_loop.kept):
        await _close(key)


def close_all():
    """Close every connection this process keeps (its loop thread stays for the next message)."""
    if _loop.loop is not None and _loop.pid == os.getpid() and _loop.loop.is_running():
        asyncio.run_coroutine_threadsafe(_close_everything(), _loop.loop).result(SEND_TIMEOUT)
