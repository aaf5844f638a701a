"""A real spamd (SpamAssassin's daemon) on loopback, started once per test session: the `spamd` fixture.

Registered by tests/conftest.py (pytest_plugins). It runs Debian's /usr/sbin/spamd in local-only mode
(-L: no DNS blocklists or other network tests, so a check talks to nothing but 127.0.0.1), on a free
port of 127.0.0.1, accepting only 127.0.0.1, with no per-user configuration (-x) and a temporary helper
home and pid file; as `nobody` when the tests run as root (spamd refuses to keep root). Starting it
takes seconds (it compiles its rule set), hence one per session (per xdist worker).

Where spamd is not installed the tests that need it skip with the reason, printed on the terminal too;
`make test` installs it (packages spamassassin, spamc, spamd) where it runs as root with apt-get.
It uses the rules the Debian package ships; nothing is downloaded (no sa-update).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

SPAMD = os.environ.get("LOFT_TEST_SPAMD", "/usr/sbin/spamd")
START_SECONDS = 90  # a loaded 2-core box compiles the rules slowly


def _skip(request, reason):
    """Skip, and say why on the terminal even under -q and output capture."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nSkipping SpamAssassin tests: {reason}")
    pytest.skip(reason)


def ping(port, timeout=2.0):
    """True when a spamd answers PING on 127.0.0.1:port with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in sock.recv(100)
    except OSError:
        return False


class Spamd:
    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.log = folder / "spamd.log"
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        command = [SPAMD, "-L", "-x", "-i", "127.0.0.1", "-p", str(self.port), "--allowed-ips=127.0.0.1",
                   "-m", "2", "--min-spare=1", "--max-spare=1", "-H", str(self.folder),
                   "--pidfile", str(self.folder / "spamd.pid"), "-s", "stderr"]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"spamd exited with {self.process.returncode}: {self.tail()}"
            if ping(self.port):
                return None
            time.sleep(0.3)
        self.stop()
        return f"spamd did not answer PING within {START_SECONDS} s: {self.tail()}"

    def tail(self):
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()  # spamd's parent stops its children on SIGTERM
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def spamd(request):
    """A running spamd: `.address` ("127.0.0.1:port") and `.port`; skips with the reason without spamd."""
    if not (os.path.isfile(SPAMD) and os.access(SPAMD, os.X_OK)):
        _skip(request, f"spamd is not installed at {SPAMD} (Debian packages spamassassin and spamd; "
                       "`make test` installs them where apt-get is available)")
    # Under /tmp and readable by all: spamd drops to `nobody`, who must reach its helper home.
    folder = Path(tempfile.mkdtemp(prefix="loft-spamd-"))
    folder.chmod(0o777)
    server = Spamd(folder)
    problem = server.start()
    if problem:
        shutil.rmtree(folder, ignore_errors=True)
        _skip(request, problem)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
