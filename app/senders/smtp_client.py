"""Reaching an SMTP account's server: the guarded client, its connection options, the connection test."""
import asyncio
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

import aiosmtplib
from flask import current_app

from app import netguard
from app import security
from app import settings
from app.senders import mailservers

TEST_TIMEOUT = 15  # seconds; "Test connection" runs inside a web request


class HostRefused(aiosmtplib.SMTPConnectError):
    """The guard refused the SMTP host: it is (or resolves to) a non-public address."""


class SMTP(aiosmtplib.SMTP):
    """aiosmtplib's client that connects only to an address the guard checked.

    The host name is resolved once, every address checked (app.netguard), and
    the TCP connection opened to the checked address; aiosmtplib then speaks
    over that socket with the NAME kept as its hostname, so implicit TLS and
    STARTTLS verify the certificate against the name, not the address. A DNS
    answer that changes between the check and the connect cannot slip a
    private address in (DNS rebinding).
    """

    def __init__(self, *args, allow_private=None, resolver=None, **kwargs):
        super().__init__(*args, **kwargs)
        # None: the instance setting "private mail servers", read once per client (one small query).
        self.allow_private = mailservers.private_hosts_allowed() if allow_private is None else allow_private
        self.resolver = resolver

    async def _create_connection(self, timeout):
        host, port = self.hostname or "localhost", self.port or self._get_default_port()
        try:
            if self.resolver is not None or netguard.literal(host) is not None:
                addresses = netguard.check_host(host, port, self.allow_private, self.resolver)
            else:
                infos = await asyncio.wait_for(self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
                found = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos
                                           if info[0] in (socket.AF_INET, socket.AF_INET6)))
                addresses = netguard.check_host(host, port, self.allow_private, resolver=lambda _h, _p: found)
        except netguard.Refused as exc:
            raise HostRefused(f"Loft does not connect to {exc.shown}: it is {exc.reason}. "
                              f"{mailservers.PRIVATE_HINT}") from None
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise aiosmtplib.SMTPConnectTimeoutError(f"Timed out looking up {host}") from exc
        except OSError as exc:
            raise aiosmtplib.SMTPConnectError(f"Error connecting to {host} on port {port}: {exc}") from exc
        sock, error = None, None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            candidate = socket.socket(family, socket.SOCK_STREAM)
            candidate.setblocking(False)
            try:
                await asyncio.wait_for(self.loop.sock_connect(candidate, (address, port)), timeout)
                sock = candidate
                break
            except (asyncio.TimeoutError, TimeoutError) as exc:
                candidate.close()
                error = aiosmtplib.SMTPConnectTimeoutError(f"Timed out connecting to {host} on port {port}")
                error.__cause__ = exc
            except OSError as exc:
                candidate.close()
                error = aiosmtplib.SMTPConnectError(f"Error connecting to {host} on port {port}: {exc}")
                error.__cause__ = exc
        if sock is None:
            raise error
        # Hand the checked, connected socket to aiosmtplib (it owns and closes it from here).
        self.sock = sock
        try:
            return await super()._create_connection(timeout)
        except BaseException:
            if self.transport is None:
                sock.close()
            raise
        finally:
            self.sock = None



def _local_hostname():
    """The name Loft gives in EHLO: the host of the instance's base URL (an IP as an address literal)."""
    host = urlsplit(settings.base_url()).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
        return f"[{host}]"
    except ValueError:
        return host


def smtp_options(account, timeout=30):
    """aiosmtplib keyword arguments for this account (the password decrypted here, nowhere else)."""
    options = {
        "hostname": account.host,
        "port": account.port,
        "use_tls": account.tls_mode == "tls",
        "start_tls": account.tls_mode == "starttls",
        "timeout": timeout,
        "validate_certs": bool(current_app.config.get("SMTP_VALIDATE_CERTS", True)),
        "tls_context": None,
        "local_hostname": _local_hostname(),
    }
    if account.username:
        options["username"] = account.username
        options["password"] = security.decrypt(account.password) if account.password else ""
    return options


