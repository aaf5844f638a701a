"""Domain health gates sending: the SPF / DKIM / DMARC / MX checks as pure functions over DNS answers
(RFC 7208 lookup counting, RFC 7489 alignment, RFC 7505 null MX), the same checks against a real DNS
server on loopback (dnslib), the domain page with its traffic lights and "Check now", launches refused,
and a campaign sending to a real SMTP sink that pauses when DMARC disappears mid-send and resumes when
it comes back, its admins alerted once."""
import email
import email.policy
import threading
import time

import pytest

from app.campaigns import publishing
from app.deliverability import domain_health as h
from app.deliverability import gate
from app.models import Campaign
from app.models import CaughtMessage
from app.models import DomainHealth
from app.models import DomainPause
from app.models import MailingList
from app.models import Notice
from app.models import SenderDomain
from app.models import Team
from app.models import utcnow
from app.notices import alerts
from app.senders import domains
from app.sending import ledger
from tasks import deliverability as deliverability_tasks
from tasks import sending as sending_tasks
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import statuses

S = h.StaticAnswers


# --- SPF, pure ---------------------------------------------------------------------------------

def tree(top, **records):
    """StaticAnswers with example.com's SPF record `top` and TXT records of other names."""
    answers = {("example.com", "TXT"): [top]}
    for name, value in records.items():
        answers[(name.replace("_", "."), "TXT")] = [value]
    return S(answers)


def includes(count, depth_each=0):
    answers = {("example.com", "TXT"): ["v=spf1 " + " ".join(f"include:i{i}.example.net" for i in range(count))
                                        + " -all"]}
    for i in range(count):
        inner = " ".join(f"ip4:192.0.2.{j}" for j in range(3))
        if depth_each:
            inner = f"include:deep{i}.example.net " + inner
            answers[(f"deep{i}.example.net", "TXT")] = ["v=spf1 ip4:198.51.100.1 -all"]
        answers[(f"i{i}.example.net", "TXT")] = [f"v=spf1 {inner} -all"]
    return S(answers)


def test_ten_lookups_pass_and_the_eleventh_is_a_permanent_error():
    ok = h.check_spf("example.com", includes(10))
    assert ok.status == h.PASS and ok.detail["lookups"] == 10 and not ok.gate
    over = h.check_spf("example.com", includes(11))
    assert over.status == h.FAIL and over.gate
    assert "more than 10 DNS lookups" in over.reason and "the 11th was include:i10.example.net" in over.reason


def test_lookups_inside_included_records_count_too():
    # 5 includes each including one more record: 10 lookups; 6 of them: 12.
    assert h.check_spf("example.com", includes(5, depth_each=1)).detail["lookups"] == 10
    over = h.check_spf("example.com", includes(6, depth_each=1))
    assert over.gate and "more than 10" in over.reason


@pytest.mark.parametrize("record, lookups", [
    ("v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all", 0),  # ip4, ip6 and all query nothing
    ("v=spf1 a mx ptr exists:x.example.com ~all", 4),
    ("v=spf1 a:a.example.com/24 mx:example.com//64 ~all", 2),
])
def test_which_terms_count_as_lookups(record, lookups):
    answers = S({("example.com", "TXT"): [record], ("example.com", "A"): ["192.0.2.1"],
                 ("a.example.com", "A"): ["192.0.2.2"], ("example.com", "MX"): ["10 mx.example.com."],
                 ("x.example.com", "A"): ["127.0.0.2"]})
    check = h.check_spf("example.com", answers)
    assert check.detail["lookups"] == lookups and not check.gate, check.reason


def test_a_redirect_counts_and_is_followed_unless_all_is_there():
    answers = S({("example.com", "TXT"): ["v=spf1 redirect=_spf.example.net"],
                 ("_spf.example.net", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]})
    check = h.check_spf("example.com", answers, sender_ips=["192.0.2.7"])
    assert check.status == h.PASS and check.detail["lookups"] == 1 and check.detail["coverage"] == "covered"
    ignored = S({("example.com", "TXT"): ["v=spf1 ip4:192.0.2.1 -all redirect=missing.example.net"]})
    assert h.check_spf("example.com", ignored).detail["lookups"] == 0  # RFC 7208 §6.1


def test_more_than_two_void_lookups_is_a_permanent_error():
    two = h.check_spf("example.com", tree("v=spf1 a:x1.example.com a:x2.example.com ip4:192.0.2.1 -all"))
    assert two.status == h.PASS and two.detail["void"] == 2
    three = h.check_spf("example.com", tree("v=spf1 a:x1.example.com a:x2.example.com mx:x3.example.com -all"))
    assert three.gate and "more than 2 of its lookups find nothing (the last: mx:x3.example.com)" in three.reason


