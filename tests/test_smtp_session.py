"""The engine's SMTP Session (app/sending/smtp.py): the transaction pipelined when the server offers
PIPELINING, one command at a time when it does not, and the connection kept in step after refusals.

Real servers on 127.0.0.1: aiosmtpd (tests/sending_support.py) and, where a test needs a server that
answers in a particular way, a few lines of asyncio that speak the protocol by hand.
"""
import asyncio

import aiosmtplib
import pytest

from app.sending import smtp as smtp_service
from tests.sending_support import TestSmtp

PAYLOAD = b"Subject: hello\r\n\r\nA short message.\r\n.\r\n"
SENDER = "news@example.com"


async def open_session(port):
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False, timeout=5)
    await client.connect()
    await client.ehlo()
    return smtp_service.Session.take_over(client)


async def transact(session, email, timeout=5.0):
    return await smtp_service.transact(session, SENDER, email, PAYLOAD, timeout, asyncio.get_running_loop())


async def transact_as_the_engine(session, email):
    """A transaction, then RSET after a refusal, as the engine does (app/sending/delivery.py)."""
    result = await transact(session, email)
    if result[0] != "done":
        conn = smtp_service.Connection()
        conn.smtp = session
        await smtp_service.reset(conn, 5)
        assert conn.smtp is session  # RSET answered 250: the connection carries the next message
    return result


class HandMadeServer:
    """Greets, offers PIPELINING (or not), then hands each connection to `script(reader, writer)`."""

    def __init__(self, script, pipelining=True):
        self.script = script
        self.pipelining = pipelining
        self.port = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader, writer):
        writer.write(b"220 sink.test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-sink.test\r\n" + (b"250-PIPELINING\r\n" if self.pipelining else b"") + b"250 HELP\r\n")
        try:
            await self.script(reader, writer)
        finally:
            writer.close()


async def read_commands(reader, count):
    return [await asyncio.wait_for(reader.readline(), 5) for _ in range(count)]


