"""A real HTTP receiver on 127.0.0.1 for the webhook tests, and its fixture."""
import http.server
import threading

import pytest


class Receiver:
    """A real HTTP server on 127.0.0.1 that records each request and answers with the next queued status."""

    def __init__(self, statuses=(200,), headers=None):
        self.requests = []
        self.statuses = list(statuses)
        self.extra_headers = headers or {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                for key, value in receiver.extra_headers.items():
                    self.send_header(key, value)
                payload = f"answer {status}".encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/loft?x=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def start(*statuses, headers=None):
        server = Receiver(statuses or (200,), headers)
        made.append(server)
        return server
    yield start
    for server in made:
        server.stop()