@pytest.mark.parametrize("record, words", [
    ("v=spf1 include:nospf.example.net -all", "include:nospf.example.net points at nospf.example.net, which has no SPF"),
    ("v=spf1 foo:bar -all", "“foo:bar” is not an SPF mechanism"),
    ("v=spf1 ip4:192.0.2.300 -all", "not a valid ip4 network"),
    ("v=spf1 ip4:192.0.2.1/33 -all", "prefix length out of range"),
    ("v=spf1 include: -all", "has a colon but no value"),
    ("v=spf1 redirect=a.example.net redirect=b.example.net", "appears twice"),
    ("v=spf1 include:loop.example.net -all", "loop back"),
])
def test_syntax_and_tree_errors_are_permanent_errors_in_words(record, words):
    answers = S({("example.com", "TXT"): [record],
                 ("loop.example.net", "TXT"): ["v=spf1 include:loop2.example.net -all"],
                 ("loop2.example.net", "TXT"): ["v=spf1 include:loop.example.net -all"]})
    check = h.check_spf("example.com", answers)
    assert check.status == h.FAIL and check.gate and words in check.reason, check.reason


def test_an_mx_term_with_more_than_ten_names_is_a_permanent_error():
    answers = S({("example.com", "TXT"): ["v=spf1 mx -all"],
                 ("example.com", "MX"): [f"{i} mx{i}.example.com." for i in range(11)]})
    assert "has 11 MX hosts" in h.check_spf("example.com", answers).reason


def test_the_all_policy():
    plus = h.check_spf("example.com", tree("v=spf1 ip4:192.0.2.1 +all"))
    assert plus.gate and "+all" in plus.reason and plus.record["value"] == "v=spf1 ip4:192.0.2.1 ~all"
    bare = h.check_spf("example.com", tree("v=spf1 all"))
    assert bare.gate
    neutral = h.check_spf("example.com", tree("v=spf1 ip4:192.0.2.1 ?all"))
    assert (neutral.status, neutral.gate) == (h.WARN, False) and "?all" in neutral.reason
    missing = h.check_spf("example.com", tree("v=spf1 ip4:192.0.2.1"))
    assert missing.status == h.WARN and "no all term" in missing.reason
    assert h.check_spf("example.com", tree("v=spf1 ip4:192.0.2.1 -all")).status == h.PASS


def test_one_record_only_and_none_is_a_fail_without_the_gate_alone():
    none = h.check_spf("example.com", S({("example.com", "TXT"): ["google-site-verification=x"]}))
    assert none.status == h.FAIL and not none.gate and none.record["value"] == "v=spf1 mx ~all"
    two = h.check_spf("example.com", S({("example.com", "TXT"): ["v=spf1 -all", "v=spf1 mx -all"]}))
    assert two.gate and "2 SPF records" in two.reason
    assert h.check_spf("example.com", tree("v=spf10 -all")).status == h.FAIL  # not "v=spf1" then a space


def test_coverage_of_the_smtp_accounts_addresses():
    answers = S({("example.com", "TXT"): ["v=spf1 ip4:203.0.113.0/28 a:out.example.com include:_spf.example.net -all"],
                 ("out.example.com", "A"): ["198.51.100.20"],
                 ("_spf.example.net", "TXT"): ["v=spf1 mx ip6:2001:db8:1::/48 ~all"],
                 ("_spf.example.net", "MX"): ["10 mx.example.net."], ("mx.example.net", "A"): ["192.0.2.30"]})
    for ip in ("203.0.113.5", "198.51.100.20", "192.0.2.30", "2001:db8:1::25"):
        assert h.check_spf("example.com", answers, sender_ips=[ip]).detail["coverage"] == "covered", ip
    # Not listed: the relay's outgoing servers may differ from the one Loft connects to: unknown, not a fail.
    other = h.check_spf("example.com", answers, sender_ips=["203.0.113.99"])
    assert other.status == h.PASS and other.detail["coverage"] == "unknown" and "unknown" in other.reason
    macro = S({("example.com", "TXT"): ["v=spf1 exists:%{i}.spf.example.com -all"]})
    assert h.check_spf("example.com", macro, sender_ips=["203.0.113.5"]).detail["coverage"] == "unknown"


