"""One SMTP connection of the sending engine: the transaction, the reset, and a failure in words.

The engine (app/sending/engine.py) keeps each connection open for many messages; what happens on
one connection lives here, so the run only decides what an answer means for the send and the account.
aiosmtplib connects, greets, secures and logs in; then a Session takes the connection's transport
over for its transactions (see Session).
"""
import asyncio
import collections
import socket
import ssl

import aiosmtplib

MAX_REPLY = 64 * 1024  # bytes of one reply still being read; a server sending more is not speaking SMTP


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


class Session(asyncio.Protocol):
    """An SMTP connection's transport, taken over from aiosmtplib once it is ready to send.

    aiosmtplib reads one reply per command and drops a reply that arrives before its command has
    been awaited, so it cannot pipeline. This protocol queues every reply as it arrives: with a
    server that offers PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one write and their three
    replies are read together, two round trips fewer per message; without it the commands go one by
    one. Either way there is no per-command lock, task or regular expression.
    """

    def __init__(self, transport, extensions, loop):
        self.transport = transport
        self.extensions = extensions
        self.pipelining = "pipelining" in extensions
        self.loop = loop
        self.buffer = bytearray()
        self.replies = collections.deque()
        self.waiter = None
        self.closed = transport.is_closing()
        self.failure = None  # a reply that is not SMTP: raised to the reader, the connection is closed

    @classmethod
    def take_over(cls, smtp):
        """The Session of an aiosmtplib connection that has greeted (and secured, and logged in)."""
        protocol = smtp.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        session = cls(protocol.transport, dict(smtp.esmtp_extensions), asyncio.get_running_loop())
        protocol.transport.set_protocol(session)
        return session

    # -- the protocol --

    def data_received(self, data):
        self.buffer += data
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as exc:
            self.failure = exc
            self.close()
        self._wake()

    def _parse(self):
        """Move every complete reply (its last line has a space after the code) from the buffer to the queue."""
        buffer = self.buffer
        start = offset = 0
        while True:
            end = buffer.find(b"\n", offset)
            if end < 0:
                break
            line, offset = offset, end + 1
            if end - line > 3 and buffer[line + 3] == 45:  # "-": the reply goes on
                continue
            try:
                code = int(buffer[line:min(line + 3, offset)])
            except ValueError:
                raise aiosmtplib.SMTPResponseException(
                    -1, "Malformed SMTP response line: "
                    + bytes(buffer[line:offset]).decode("utf-8", "replace").strip()) from None
            if line == start:  # one line, as nearly every reply is: no split and join
                message = buffer[line + 4:offset].strip(b" \t\r\n")
            else:
                lines = bytes(buffer[start:offset]).split(b"\n")[:-1]
                message = b"\n".join(text[4:].strip(b" \t\r\n") for text in lines)
            self.replies.append(aiosmtplib.SMTPResponse(code, message.decode("utf-8", "surrogateescape")))
            start = offset
        del buffer[:start]
        if len(buffer) > MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")

    def eof_received(self):
        self.closed = True
        self._wake()
        return False  # the transport closes

    def connection_lost(self, exc):
        self.closed = True
        self._wake()

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- what the engine uses --

    @property
    def is_connected(self):
        return not self.closed and not self.transport.is_closing()

    def supports_extension(self, name):
        return name.lower() in self.extensions

    def write(self, data):
        if not self.is_connected:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    async def reply(self):
        """The next reply of the server, in the order of the commands written."""
        while not self.replies:
            if self.failure is not None:
                raise self.failure
            if self.closed:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            self.waiter = self.loop.create_future()
            await self.waiter
        return self.replies.popleft()

    async def execute_command(self, *args, timeout=None):
        self.write(b" ".join(args) + b"\r\n")
        return await asyncio.wait_for(self.reply(), timeout)

    async def quit(self):
        try:
            return await self.execute_command(b"QUIT")
        finally:
            self.close()

    def close(self):
        self.closed = True
        if not self.transport.is_closing():
            self.transport.close()
        self._wake()


def _expire(smtp, expired):
    """The watchdog of a transaction: the server went silent, so the connection is dropped."""
    expired.append(True)
    smtp.close()


def _has_line_break(value):
    return b"\r" in value or b"\n" in value


async def transact(smtp, sender, email, payload, timeout, loop):
    """MAIL, RCPT, DATA over the open Session, then the payload. Returns (stage, response).

    The payload is already CRLF and dot-stuffed, with its final "." line (MessageFactory.payload,
    or smtp_payload). One watchdog timer covers the whole transaction (it closes the connection
    when the server stays silent for SEND_SMTP_TIMEOUT), instead of a timeout around each reply.
    """
    mail = b"MAIL FROM:<" + sender.encode() + b">"
    if _has_line_break(mail):
        return "mail", aiosmtplib.SMTPResponse(553, "The sender address has a line break in it.")
    try:
        rcpt = email.encode("ascii")
    except UnicodeEncodeError:
        if not smtp.supports_extension("smtputf8"):
            return "rcpt", aiosmtplib.SMTPResponse(
                553, "The address has non-ASCII characters and the server does not support SMTPUTF8.")
        rcpt = email.encode("utf-8")
        mail += b" SMTPUTF8"
    if _has_line_break(rcpt):
        return "rcpt", aiosmtplib.SMTPResponse(553, "The address has a line break in it.")
    commands = (mail + b"\r\n", b"RCPT TO:<" + rcpt + b">\r\n", b"DATA\r\n")
    expired = []
    watchdog = loop.call_later(timeout, _expire, smtp, expired)
    try:
        if smtp.pipelining:
            refusal = await _pipelined(smtp, commands)
        else:
            refusal = await _one_by_one(smtp, commands)
        if refusal is not None:
            return refusal
        smtp.write(payload)
        return "done", await smtp.reply()
    except aiosmtplib.SMTPServerDisconnected:
        if expired:
            raise asyncio.TimeoutError(f"no reply within {timeout:g} s")
        raise
    finally:
        watchdog.cancel()


_STAGES = (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,)))


async def _one_by_one(smtp, commands):
    """Each command after the reply to the one before; (stage, response) of a refusal, else None."""
    for command, (stage, good) in zip(commands, _STAGES):
        smtp.write(command)
        response = await smtp.reply()
        if response.code not in good:
            return stage, response
    return None


async def _pipelined(smtp, commands):
    """The three commands in one write and their three replies; (stage, response) of the first
    refusal, else None. Every reply is read, so the next transaction starts in step; a server that
    closes the connection after refusing one reports that refusal."""
    smtp.write(b"".join(commands))
    responses = []
    try:
        for _ in commands:
            responses.append(await smtp.reply())
    except aiosmtplib.SMTPServerDisconnected:
        for response, (stage, good) in zip(responses, _STAGES):
            if response.code not in good:
                return stage, response
        raise
    for response, (stage, good) in zip(responses, _STAGES):
        if response.code not in good:
            if responses[2].code == 354:
                # The server waits for a message after refusing an earlier command (RFC 2920 says it
                # should not): an empty one ends it, and its reply is not this message's.
                smtp.write(b".\r\n")
                await smtp.reply()
            return stage, response
    return None


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
