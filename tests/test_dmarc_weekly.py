"""The weekly DMARC digest email: one to each Administrator of a team with reports that week."""
import datetime
import email
import email.policy

from app.deliverability.dmarc import store
from app.deliverability.dmarc import weekly
from app.models import CaughtMessage
from app.models import Team
from tests.accounts_support import make_member
from tests.dmarc_support import report_xml


def day_start(day):
    return int(datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc).timestamp())


def test_admins_get_the_week_and_other_teams_and_old_reports_stay_out(app, admin, catcher):
    today = datetime.date(2026, 11, 30)
    team = Team.get(Team.name == "Acme")
    make_member(app, team, "manager", "manager@example.com")
    with app.app_context():
        other = Team.create(name="Quiet")
        begin = day_start(today - datetime.timedelta(days=2))
        store.store_report(team, report_xml(records=4, count=5, begin=begin, end=begin + 86399))
        old = day_start(today - datetime.timedelta(days=20))
        store.store_report(team, report_xml(records=1, count=1000, report_id="old", begin=old, end=old + 86399))
        store.store_report(other, report_xml(records=1, report_id="q", begin=old, end=old + 86399))
        assert weekly.send_weekly(today=today) == 1
    [message] = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in CaughtMessage.select()]
    assert message["To"] == "admin@example.com"  # not the manager, and nobody of the quiet team
    assert message["Subject"] == "[Loft] DMARC this week: 1 domain, 10 messages failing"
    text = message.get_body(("plain",)).get_content()
    assert "example.com: 20 messages, 50.0 % passing DMARC (10 failing)" in text
    assert "- 192.0.2.2: 5 messages" in text
    assert "http://loft.test/deliverability/dmarc/example.com?days=7" in text
    html = message.get_body(("html",)).get_content()
    assert "50.0 % passing DMARC" in html


def test_nothing_is_sent_without_reports_or_without_a_mail_server(app, admin):
    with app.app_context():
        assert weekly.send_weekly() == 0
        team = Team.get(Team.name == "Acme")
        store.store_report(team, report_xml())  # 2023: not this week
        assert weekly.send_weekly() == 0
        begin = day_start(datetime.date.today() - datetime.timedelta(days=1))
        store.store_report(team, report_xml(report_id="now", begin=begin, end=begin + 86399))
        assert weekly.send_weekly() == 0  # no catcher listens: logged, nothing raised