def test_a_providers_documented_include_decides_coverage():
    covered = h.check_spf("example.com", tree("v=spf1 include:icloud.com ~all", icloud_com="v=spf1 ip4:17.0.0.0/8 ~all"),
                          expected_includes=["icloud.com"])
    assert covered.status == h.PASS and covered.detail["coverage"] == "covered"
    missing = h.check_spf("example.com", tree("v=spf1 mx -all"), expected_includes=["icloud.com"])
    assert missing.status == h.WARN and missing.detail["coverage"] == "not covered"
    assert missing.record["value"] == "v=spf1 mx include:icloud.com ~all"


# --- DKIM, DMARC, MX, pure ---------------------------------------------------------------------

def test_dkim_must_be_the_key_loft_signs_with():
    name = "loft202611._domainkey.example.com"
    good = h.check_dkim("example.com", "loft202611", "MIIBkey", S({(name, "TXT"): ["v=DKIM1; k=rsa; p=MIIB key"]}))
    assert good.status == h.PASS and good.record == {"type": "TXT", "name": name, "value": "v=DKIM1; k=rsa; p=MIIBkey"}
    other = h.check_dkim("example.com", "loft202611", "MIIBkey", S({(name, "TXT"): ["v=DKIM1; p=OTHER"]}))
    assert other.status == h.FAIL and "not the key Loft signs with" in other.reason
    revoked = h.check_dkim("example.com", "loft202611", "MIIBkey", S({(name, "TXT"): ["v=DKIM1; p="]}))
    assert "revoked" in revoked.reason
    assert h.check_dkim("example.com", "loft202611", "MIIBkey", S({})).status == h.FAIL


def test_dmarc_at_the_domain_or_its_organisational_domain():
    own = S({("_dmarc.news.example.co.uk", "TXT"): ["v=DMARC1; p=quarantine; rua=mailto:d@example.co.uk"]})
    check = h.check_dmarc("news.example.co.uk", own, "news.example.co.uk", "news.example.co.uk")
    assert check.status == h.PASS and check.detail["found_at"] == "_dmarc.news.example.co.uk"
    # Not at the subdomain: the organisational domain's, by the public suffix list (co.uk is a suffix), with sp=.
    org = S({("_dmarc.example.co.uk", "TXT"): ["v=DMARC1; p=reject; sp=none; rua=mailto:d@example.co.uk"]})
    check = h.check_dmarc("news.example.co.uk", org, "news.example.co.uk", "news.example.co.uk")
    assert check.status == h.PASS and check.detail["found_at"] == "_dmarc.example.co.uk"
    assert check.detail["policy"] == "none"
    assert not h.check_dmarc("example.co.uk", S({("_dmarc.co.uk", "TXT"): ["v=DMARC1; p=none"]})).status == h.PASS


def test_no_dmarc_record_gates_with_the_record_to_publish():
    check = h.check_dmarc("example.com", S({("_dmarc.example.com", "TXT"): ["not dmarc"]}))
    assert check.gate and check.record == {"type": "TXT", "name": "_dmarc.example.com",
                                           "value": "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"}
    words = h.reason_words("example.com", [check])
    assert words.startswith("example.com has no DMARC record.")
    assert words.endswith('Publish TXT _dmarc.example.com "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com".')


@pytest.mark.parametrize("records, status, gate, words", [
    (["v=DMARC1; p=none; rua=mailto:a@example.com", "v=DMARC1; p=reject"], h.FAIL, True, "Keep one"),
    (["v=DMARC1; p=maybe"], h.FAIL, True, "no valid policy"),
    (["v=DMARC1; rua=mailto:a@example.com"], h.WARN, False, "read it as p=none"),
    (["v=DMARC1; p=reject"], h.WARN, False, "no rua address"),
])
def test_dmarc_records_receivers_ignore_or_half_read(records, status, gate, words):
    check = h.check_dmarc("example.com", S({("_dmarc.example.com", "TXT"): records}), "example.com", "example.com")
    assert (check.status, check.gate) == (status, gate) and words in check.reason, check.reason


def test_alignment_relaxed_and_strict():
    assert h.aligned("news.example.com", "example.com", "r") and not h.aligned("news.example.com", "example.com", "s")
    assert h.aligned("example.com", "EXAMPLE.com.", "s") and not h.aligned("example.com", "example.net", "r")
    assert not h.aligned("a.example.co.uk", "b.other.co.uk", "r") and h.aligned("a.example.co.uk", "b.example.co.uk")
    strict = S({("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:d@example.com"]})
    check = h.check_dmarc("news.example.com", strict, dkim_domain="example.com", spf_domain="bounce.example.com")
    assert check.gate and "cannot pass" in check.reason
    relaxed = S({("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; rua=mailto:d@example.com"]})
    assert h.check_dmarc("news.example.com", relaxed, "example.com", "bounce.example.com").status == h.PASS
    one = S({("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.com"]})
    assert not h.check_dmarc("news.example.com", one, "example.com", "news.example.com").gate  # SPF aligns


