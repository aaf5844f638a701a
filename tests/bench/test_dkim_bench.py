"""Benchmark: DKIM signing of a 20 KB campaign message (issue 4, sender domains).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_dkim_bench.py

app.senders.domains.sign() (dkimpy's canonicalization and hashing, OpenSSL's
RSA-2048 through `cryptography`, the parsed key cached per domain) against
plain dkimpy `dkim.sign` (pure-Python RSA), single-threaded, on the same
message. Every 100th signature of ours is checked with dkim.verify.
"""
import statistics
import time

import dkim

from app.models import Team
from app.senders import domains

MESSAGES = 2000
DKIMPY_MESSAGES = 100


def message(i):
    body = "".join(f"<p style=\"margin:0 0 12px\">Paragraph {n} for reader {i}: news, links and more "
                   f"<a href=\"https://loft.test/c/tok{i}/{n}\">read more</a></p>\r\n" for n in range(140))
    headers = (f"From: Acme News <news@example.com>\r\nTo: reader{i}@example.org\r\nSubject: Autumn news {i}\r\n"
               f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}.1@example.com>\r\nMIME-Version: 1.0\r\n"
               f"List-Unsubscribe: <https://loft.test/u/tok{i}>, <mailto:unsubscribe@example.com?subject=tok{i}>\r\n"
               "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nFeedback-ID: 1:1:news:loft\r\n"
               "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return (headers + body).encode()


def test_dkim_signing_speed(app):
    with app.app_context():
        team = Team.create(name="Bench")
        row = domains.add_domain(team, "example.com")
        pem, public = domains.dkim_keys(row)
        record = f"v=DKIM1; k=rsa; p={public}".encode()
        messages = [message(i) for i in range(MESSAGES)]
        print(f"\nmessage size: {len(messages[0]):,} bytes")

        timings = []
        started = time.perf_counter()
        for i, raw in enumerate(messages):
            t = time.perf_counter()
            signed = domains.sign(raw, row)
            timings.append(time.perf_counter() - t)
            if i % 100 == 0:
                assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
        ours = MESSAGES / (time.perf_counter() - started)
        print(f"domains.sign: {ours:,.0f} messages/s, median {statistics.median(timings) * 1000:.2f} ms, "
              f"p95 {sorted(timings)[int(len(timings) * .95)] * 1000:.2f} ms")

        started = time.perf_counter()
        for raw in messages[:DKIMPY_MESSAGES]:
            dkim.sign(raw, row.dkim_selector.encode(), b"example.com", pem, canonicalize=(b"relaxed", b"relaxed"))
        theirs = DKIMPY_MESSAGES / (time.perf_counter() - started)
        print(f"dkim.sign (pure-Python RSA): {theirs:,.0f} messages/s; ours is {ours / theirs:.1f}x")

