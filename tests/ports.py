"""Loopback ports for the servers tests start (SMTP, IMAP, DNS, HTTP stubs, gunicorn, the catcher)."""
import os
import socket

# Ports for the servers tests start. Asking the kernel for port 0 and closing the socket is racy: the port
# comes from the ephemeral range, where the suite's own outgoing connections (to PostgreSQL, Redis, SMTP
# servers, on every xdist worker) also take their source ports, and one of them took a port between
# free_port() and the server's bind once (CI: "error while attempting to bind"). So each worker hands out
# ports from its own slice below the ephemeral range (Linux: 32768 and up), in turn, skipping any in use.
_PORTS_LOW, _PORTS_HIGH = 20000, 32000
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
_slice = (_PORTS_HIGH - _PORTS_LOW) // _workers
_slice_start = _PORTS_LOW + int(_worker.removeprefix("gw") or 0) % _workers * _slice
_next_port = [0]


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port nothing listens on, that no other worker of this run will hand out."""
    for _ in range(_slice):
        port = _slice_start + _next_port[0] % _slice
        _next_port[0] += 1
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_slice_start}-{_slice_start + _slice - 1}")