def _reply_lines(response):
    """An SMTP reply as the server wrote it: '250-first', ..., '250 last'."""
    lines = (response.message or "").split("\n")
    return [f"S: {response.code}{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines)]


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def explain(exc, account):
    """A connection or login failure in plain words (the server's reply kept verbatim)."""
    where = f"{account.host} port {account.port}"
    for cause in _chain(exc):
        if isinstance(cause, HostRefused):
            return str(cause)
        if isinstance(cause, aiosmtplib.SMTPAuthenticationError):
            text = (f"Authentication failed: the server refused the user name or password. "
                    f"Its reply: {cause.code} {cause.message}")
            if account.preset == "icloud":
                text += (" iCloud needs an app-specific password (not your Apple Account password) and your "
                         "full iCloud Mail address as the user name.")
            return text
        if isinstance(cause, socket.gaierror):
            return (f"DNS lookup failed: the host name “{account.host}” could not be found ({cause.strerror}). "
                    "Check its spelling.")
        if isinstance(cause, ConnectionRefusedError):
            return (f"Connection refused: nothing is listening on {where}. Check the host and the port "
                    "(587 for STARTTLS, 465 for implicit TLS).")
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"TLS failure: the server's certificate could not be verified ({cause.verify_message}). "
                    "The host name may not match the certificate, or the certificate is self-signed or expired.")
        if isinstance(cause, ssl.SSLError):
            hint = (" Port 587 usually expects STARTTLS and port 465 implicit TLS: check the encryption setting."
                    if "WRONG_VERSION" in str(cause) or "record layer" in str(cause).lower() else "")
            return f"TLS failure: the encrypted connection could not be set up ({cause.reason or cause}).{hint}"
        if isinstance(cause, aiosmtplib.SMTPConnectTimeoutError) and "server ready" in str(cause) \
                and account.tls_mode != "tls":
            return (f"Connected to {where}, but the server sent no greeting: it probably expects implicit TLS "
                    "on this port (usually 465). Choose “Implicit TLS”, or use port 587 with STARTTLS.")
        if isinstance(cause, (aiosmtplib.SMTPConnectTimeoutError, aiosmtplib.SMTPReadTimeoutError,
                              aiosmtplib.SMTPTimeoutError, TimeoutError)):
            return (f"No answer from {where} in time. Check the host and port, that the encryption setting "
                    "matches the port, and that this server may open outgoing connections to that port.")
        if isinstance(cause, aiosmtplib.SMTPServerDisconnected):
            return (f"The server closed the connection ({cause}). If it expects implicit TLS on this port, "
                    "choose that encryption setting.")
        if isinstance(cause, aiosmtplib.SMTPResponseException):
            return f"The server refused: {cause.code} {cause.message}"
        if isinstance(cause, OSError) and not isinstance(cause, aiosmtplib.SMTPException):
            return f"Could not connect to {where}: {cause.strerror or cause}."
    message = str(exc)
    if "STARTTLS extension not supported" in message:
        return "The server does not offer STARTTLS on this port. Try implicit TLS (port 465)."
    if "AUTH" in message or "authentication" in message.lower():
        return f"The server does not offer a login (AUTH) on this connection: {message}"
    return f"The test failed: {message}"


async def _converse(account, options, transcript):
    """Connect, EHLO, STARTTLS, EHLO, AUTH, QUIT, writing each exchange to transcript."""
    smtp = SMTP(hostname=options["hostname"], port=options["port"], use_tls=options["use_tls"],
                start_tls=False, timeout=options["timeout"], validate_certs=options["validate_certs"],
                local_hostname=options["local_hostname"])
    mode = {"tls": "implicit TLS", "starttls": "STARTTLS", "none": "no encryption"}[account.tls_mode]
    transcript.append(f"Connecting to {account.host} port {account.port} ({mode})…")
    response = await smtp.connect()
    transcript.extend(_reply_lines(response))
    try:
        if options["use_tls"]:
            transcript.append(_tls_line(smtp, options))
        transcript.append(f"C: EHLO {options['local_hostname']}")
        transcript.extend(_reply_lines(await smtp.ehlo()))
        if options["start_tls"]:
            transcript.append("C: STARTTLS")
            transcript.extend(_reply_lines(await smtp.starttls()))
            transcript.append(_tls_line(smtp, options))
            transcript.append(f"C: EHLO {options['local_hostname']}")
            transcript.extend(_reply_lines(await smtp.ehlo()))
        if options.get("username"):
            methods = ", ".join(sorted(smtp.server_auth_methods)) or "none offered"
            transcript.append(f"C: AUTH as {options['username']} (password hidden; server offers: {methods})")
            transcript.extend(_reply_lines(await smtp.login(options["username"], options["password"] or "")))
        else:
            transcript.append("(no user name set: skipping AUTH)")
        transcript.append("C: QUIT")
        transcript.extend(_reply_lines(await smtp.quit()))
    finally:
        if smtp.is_connected:
            smtp.close()


def _tls_line(smtp, options):
    ssl_object = smtp.transport.get_extra_info("ssl_object") if smtp.transport else None
    if ssl_object is None:
        return "   (TLS established)"
    checked = ("certificate verified" if options["validate_certs"]
               else "certificate NOT verified: LOFT_SMTP_VALIDATE_CERTS is off")
    return f"   TLS established: {ssl_object.version()}, {ssl_object.cipher()[0]}, {checked}"


def test_connection(account, timeout=TEST_TIMEOUT):
    """Really connect, set up TLS and log in; returns (ok, transcript).

    The transcript holds the server's replies verbatim ("S: 235 2.7.0 ...")
    and, on failure, the error in plain words on the last line. Nothing is sent.
    """
    options = smtp_options(account, timeout=timeout)
    if account.username and options.get("password") is None:
        return False, ("Error: the stored password cannot be decrypted (LOFT_ENCRYPTION_KEY or LOFT_SECRET_KEY "
                       "changed since it was saved). Enter the password again.")
    transcript = []
    try:
        # Each step has its own timeout; this bounds the whole conversation, since a web request waits for it.
        asyncio.run(asyncio.wait_for(_converse(account, options, transcript), timeout * 3))
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            transcript.append(f"S: {exc.code} {exc.message}")
        transcript.append("Error: " + explain(exc, account))
        return False, "\n".join(transcript)
    transcript.append("Success: the server accepted the connection" + (
        ", the encryption" if account.tls_mode != "none" else "") + (
        " and the login." if account.username else "."))
    return True, "\n".join(transcript)


def summary_of(ok, transcript):
    """The line worth keeping from a transcript: the error, or the server's AUTH (or last) reply."""
    lines = transcript.splitlines()
    if not ok:
        return lines[-1].removeprefix("Error: ") if lines else "Failed."
    replies = [line[3:] for line in lines if line.startswith("S: 235")]
    return "Connected and logged in: " + replies[-1] if replies else "Connected."
