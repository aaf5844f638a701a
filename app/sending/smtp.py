"""One SMTP connection of the sending engine: the transaction, the reset, and a failure in words.

The engine (app/sending/engine.py) keeps each connection open for many messages; what happens on
one connection lives here, so the run only decides what an answer means for the send and the account.
"""
import asyncio
import socket
import ssl

import aiosmtplib


class Connection:
    """One SMTP connection of a lane's worker, and its failures in a row."""
    __slots__ = ("smtp", "failures")

    def __init__(self):
        self.smtp = None
        self.failures = 0

    def drop(self):
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None

    async def hang_up(self):
        smtp, self.smtp = self.smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await asyncio.wait_for(smtp.quit(), 5)
        except Exception:  # noqa: BLE001 - the connection is being dropped anyway
            pass
        finally:
            if smtp.is_connected:
                smtp.close()


def smtp_payload(message):
    """The DATA payload: leading dots doubled, the final '.' line.

    The message must already use CRLF line endings only: MessageFactory and
    DKIM signing produce exactly that (a test checks it with hostile input),
    so the engine does not pay for aiosmtplib's normalising regular expressions
    (over 100 microseconds per 40 KB message).
    """
    if message.startswith(b"."):
        message = b"." + message
    parts = message.split(b"\r\n.")
    if len(parts) > 1:
        message = b"\r\n..".join(parts)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


def connection_error_in_words(exc):
    """Why a connection attempt failed, short enough for "waiting for SMTP host X: ... since 12:01"."""
    if caused_by(exc, ConnectionRefusedError):
        return "connection refused"
    if caused_by(exc, socket.gaierror):
        return "the host name does not resolve"
    if caused_by(exc, ssl.SSLError):
        return "the TLS handshake failed"
    if caused_by(exc, (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return "no answer (timed out)"
    if caused_by(exc, aiosmtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    inner = exc
    for _ in range(10):  # the operating system's words, e.g. "No route to host"
        if inner is None:
            break
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        inner = inner.__cause__ or inner.__context__
    return str(exc) or type(exc).__name__


def caused_by(exc, kind):
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _expire(smtp, expired):
    """The watchdog of a transaction: the server went silent, so the connection is dropped."""
    expired.append(True)
    smtp.close()


async def transact(smtp, sender, email, payload, timeout, loop):
    """MAIL, RCPT, DATA over the open aiosmtplib connection. Returns (stage, response).

    The content is written with the connection's protocol directly: the
    payload is already CRLF and dot-stuffed (MessageFactory.payload, or smtp_payload), which saves
    aiosmtplib's per-message regular expressions over 20 KB bodies. One
    watchdog timer covers the whole transaction (it closes the connection
    when the server stays silent for SEND_SMTP_TIMEOUT), instead of a
    timeout task around each of the four replies.
    """
    mail_args = [b"FROM:<" + sender.encode() + b">"]
    try:
        rcpt = email.encode("ascii")
    except UnicodeEncodeError:
        if not smtp.supports_extension("smtputf8"):
            return "rcpt", aiosmtplib.SMTPResponse(
                553, "The address has non-ASCII characters and the server does not support SMTPUTF8.")
        rcpt = email.encode("utf-8")
        mail_args.append(b"SMTPUTF8")
    expired = []
    watchdog = loop.call_later(timeout, _expire, smtp, expired)
    try:
        response = await smtp.execute_command(b"MAIL", *mail_args, timeout=None)
        if response.code != 250:
            return "mail", response
        response = await smtp.execute_command(b"RCPT", b"TO:<" + rcpt + b">", timeout=None)
        if response.code not in (250, 251):
            return "rcpt", response
        response = await smtp.execute_command(b"DATA", timeout=None)
        if response.code != 354:
            return "data", response
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(payload)
        return "done", await protocol.read_response(timeout=None)
    except aiosmtplib.SMTPServerDisconnected:
        if expired:
            raise asyncio.TimeoutError(f"no reply within {timeout:g} s")
        raise
    finally:
        watchdog.cancel()


async def reset(conn, timeout):
    """RSET after a refused transaction, so the connection can carry the next message."""
    if conn.smtp is None or not conn.smtp.is_connected:
        conn.smtp = None
        return
    try:
        response = await conn.smtp.execute_command(b"RSET", timeout=timeout)
        if response.code == 250:
            return
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        pass
    conn.drop()