async def read_message(reader):
    lines = []
    while (line := await asyncio.wait_for(reader.readline(), 5)) != b".\r\n":
        lines.append(line)
    return b"".join(lines)


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_three_commands_go_out_together_and_replies_that_arrive_one_by_one_are_all_read():
    seen = []

    async def script(reader, writer):
        for _ in range(2):
            # Nothing is answered before all three commands are in: a client waiting for the MAIL
            # reply would never send RCPT, and the test would time out.
            seen.append(await read_commands(reader, 3))
            for reply in (b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"):
                writer.write(reply)
                await writer.drain()
                await asyncio.sleep(0.02)  # each reply in a segment of its own, after the client has read one
            seen.append(await read_message(reader))
            writer.write(b"250 2.0.0 Ok: queued\r\n")

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            assert session.pipelining
            first = await transact(session, "ada@example.org")
            second = await transact(session, "bob@example.org")
            session.close()
            return first, second

    first, second = run(main())
    assert [(stage, reply.code) for stage, reply in (first, second)] == [("done", 250), ("done", 250)]
    assert seen[0] == [b"MAIL FROM:<news@example.com>\r\n", b"RCPT TO:<ada@example.org>\r\n", b"DATA\r\n"]
    assert seen[1] == b"Subject: hello\r\n\r\nA short message.\r\n"
    assert seen[2][1] == b"RCPT TO:<bob@example.org>\r\n"


def test_without_pipelining_each_command_waits_for_the_reply_before():
    order = []

    async def script(reader, writer):
        for command, reply in ((b"MAIL", b"250 Ok\r\n"), (b"RCPT", b"250 Ok\r\n"), (b"DATA", b"354 Go on\r\n")):
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line.startswith(command)
            await asyncio.sleep(0.02)
            order.append((command, len(reader._buffer)))  # what else had arrived before this reply
            writer.write(reply)
        await read_message(reader)
        writer.write(b"250 Ok: queued\r\n")

    async def main():
        async with HandMadeServer(script, pipelining=False) as server:
            session = await open_session(server.port)
            assert not session.pipelining
            result = await transact(session, "ada@example.org")
            session.close()
            return result

    stage, reply = run(main())
    assert (stage, reply.code) == ("done", 250)
    assert order == [(b"MAIL", 0), (b"RCPT", 0), (b"DATA", 0)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_refusals_name_their_stage_and_the_connection_stays_in_step(pipelining):
    server = TestSmtp(reject=("nobody@",), always_451=("later@",), pipelining=pipelining)

    async def main():
        session = await open_session(server.port)
        assert session.pipelining is pipelining
        results = [await transact_as_the_engine(session, email) for email in
                   ("nobody@example.org", "ada@example.org", "later@example.org", "bob@example.org")]
        await session.quit()
        return results

    try:
        results = run(main())
    finally:
        server.stop()
    assert [(stage, reply.code) for stage, reply in results] == [("rcpt", 550), ("done", 250), ("rcpt", 451),
                                                                ("done", 250)]
    assert "User unknown" in results[0][1].message
    assert dict(server.handler.delivered) == {"ada@example.org": 1, "bob@example.org": 1}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_refused_sender_is_the_mail_stage(pipelining):
    server = TestSmtp(limit_after=0, pipelining=pipelining)

    async def main():
        session = await open_session(server.port)
        result = await transact_as_the_engine(session, "ada@example.org")
        again = await transact_as_the_engine(session, "bob@example.org")  # in step: refused the same way
        await session.quit()
        return result, again

    try:
        result, again = run(main())
    finally:
        server.stop()
    assert [(stage, reply.code) for stage, reply in (result, again)] == [("mail", 550), ("mail", 550)]
    assert "daily sending limit" in result[1].message
    assert server.handler.total() == 0


def test_a_server_that_closes_after_refusing_the_sender_reports_its_refusal():
    async def script(reader, writer):
        await read_commands(reader, 1)
        writer.write(b"421 4.7.0 Too many connections, closing\r\n")
        await writer.drain()

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            result = await transact(session, "ada@example.org")
            return result, session.is_connected

    (stage, reply), connected = run(main())
    assert (stage, reply.code) == ("mail", 421)
    assert not connected


def test_a_connection_dropped_before_any_reply_is_a_disconnection():
    async def script(reader, writer):
        await read_commands(reader, 3)
        writer.transport.abort()

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            with pytest.raises(aiosmtplib.SMTPServerDisconnected):
                await transact(session, "ada@example.org")
            return session.is_connected

    assert run(main()) is False


def test_a_silent_server_is_a_timeout_and_the_connection_is_closed():
    async def script(reader, writer):
        await read_commands(reader, 3)
        await asyncio.sleep(3)

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            with pytest.raises(asyncio.TimeoutError, match="no reply within 0.3 s"):
                await transact(session, "ada@example.org", timeout=0.3)
            return session.is_connected

    assert run(main()) is False


def test_multi_line_replies_and_a_reply_that_is_not_smtp():
    async def script(reader, writer):
        await read_commands(reader, 3)
        writer.write(b"250-first line\r\n250 second line\r\n550-5.1.1 no such\r\n550 5.1.1 mailbox here\r\n"
                     b"554 no valid recipients\r\n")
        await read_commands(reader, 3)
        writer.write(b"hello there\r\n")
        await asyncio.sleep(1)

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            refused = await transact(session, "ada@example.org")
            with pytest.raises(aiosmtplib.SMTPResponseException, match="Malformed SMTP response line: hello there"):
                await transact(session, "bob@example.org")
            return refused, session.is_connected

    (stage, reply), connected = run(main())
    assert (stage, reply.code, reply.message) == ("rcpt", 550, "5.1.1 no such\n5.1.1 mailbox here")
    assert not connected


def test_addresses_with_a_line_break_are_refused_before_anything_is_written():
    async def script(reader, writer):
        await asyncio.sleep(0.5)
        assert reader._buffer == b""  # nothing reached the server

    async def main():
        async with HandMadeServer(script) as server:
            session = await open_session(server.port)
            rcpt = await transact(session, "ada@example.org\r\nRCPT TO:<eve@example.org>")
            mail = await smtp_service.transact(session, "news@example.com>\r\nRSET", "ada@example.org", PAYLOAD, 5,
                                               asyncio.get_running_loop())
            session.close()
            return rcpt, mail

    rcpt, mail = run(main())
    assert (rcpt[0], rcpt[1].code) == ("rcpt", 553)
    assert (mail[0], mail[1].code) == ("mail", 553)