def test_mx_null_mx_and_nothing():
    assert h.check_mx("example.com", S({("example.com", "MX"): ["10 mx.example.com."]})).status == h.PASS
    null = h.check_mx("example.com", S({("example.com", "MX"): ["0 ."]}))
    assert (null.status, null.gate) == (h.WARN, False) and "null MX" in null.reason
    bare = h.check_mx("example.com", S({("example.com", "A"): ["192.0.2.1"]}))
    assert bare.status == h.WARN and "no MX record" in bare.reason
    nothing = h.check_mx("example.com", S({}))
    assert nothing.gate and nothing.record["type"] == "MX"


def test_the_gate_combines_dkim_and_spf_and_unknown_is_not_a_failure():
    dkim_bad = h.check_dkim("example.com", "s", "KEY", S({}))
    spf_none = h.check_spf("example.com", S({}))
    spf_ok = h.check_spf("example.com", tree("v=spf1 ip4:203.0.113.1 -all"), sender_ips=["203.0.113.1"])
    assert [c.key for c in h.evaluate([dkim_bad, spf_none])["gate"]] == ["auth"]
    assert h.evaluate([dkim_bad, spf_ok])["gate"] == []  # SPF passes: authenticated
    dkim_ok = h.check_dkim("example.com", "s", "KEY", S({("s._domainkey.example.com", "TXT"): ["p=KEY"]}))
    assert h.evaluate([dkim_ok, spf_none])["gate"] == []  # DKIM passes: authenticated
    timed_out = h.check_dmarc("example.com", S({("_dmarc.example.com", "TXT"): h.LookupFailed}))
    verdict = h.evaluate([dkim_ok, timed_out])
    assert verdict["unknown"] and verdict["gate"] == [] and timed_out.status == h.UNKNOWN


# --- Against a DNS server on loopback ----------------------------------------------------------

DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@acme.test"


@pytest.fixture
def ctx(ctx):
    ctx.config.update(DOMAIN_HEALTH_GATE=True, SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01,
                      SEND_FLUSH_INTERVAL=0.05, SEND_STATE_INTERVAL=0.1, SEND_MAX_IN_RUN_WAIT=1.0, SEND_BATCH_SIZE=5)
    return ctx


def acme_domain(team, verified=True):
    row = domains.add_domain(team, "acme.test")
    if verified:
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    return SenderDomain.get_by_id(row.id)


def publish_healthy(zone, row):
    zone.publish(domains.dkim_name(row), domains.dkim_record(row))
    zone.publish(row.domain, "v=spf1 ip4:192.0.2.25 ~all")
    zone.publish(f"_dmarc.{row.domain}", DMARC)
    zone.add(row.domain, "MX", f"10 mx.{row.domain}.")


def acme():
    team = Team.get(Team.name == "Acme")
    team.default_from_email, team.postal_address = "news@acme.test", "1 Main Street"
    team.save()
    return team


def test_real_dns_healthy_then_cached_then_forced(ctx, admin, dns_zone):
    row = acme_domain(acme())
    publish_healthy(dns_zone, row)
    health = gate.check_domain(row)
    by_key = {c["key"]: c for c in health.results}
    assert [c["key"] for c in health.results] == ["spf", "dkim", "dmarc", "mx"]
    assert by_key["dkim"]["status"] == "pass" and by_key["dmarc"]["status"] == "pass" and by_key["mx"]["status"] == "pass"
    assert by_key["spf"]["status"] == "pass" and by_key["spf"]["detail"]["coverage"] == "unknown"  # 127.0.0.1 is no public address
    assert health.gate_reason == "" and health.failing_since is None
    asked = len(dns_zone.queries)
    assert gate.check_domain(row).checked_at == health.checked_at and len(dns_zone.queries) == asked  # cached
    dns_zone.remove(f"_dmarc.{row.domain}")
    forced = gate.check_domain(row, force=True)
    assert len(dns_zone.queries) > asked
    assert forced.gate_reason.startswith("acme.test has no DMARC record.") and forced.failing_since is not None
    assert DomainHealth.select().count() == 1


