"""Benchmark: building campaign messages, one recipient at a time (issue 4, message assembly).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_message_bench.py

A 20 KB HTML body (about 20 KB once rendered) personalised with the contact's
first name, a custom field and the web-view and unsubscribe links, with open
and click tracking on (24 tracked links), is built for LOFT_BENCH_MESSAGES
recipients (default 30,000; 2,000 real Contact and Send rows, used in turn) by
MessageFactory.build() on one core. For comparison the same rendered HTML and
text are wrapped with email.message.EmailMessage (the naive way) for a tenth
as many. Every 1,000th built message is parsed back to check it is sound.

Rates are per CPU-second of this process (time.process_time), so that other
work on the machine does not distort them; wall-clock figures are printed too.
"""
import email
import email.policy
import os
import time
from email.message import EmailMessage

import pytest

from app.content import sandbox
from app.content.message import MessageFactory
from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import Send
from app.models import Team

MESSAGES = int(os.environ.get("LOFT_BENCH_MESSAGES", "30000"))
RECIPIENTS = 2000

ARTICLE = """<tr>
<td style="padding:16px 28px;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:26px;color:#1f2937;">
<h2 style="margin:0 0 8px;font-size:20px;line-height:28px;color:#111827;">Story number {n}: what changed this month</h2>
<p style="margin:0 0 12px;">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore
et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo
consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur — déjà vu.</p>
<a href="https://example.com/stories/{n}?utm_source=loft&amp;utm_medium=email" style="color:#1d4ed8;font-weight:bold;">Read story {n}</a>
</td>
</tr>
"""

BODY = ("""<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#eef2f7;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:#ffffff;">
<tr><td style="padding:8px 28px;font-size:12px;"><a href="{{ webview_url }}">View in your browser</a></td></tr>
<tr><td style="padding:24px 28px;font-family:Arial,Helvetica,sans-serif;font-size:16px;">
<p style="margin:0;">Hi {{ contact.first_name or "there" }}, here is the news for {{ contact.company or "you" }}.</p>
</td></tr>
""" + "".join(ARTICLE.format(n=n) for n in range(1, 25)) + """<tr><td align="center" style="padding:24px;font-size:12px;color:#6b7280;">
{{ postal_address }}<br><a href="{{ unsubscribe_url }}" style="color:#6b7280;">Unsubscribe</a>
</td></tr>
</table>
</td></tr>
</table>
""")


@pytest.fixture
def campaign(app, admin):
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        CustomField.create(team=team, key="company", label="Company", type="text")
        campaign = Campaign.create(team=team, name="Bench", from_name="Acme News", from_email="news@acme.example",
                                   subject="{{ contact.first_name }}, your monthly news", body=BODY,
                                   preheader="Twenty stories in one email")
        rows = [{"team": team.id, "email": f"reader{i}@example{i % 7}.org", "domain": f"example{i % 7}.org",
                 "name": f"Réader Number{i}", "attributes": {"company": f"Company {i}"}}
                for i in range(RECIPIENTS)]
        for start in range(0, len(rows), 500):
            Contact.insert_many(rows[start:start + 500]).execute()
        contacts = list(Contact.select().where(Contact.team == team))
        Send.insert_many([{"campaign": campaign.id, "contact": c.id, "email": c.email} for c in contacts]).execute()
        yield campaign


def test_message_build_speed(app, campaign):
    with app.app_context():
        sends = list(Send.select().where(Send.campaign == campaign).order_by(Send.id))
        contacts = {c.id: c for c in Contact.select()}
        pairs = [(send, contacts[send.contact_id]) for send in sends]

        started = time.perf_counter()
        factory = MessageFactory(campaign)
        setup = time.perf_counter() - started

        sample = factory.build(*pairs[0])
        html_size = len(factory.render_html(*pairs[0]).encode())
        assert 19_000 <= html_size <= 26_000, html_size

        build = factory.build
        count = len(pairs)
        started, started_cpu = time.perf_counter(), time.process_time()
        total_bytes = 0
        for i in range(MESSAGES):
            raw = build(*pairs[i % count])
            total_bytes += len(raw)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        rate, cpu_rate = MESSAGES / elapsed, MESSAGES / cpu

        # Soundness of what was timed: parse a spread of messages back.
        for i in range(0, MESSAGES, 1000):
            send, contact = pairs[i % count]
            parsed = email.message_from_bytes(build(send, contact), policy=email.policy.default)
            html = parsed.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
            assert html == factory.render_html(send, contact)
            assert parsed["Subject"] == f"{contact.name.split()[0]}, your monthly news"

        # The naive way, for comparison: render, then EmailMessage for every message.
        prepared = factory.prepared
        naive_count = max(MESSAGES // 10, 200)
        started = time.process_time()
        for i in range(naive_count):
            send, contact = pairs[i % count]
            context = factory.context(send, contact)
            message = EmailMessage(policy=email.policy.SMTP)
            message["From"] = "Acme News <news@acme.example>"
            message["To"] = f"{contact.name} <{send.email}>"
            message["Subject"] = sandbox.render(prepared.subject_template, context)
            message.set_content(sandbox.render(prepared.text_template, context), cte="quoted-printable")
            message.add_alternative(sandbox.render(prepared.html_template, context), subtype="html",
                                    cte="quoted-printable")
            message.as_bytes()
        naive_rate = naive_count / (time.process_time() - started)

        print(f"\nMessage assembly: {MESSAGES:,} personalised messages with tracking, "
              f"HTML part {html_size / 1024:.1f} KB rendered, {total_bytes / MESSAGES / 1024:.1f} KB per message")
        print(f"  factory set-up (compile, links, skeleton): {setup * 1000:.1f} ms")
        print(f"  MessageFactory.build: {cpu_rate:,.0f} messages per CPU-second on one core "
              f"({cpu:.2f} s CPU; wall clock {rate:,.0f}/s, {elapsed:.2f} s, load average {os.getloadavg()[0]:.1f})")
        print(f"  EmailMessage per message (naive): {naive_rate:,.0f} messages per CPU-second "
              f"({cpu_rate / naive_rate:.1f}x slower)")
        assert sample.startswith(b"Date: ")