def test_a_dead_dns_server_is_unknown_and_pauses_nothing(ctx, admin, dns_zone, smtp):
    row = acme_domain(acme())
    publish_healthy(dns_zone, row)
    campaign = make_campaign(acme(), state="sending")
    dns_zone.silence(f"_dmarc.{row.domain}")
    ctx.config["DOMAIN_HEALTH_CACHE_MINUTES"] = 0
    health, done = gate.check_and_gate(row, force=True)
    assert health.status == "unknown" and health.gate_reason == "" and done["paused"] == []
    assert Campaign.get_by_id(campaign.id).state == "sending"


def test_launch_is_refused_with_the_reason_and_nothing_frozen(ctx, admin, dns_zone):
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    dns_zone.remove(f"_dmarc.{row.domain}")
    mailing_list = MailingList.create(team=team, name="Newsletter")
    make_contacts(team, 3, mailing_list)
    campaign = make_campaign(team, [mailing_list], state="draft")
    with pytest.raises(gate.DomainGateError) as refused:
        publishing.start(campaign)
    assert str(refused.value).startswith("This campaign cannot start: acme.test has no DMARC record.")
    assert 'Publish TXT _dmarc.acme.test "v=DMARC1; p=none;' in str(refused.value)
    assert Campaign.get_by_id(campaign.id).state == "draft" and statuses(campaign) == {}
    # Fixed: the cached failure is forced away by "Check now" (or the tasks), and the launch goes through.
    dns_zone.publish(f"_dmarc.{row.domain}", DMARC)
    gate.check_domain(row, force=True)
    assert publishing.start(Campaign.get_by_id(campaign.id)).state == "sending"


def test_a_scheduled_campaign_waits_for_its_domain_and_starts_once_it_passes(ctx, admin, dns_zone):
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    dns_zone.remove(f"_dmarc.{row.domain}")
    mailing_list = MailingList.create(team=team, name="Newsletter")
    make_contacts(team, 2, mailing_list)
    campaign = make_campaign(team, [mailing_list], state="scheduled", scheduled_at=utcnow())
    sending_tasks.tick.call_local()
    assert Campaign.get_by_id(campaign.id).state == "scheduled"  # not started, not sent back to draft
    # The 5-minute task watches its domain too: the admins hear of it once.
    assert gate.watched_domains() == [row]
    deliverability_tasks.check_sending_domains.call_local()
    [notice] = Notice.select().where(Notice.kind == "domain_health")
    assert "Campaigns from it will not start until the domain passes its checks." in notice.text
    dns_zone.publish(f"_dmarc.{row.domain}", DMARC)
    gate.check_domain(row, force=True)
    ctx.config["SEND_MAX_IN_RUN_WAIT"] = 0.2
    sending_tasks.tick.call_local()
    assert Campaign.get_by_id(campaign.id).state != "scheduled"


# --- The page ----------------------------------------------------------------------------------

def test_the_domain_page_shows_each_check_with_a_light_the_record_and_the_time(app, admin, web, dns_zone):
    with app.app_context():
        app.config["DOMAIN_HEALTH_GATE"] = True
        row = acme_domain(acme())
        publish_healthy(dns_zone, row)
        dns_zone.remove(f"_dmarc.{row.domain}")
    page = soup(web.get(f"/sending/domains/{row.id}"))
    assert page.select_one("#domain-health .health-empty")  # not checked yet: says what to do
    response = web.post(f"/sending/domains/{row.id}/health", {})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/sending/domains/{row.id}#domain-health")
    page = soup(web.get(f"/sending/domains/{row.id}"))
    section = page.select_one("#domain-health")
    checks = {li["data-check"]: li for li in section.select("li.health-check")}
    assert list(checks) == ["spf", "dkim", "dmarc", "mx"]
    dmarc = checks["dmarc"]
    assert dmarc["data-status"] == "fail" and dmarc["data-gate"] == "yes"
    assert badge(dmarc.select_one(".badge.state-fail")) == ("circle-x", "Fail")  # colour, icon and word
    assert dmarc.select_one("textarea#health-record-dmarc").get_text() == "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test"
    assert dmarc.select_one("label[for=health-record-dmarc] code").get_text() == "_dmarc.acme.test"
    assert dmarc.select_one("button.copy-button")["data-copy"] == "#health-record-dmarc"
    assert badge(checks["dkim"].select_one(".badge.state-ok")) == ("circle-check", "Pass")
    assert "acme.test has no DMARC record." in section.select_one(".health-gate").get_text()
    assert section.select_one(".health-checked").get_text().startswith("Last checked ")
    # HTMX: the section alone comes back.
    fragment = web.post(f"/sending/domains/{row.id}/health", {}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and soup(fragment).select_one("section#domain-health li[data-check=mx]")


def test_check_now_needs_manage_domains_and_another_teams_domain_is_not_found(app, admin, web, dns_zone):
    with app.app_context():
        team = acme()
        row = acme_domain(team)
        other_team = Team.create(name="Other")
        theirs = domains.add_domain(other_team, "other.test")
        _, manager = make_member(app, team, "manager")
    assert manager.post(f"/sending/domains/{row.id}/health", {}).status_code == 403
    assert web.post(f"/sending/domains/{theirs.id}/health", {}).status_code == 404
    assert web.post("/sending/domains/999999/health", {}).status_code == 404
    assert DomainHealth.select().count() == 0 and dns_zone.queries == []
    assert web.get(f"/sending/domains/{row.id}/health").status_code == 405  # POST only


# --- End to end: DNS changed mid-send ----------------------------------------------------------

def test_dmarc_removed_mid_send_pauses_then_restored_resumes_and_admins_hear_once(ctx, admin, dns_zone, smtp, catcher):
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    server = smtp(delay=0.05)
    mailing_list = MailingList.create(team=team, name="Newsletter")
    make_contacts(team, 60, mailing_list)
    make_account(team, server.port, max_connections=1)
    campaign = make_campaign(team, [mailing_list], state="draft")
    campaign = publishing.start(campaign)  # the launch check passes (and caches the healthy answer)
    assert campaign.state == "sending"
    run = threading.Thread(target=_send, args=(ctx, campaign.id))
    run.start()
    _wait(lambda: server.handler.total() >= 5)

    dns_zone.remove(f"_dmarc.{row.domain}")
    assert deliverability_tasks.check_sending_domains.call_local() == []
    run.join(60)
    paused = Campaign.get_by_id(campaign.id)
    assert paused.state == "paused"
    assert paused.state_reason.startswith("Paused: acme.test has no DMARC record.")
    assert 'Publish TXT _dmarc.acme.test "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test".' in paused.state_reason
    delivered = server.handler.total()
    assert 5 <= delivered < 60 and statuses(paused).get("queued", 0) > 0
    time.sleep(0.5)
    assert server.handler.total() == delivered  # nothing more goes out while paused
    # Checked again while still failing: still paused, no second alert.
    deliverability_tasks.check_sending_domains.call_local()
    assert Notice.select().where(Notice.kind == "domain_health").count() == 1

    dns_zone.publish(f"_dmarc.{row.domain}", DMARC)
    assert deliverability_tasks.check_sending_domains.call_local() == [campaign.id]  # resumed, and sent (immediate queue)
    _settle(campaign.id)
    done = Campaign.get_by_id(campaign.id)
    assert done.state == "completed" and server.handler.total() == 60
    assert all(count == 1 for count in server.handler.delivered.values())
    assert DomainPause.select().count() == 0
    health = gate.health_of(row)
    assert health.gate_reason == "" and health.failing_since is None and health.alerted_at is None

    [notice] = Notice.select().where(Notice.kind == "domain_health")
    assert notice.subject == "Sender domain acme.test fails its DNS checks"
    assert "“Spring news”" in notice.text and "resumes them by itself" in notice.text
    # Emailed once, with the notice that the campaign finished (app/campaigns/finished.py).
    assert alerts.email_pending() == 2 and alerts.email_pending() == 0
    messages = [email.message_from_bytes(caught.raw, policy=email.policy.default) for caught in CaughtMessage.select()]
    assert {message["To"] for message in messages} == {"admin@example.com"}
    assert sorted(message["Subject"] for message in messages) == [
        "[Loft] Campaign “Spring news” has finished", "[Loft] Sender domain acme.test fails its DNS checks"]


def test_a_campaign_a_person_paused_is_never_resumed_by_the_gate(ctx, admin, dns_zone):
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    dns_zone.remove(f"_dmarc.{row.domain}")
    ours = make_campaign(team, state="sending", name="Ours")
    theirs = make_campaign(team, state="paused", name="Theirs", state_reason="Paused by Ada")
    make_account(team, 2525)  # something to send through: a resume checks that too
    _, done = gate.check_and_gate(row, force=True)
    assert done["paused"] == [ours.id] and done["alerted"]
    # Ada cannot resume it while DMARC is missing: the same check refuses it, in words, and nothing changes.
    with pytest.raises(publishing.ResumeRefusedError, match="acme.test has no DMARC record"):
        publishing.control(Campaign.get_by_id(ours.id), "resume")
    assert Campaign.get_by_id(ours.id).state == "paused"
    # Once published she resumes it (a fresh look at DNS, not the check from before) and pauses "Ours" herself
    # before the gate's next check: her pause is hers.
    dns_zone.publish(f"_dmarc.{row.domain}", DMARC)
    publishing.control(Campaign.get_by_id(ours.id), "resume")
    publishing.control(Campaign.get_by_id(ours.id), "pause", who="Ada")
    _, done = gate.check_and_gate(row, force=True)
    assert done["resumed"] == []
    assert Campaign.get_by_id(ours.id).state == "paused" and Campaign.get_by_id(theirs.id).state == "paused"
    assert DomainPause.select().count() == 0


def _send(app, campaign_id):
    with app.app_context():
        sending_tasks.run_campaign(campaign_id)


def _wait(condition, seconds=30):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def _settle(campaign_id):
    for _ in range(20):
        if Campaign.get_by_id(campaign_id).state != "sending":
            return
        sending_tasks.run_campaign(campaign_id)
    raise AssertionError("the campaign did not finish")


def test_frozen_sends_are_kept_when_a_launch_is_refused(ctx, admin, dns_zone):
    """A campaign already frozen (a scheduled one retried) keeps its Sends: the refusal comes before any write."""
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    mailing_list = MailingList.create(team=team, name="Newsletter")
    make_contacts(team, 2, mailing_list)
    campaign = make_campaign(team, [mailing_list], state="scheduled", scheduled_at=utcnow())
    ledger.freeze_audience(campaign)
    dns_zone.remove(domains.dkim_name(row))
    dns_zone.remove(row.domain, "TXT")
    with pytest.raises(gate.DomainGateError) as refused:
        publishing.start(Campaign.get_by_id(campaign.id))
    assert "unauthenticated" in str(refused.value)
    assert statuses(campaign) == {"queued": 2}


def test_the_publish_page_and_the_api_refuse_with_the_reason(app, ctx, web, ready_team, dns_zone, api):
    team, news = ready_team
    row = SenderDomain.get(SenderDomain.domain == "acme.example")
    publish_healthy(dns_zone, row)
    dns_zone.remove(f"_dmarc.{row.domain}")
    first = make_campaign(team, [news], state="draft", from_email="news@acme.example")
    second = make_campaign(team, [news], state="draft", from_email="news@acme.example", name="Second")
    response = web.post(f"/campaigns/{first.id}/publish", {"when": "now"})
    assert response.status_code == 422
    error = soup(response).select_one(".flash-error").get_text(" ", strip=True)
    assert "Not published: This campaign cannot start: acme.example has no DMARC record." in error
    assert 'Publish TXT _dmarc.acme.example "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.example".' in error
    refused = api.post(f"/api/v1/campaigns/{second.id}/send")
    assert refused.status_code == 409, refused.get_json()
    assert "acme.example has no DMARC record." in refused.get_json()["detail"]
    assert {Campaign.get_by_id(c.id).state for c in (first, second)} == {"draft"}
    assert statuses(first) == {} and statuses(second) == {}


def test_an_unverified_domain_is_checked_but_alerts_nobody(ctx, admin, dns_zone):
    row = acme_domain(acme(), verified=False)
    health, done = gate.check_and_gate(row, force=True)  # nothing published: everything fails
    assert health.gate_reason and done == {"paused": [], "resumed": [], "alerted": False}
    assert Notice.select().count() == 0
    assert gate.watched_domains() == [] and gate.verified_domains() == []


def test_the_domains_list_shows_each_domains_health(app, admin, web, dns_zone):
    with app.app_context():
        app.config["DOMAIN_HEALTH_GATE"] = True
        row = acme_domain(acme())
        quiet = domains.add_domain(acme(), "quiet.test")
        publish_healthy(dns_zone, row)
        dns_zone.remove(f"_dmarc.{row.domain}")
        gate.check_domain(row)
    page = soup(web.get("/sending/domains"))
    assert badge(page.select_one(f"#domain-{row.id} td.domain-health .badge.state-fail")) == \
        ("circle-x", "Mail would be rejected")
    assert page.select_one(f"#domain-{quiet.id} td.domain-health").get_text(strip=True) == "not checked"
    with app.app_context():
        dns_zone.publish(f"_dmarc.{row.domain}", DMARC)
        gate.check_domain(row, force=True)
    page = soup(web.get("/sending/domains"))
    assert badge(page.select_one(f"#domain-{row.id} td.domain-health .badge.state-ok")) == ("circle-check", "Pass")


# --- Subdomain senders: each From domain judged by its own records --------------------------------

def test_dmarc_alignment_needs_an_aligned_pass_not_just_any_pass():
    key = "s._domainkey.example.com"
    answers = S({(key, "TXT"): ["p=KEY"],
                 ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.com"],
                 ("news.example.com", "MX"): ["10 mx.example.com."]})
    dkim = h.check_dkim("example.com", "s", "KEY", answers)  # passes, for d=example.com
    spf = h.check_spf("news.example.com", answers)  # no SPF record for the subdomain
    dmarc = h.check_dmarc("news.example.com", answers, dkim_domain="example.com", spf_domain="news.example.com")
    [finding] = h.evaluate([dkim, spf, dmarc])["gate"]
    assert finding.key == "alignment" and "is not aligned (strict)" in finding.reason
    assert finding.record == {"type": "TXT", "name": "news.example.com", "value": "v=spf1 mx ~all"}
    relaxed = S({**{k: v for k, v in answers.records.items()},
                 ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; rua=mailto:d@example.com"]})
    dmarc = h.check_dmarc("news.example.com", relaxed, dkim_domain="example.com", spf_domain="news.example.com")
    assert h.evaluate([dkim, spf, dmarc])["gate"] == []  # relaxed: d=example.com aligns with news.example.com


def test_a_subdomain_senders_failure_pauses_only_its_campaigns(ctx, admin, dns_zone):
    team = acme()
    row = acme_domain(team)
    publish_healthy(dns_zone, row)
    dns_zone.remove(f"_dmarc.{row.domain}")
    dns_zone.publish(f"_dmarc.{row.domain}", "v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc@acme.test")
    dns_zone.add("mail.acme.test", "MX", "10 mx.acme.test.")
    apex = make_campaign(team, state="sending", name="Apex")
    sub = make_campaign(team, state="sending", name="Sub", from_email="hello@mail.acme.test")
    draft = make_campaign(team, state="draft", name="Draft", from_email="hello@mail.acme.test")

    health, done = gate.check_and_gate(row, force=True)
    assert done["paused"] == [sub.id] and done["alerted"]
    assert Campaign.get_by_id(apex.id).state == "sending"
    reason = Campaign.get_by_id(sub.id).state_reason
    assert reason.startswith("Paused: mail.acme.test: DMARC cannot pass for mail From mail.acme.test")
    assert 'Publish TXT mail.acme.test "v=spf1 mx ~all".' in reason
    assert set(health.gate_reasons) == {"mail.acme.test"}
    labels = [c["label"] for c in health.results]
    assert labels == ["SPF", "DKIM", "DMARC", "MX (bounces)", "SPF of mail.acme.test", "DMARC for mail.acme.test",
                      "MX of mail.acme.test"]
    assert "mail.acme.test" in gate.launch_problem(draft)

    dns_zone.publish("mail.acme.test", "v=spf1 ip4:192.0.2.25 ~all")
    health, done = gate.check_and_gate(row, force=True)
    assert done["resumed"] == [sub.id] and health.gate_reason == "" and health.gate_reasons == {}
    assert Campaign.get_by_id(sub.id).state == "sending" and gate.launch_problem(draft) is None
    assert Notice.select().where(Notice.kind == "domain_health").count() == 1


def test_check_now_is_limited_per_team(app, admin, web, dns_zone):
    with app.app_context():
        app.config["DOMAIN_HEALTH_GATE"] = True
        row = acme_domain(acme())
    for _ in range(gate.CHECK_NOW_LIMIT):
        assert web.post(f"/sending/domains/{row.id}/health", {}).status_code == 302
    asked = len(dns_zone.queries)
    refused = web.post(f"/sending/domains/{row.id}/health", {}, headers={"HX-Request": "true"})
    assert refused.status_code == 422 and len(dns_zone.queries) == asked  # refused before any lookup
    assert "wait a few minutes" in soup(refused).select_one("#domain-health .health-error").get_text()
    assert soup(refused).select_one("#domain-health li[data-check=dmarc]")  # the last check is still shown
    page = web.post(f"/sending/domains/{row.id}/health", {}, follow_redirects=True)
    assert "wait a few minutes" in soup(page).select_one(".flash-error").get_text()


def badge(element):
    """(icon name, word) of a health badge: the sprite icon beside the word, never colour alone."""
    return element.select_one("svg.icon use")["href"].rpartition("#")[2], element.get_text(" ", strip=True)
