"""DNS blocklists (RFC 5782) against a real DNS server on loopback: names asked (IPv4 reversed, IPv6
nibbles, domains), return codes in words, refusals and timeouts as "could not check", the answers
stored and cached, one alert per listing and one when it ends, the domain page and its "Check now",
the instance setting, roles and team isolation."""
import pytest

from app import settings as instance_settings
from app.deliverability import blocklists
from app.models import BlocklistStatus
from app.models import CaughtMessage
from app.models import Notice
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.notices import alerts
from tasks import deliverability as deliverability_tasks
from tests.accounts_support import make_member
from tests.conftest import soup

HOST = "smtp.acme.test"
V4 = "192.0.2.10"
V6 = "2001:db8::25"
V4_NAME = "10.2.0.192"
V6_NAME = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
SBL_REASON = "Listed in SBL, see https://check.spamhaus.org/sbl/query/SBL000000"


@pytest.fixture(autouse=True)
def fresh_cache():
    blocklists.clear_cache()
    yield
    blocklists.clear_cache()


def acme():
    return Team.get(Team.name == "Acme")


def add_domain(web, name="acme.example"):
    response = web.post("/sending/domains", {"domain": name})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return SenderDomain.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))


def add_account(team, host=HOST):
    return SmtpAccount.create(team=team, name=f"Relay {host}", host=host, port=587, tls_mode="starttls")


def statuses(team):
    return {(row.target, row.zone): row.status for row in BlocklistStatus.select().where(BlocklistStatus.team == team)}


def row(team, target, zone):
    return BlocklistStatus.get((BlocklistStatus.team == team) & (BlocklistStatus.target == target)
                               & (BlocklistStatus.zone == zone))


def blocklist_notices(team):
    return list(Notice.select().where((Notice.team == team) & (Notice.kind == "blocklist")).order_by(Notice.id))


@pytest.fixture
def listed(app, admin, web, dns_zone):
    """Acme with a sender domain and an SMTP host on 192.0.2.10 and 2001:db8::25, which the zone lists:
    ZEN lists the IPv4 address (SBL and XBL) and the IPv6 one (CSS), Barracuda refuses (127.255.255.254),
    SpamCop does not list, and DBL lists the domain."""
    domain = add_domain(web)
    add_account(acme())
    dns_zone.add(HOST, "A", V4)
    dns_zone.add(HOST, "AAAA", V6)
    dns_zone.add(f"{V4_NAME}.zen.spamhaus.org", "A", "127.0.0.2")
    dns_zone.add(f"{V4_NAME}.zen.spamhaus.org", "A", "127.0.0.4")
    dns_zone.publish(f"{V4_NAME}.zen.spamhaus.org", SBL_REASON)
    dns_zone.add(f"{V6_NAME}.zen.spamhaus.org", "A", "127.0.0.3")
    dns_zone.add(f"{V4_NAME}.b.barracudacentral.org", "A", "127.255.255.254")
    dns_zone.add(f"{V6_NAME}.b.barracudacentral.org", "A", "127.255.255.254")
    dns_zone.add("acme.example.dbl.spamhaus.org", "A", "127.0.1.2")
    return domain


# --- Names and codes ---------------------------------------------------------------------------

def test_query_names_follow_rfc_5782():
    assert blocklists.query_name("address", V4, "zen.spamhaus.org") == f"{V4_NAME}.zen.spamhaus.org"
    assert blocklists.query_name("address", V6, "zen.spamhaus.org") == f"{V6_NAME}.zen.spamhaus.org"
    assert len(blocklists.reversed_address(V6).split(".")) == 32
    assert blocklists.query_name("domain", "acme.example", "dbl.spamhaus.org") == "acme.example.dbl.spamhaus.org"


@pytest.mark.parametrize("zone, codes, status, words", [
    ("zen.spamhaus.org", (), "clean", "Not listed"),
    ("zen.spamhaus.org", ("127.0.0.2",), "listed", "Spamhaus SBL"),
    ("zen.spamhaus.org", ("127.0.0.4", "127.0.0.10"), "listed", "Spamhaus XBL"),
    ("zen.spamhaus.org", ("127.0.0.11",), "listed", "Spamhaus PBL"),
    ("abc123.zen.dq.spamhaus.net", ("127.0.0.9",), "listed", "Spamhaus DROP"),
    ("zen.spamhaus.org", ("127.255.255.254",), "unknown", "public or open resolver"),
    ("bl.spamcop.net", ("127.255.255.255",), "unknown", "too many queries"),
    ("dbl.spamhaus.org", ("127.0.1.255",), "unknown", "refuses IP addresses"),
    ("dbl.spamhaus.org", ("127.0.1.4",), "listed", "phishing"),
    ("multi.surbl.org", ("127.0.0.24",), "listed", "SURBL PH: phishing, SURBL MW: malware"),
    ("multi.surbl.org", ("127.0.0.1",), "unknown", "blocked"),
    ("bl.example.test", ("127.0.0.2",), "listed", "Listed (code 127.0.0.2)"),
    ("bl.example.test", ("198.51.100.7",), "unknown", "not a blocklist code"),
])
def test_return_codes_in_words(zone, codes, status, words):
    got_status, meaning = blocklists.interpret(zone, codes)
    assert got_status == status and words in meaning, meaning


def test_xbl_and_pbl_together_name_both():
    status, meaning = blocklists.interpret("zen.spamhaus.org", ("127.0.0.10", "127.0.0.4"))
    assert status == "listed" and meaning.index("XBL") < meaning.index("PBL")


def test_removal_links():
    assert blocklists.removal_link("zen.spamhaus.org") == "https://check.spamhaus.org/"
    assert blocklists.removal_link("bl.example.test", "Blocked, see https://bl.example.test/q?ip=192.0.2.10 now") \
        == "https://bl.example.test/q?ip=192.0.2.10"
    assert blocklists.removal_link("bl.example.test", "javascript:alert(1)") == ""


def test_zone_names_are_checked():
    assert blocklists.parse_zones("Zen.Spamhaus.org.\n bl.spamcop.net, bl.spamcop.net", "f") \
        == ["zen.spamhaus.org", "bl.spamcop.net"]
    assert blocklists.parse_zones("  ", "f") == []
    for bad in ("https://zen.spamhaus.org", "192.0.2.1", "*.spamhaus.org", "localhost", "bl.spamcop.net:53",
                "-bad.example.com", "a" * 64 + ".example.com"):
        with pytest.raises(blocklists.BlocklistError) as caught:
            blocklists.parse_zones(f"zen.spamhaus.org\n{bad}", "blocklist_address_zones")
        assert "is not a DNS zone name" in caught.value.errors["blocklist_address_zones"], bad
    with pytest.raises(blocklists.BlocklistError, match="At most"):
        blocklists.parse_zones("\n".join(f"bl{i}.example.com" for i in range(13)), "f")


# --- Against the loopback DNS server -------------------------------------------------------------

def test_a_check_asks_every_list_and_stores_each_answer(app, listed, dns_zone):
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=2)
    got = statuses(acme())
    assert got == {
        (V4, "zen.spamhaus.org"): "listed", (V4, "b.barracudacentral.org"): "unknown", (V4, "bl.spamcop.net"): "clean",
        (V6, "zen.spamhaus.org"): "listed", (V6, "b.barracudacentral.org"): "unknown", (V6, "bl.spamcop.net"): "clean",
        ("acme.example", "dbl.spamhaus.org"): "listed"}
    sbl = row(acme(), V4, "zen.spamhaus.org")
    assert sbl.codes == ["127.0.0.2", "127.0.0.4"] and sbl.hosts == [HOST] and sbl.listed_since is not None
    assert "Spamhaus SBL" in sbl.meaning and "Spamhaus XBL" in sbl.meaning and sbl.reason == SBL_REASON
    assert "CSS" in row(acme(), V6, "zen.spamhaus.org").meaning
    refused = row(acme(), V4, "b.barracudacentral.org")
    assert refused.listed_since is None and refused.meaning.startswith("Could not check") \
        and "public or open resolver" in refused.meaning
    assert "low-reputation" in row(acme(), "acme.example", "dbl.spamhaus.org").meaning
    asked = {name for name, _ in dns_zone.queries}
    assert f"{V6_NAME}.bl.spamcop.net." in asked and "acme.example.dbl.spamhaus.org." in asked
    # The TXT reason is asked only for listings.
    assert (f"{V4_NAME}.zen.spamhaus.org.", "TXT") in dns_zone.queries
    assert (f"{V4_NAME}.bl.spamcop.net.", "TXT") not in dns_zone.queries


def test_a_list_that_does_not_answer_is_could_not_check(app, listed, dns_zone):
    dns_zone.silence(f"{V4_NAME}.bl.spamcop.net")
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=0.5)
    timed_out = row(acme(), V4, "bl.spamcop.net")
    assert timed_out.status == "unknown" and "did not answer within 0.5 s" in timed_out.meaning
    assert row(acme(), V4, "zen.spamhaus.org").status == "listed"  # the others were asked at the same time


def test_answers_are_cached_unless_forced_and_refusals_never(app, listed, dns_zone):
    def asked(*suffixes):  # the questions about Acme's own addresses and domain, not the lists' test points
        return len([name for name, _ in dns_zone.queries if name.endswith(suffixes)
                    and not name.startswith(("1.0.0.127.", "invalid."))])

    with app.app_context():
        blocklists.check_team(acme().id, lifetime=2)
        answered, refused = asked("spamhaus.org.", "spamcop.net."), asked("barracudacentral.org.")
        assert answered and refused == 2
        blocklists.check_team(acme().id, lifetime=2)
        assert asked("spamhaus.org.", "spamcop.net.") == answered, "the second check asked the lists again"
        assert asked("barracudacentral.org.") == 4, "a could-not-check answer is asked again"
        blocklists.check_team(acme().id, force=True, lifetime=2)
        assert asked("spamhaus.org.", "spamcop.net.") == 2 * answered


def test_a_list_that_lists_its_test_point_is_could_not_check(app, listed, dns_zone):
    # A lapsed zone that answers every name: 127.0.0.1 and "invalid" must never be listed (RFC 5782 §5).
    dns_zone.add("1.0.0.127.bl.spamcop.net", "A", "127.0.0.2")
    dns_zone.add(f"{V4_NAME}.bl.spamcop.net", "A", "127.0.0.2")
    dns_zone.add("invalid.dbl.spamhaus.org", "A", "127.0.1.2")
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=1)
    broken = row(acme(), V4, "bl.spamcop.net")
    assert broken.status == "unknown" and "lists everything" in broken.meaning and broken.listed_since is None
    assert row(acme(), "acme.example", "dbl.spamhaus.org").status == "unknown"
    assert row(acme(), V4, "zen.spamhaus.org").status == "listed"  # a working list still counts
    assert ("127.0.0.1", "bl.spamcop.net") not in statuses(acme())
    [notice] = blocklist_notices(acme())
    assert "spamcop" not in notice.text and "dbl.spamhaus.org" not in notice.text


def test_private_addresses_are_not_asked_about_and_unresolved_hosts_say_so(app, admin, dns_zone):
    add_account(acme(), "127.0.0.1")
    add_account(acme(), "missing.acme.test")
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=1)
    assert statuses(acme()) == {("127.0.0.1", ""): "skipped", ("missing.acme.test", ""): "unknown"}
    assert "no A or AAAA record" in row(acme(), "missing.acme.test", "").meaning
    assert not [q for q in dns_zone.queries if "spamhaus" in q[0] or "spamcop" in q[0]]


def test_a_dead_name_server_is_could_not_check_everywhere(app, admin, web, silent_dns):
    domain = add_domain(web)
    add_account(acme())
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=0.3)
    assert statuses(acme()) == {(HOST, ""): "unknown", ("acme.example", "dbl.spamhaus.org"): "unknown"}
    assert "did not answer" in row(acme(), HOST, "").meaning
    assert "did not answer" in row(acme(), "acme.example", "dbl.spamhaus.org").meaning
    assert not blocklist_notices(acme())
    shown = rows_on_page(web.get(f"/sending/domains/{domain.id}"))
    assert shown[(HOST, "")][0] == "unknown" and "Could not check" in shown[(HOST, "")][1]


def test_a_misconfigured_resolver_is_said_in_words(app, admin, web):
    domain = add_domain(web)
    add_account(acme())
    app.config["DNS_NAMESERVER"] = "dns.example.com"  # a name, where an IP address is needed
    response = web.post(f"/sending/domains/{domain.id}/blocklists", htmx=True)
    assert response.status_code == 200
    shown = rows_on_page(response)
    assert shown[("acme.example", "dbl.spamhaus.org")][0] == "unknown"
    assert "LOFT_DNS_NAMESERVER must be an IP address" in shown[("acme.example", "dbl.spamhaus.org")][1]
    assert "LOFT_DNS_NAMESERVER" in shown[(HOST, "")][1]


def test_one_alert_per_listing_and_one_when_it_ends(app, listed, dns_zone, catcher):
    team = acme()
    with app.app_context():
        blocklists.check_team(team.id, lifetime=1)
        blocklists.check_team(team.id, force=True, lifetime=1)
    [notice] = blocklist_notices(team)
    assert notice.subject.startswith("Blocklisted:") and V4 in notice.subject and "acme.example" in notice.subject
    assert "zen.spamhaus.org: Spamhaus SBL" in notice.text and "https://check.spamhaus.org/" in notice.text
    assert "b.barracudacentral.org" not in notice.text  # a refusal is not a listing
    with app.app_context():
        assert alerts.email_pending() == 1  # to the one Administrator, through the instance's SMTP server
    mail = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert "Blocklisted" in mail.subject and "admin@example.com" in mail.recipients

    # A list that stops answering neither ends the listing nor starts it again.
    dns_zone.silence(f"{V4_NAME}.zen.spamhaus.org")
    with app.app_context():
        blocklists.check_team(team.id, force=True, lifetime=0.5)
    assert len(blocklist_notices(team)) == 1
    assert row(team, V4, "zen.spamhaus.org").listed_since is not None

    dns_zone.silent.clear()
    dns_zone.remove(f"{V4_NAME}.zen.spamhaus.org")
    with app.app_context():
        blocklists.check_team(team.id, force=True, lifetime=1)
        blocklists.check_team(team.id, force=True, lifetime=1)
    notices = blocklist_notices(team)
    assert len(notices) == 2
    assert notices[1].subject == f"No longer blocklisted: {V4} ({HOST})"
    assert row(team, V4, "zen.spamhaus.org").status == "clean"
    assert row(team, V4, "zen.spamhaus.org").listed_since is None


def test_the_periodic_task_checks_every_team(app, listed, dns_zone):
    other = Team.create(name="Other")
    SenderDomain.create(team=other, domain="other.example", dkim_selector="loft202612", dkim_private_key="")
    dns_zone.add("other.example.dbl.spamhaus.org", "A", "127.0.1.5")
    with app.app_context():
        deliverability_tasks.check_blocklists()
    assert statuses(other) == {("other.example", "dbl.spamhaus.org"): "listed"}
    assert "malware" in row(other, "other.example", "dbl.spamhaus.org").meaning
    assert statuses(acme())[(V4, "zen.spamhaus.org")] == "listed"
    assert len(blocklist_notices(other)) == 1


def test_lists_and_targets_that_go_are_forgotten(app, listed, dns_zone):
    with app.app_context():
        blocklists.check_team(acme().id, lifetime=1)
        instance_settings.save_settings({"blocklist_address_zones": ["bl.spamcop.net"], "blocklist_domain_zones": []})
        SmtpAccount.delete().where(SmtpAccount.team == acme()).execute()
        add_account(acme(), "relay2.acme.test")
        dns_zone.add("relay2.acme.test", "A", "198.51.100.20")
        blocklists.check_team(acme().id, force=True, lifetime=1)
    assert statuses(acme()) == {("198.51.100.20", "bl.spamcop.net"): "clean"}


# --- The domain page -----------------------------------------------------------------------------

def rows_on_page(response):
    return {(tr["data-target"], tr["data-zone"]): (tr["data-status"], tr.get_text(" ", strip=True))
            for tr in soup(response).select("#blocklists tr.blocklist-row")}


def test_the_domain_page_shows_each_answer_in_words(app, listed, web):
    page = soup(web.get(f"/sending/domains/{listed.id}"))
    assert page.select_one("#blocklists-empty") and page.select_one("#blocklists h2").get_text() == "Blocklists"
    response = web.post(f"/sending/domains/{listed.id}/blocklists", htmx=True)
    assert response.status_code == 200
    shown = rows_on_page(response)
    status, text = shown[(V4, "zen.spamhaus.org")]
    assert status == "listed" and "Listed" in text and "Spamhaus SBL" in text and HOST in text and SBL_REASON in text
    assert shown[(V4, "b.barracudacentral.org")][1].count("Could not check") >= 1
    assert shown[(V4, "bl.spamcop.net")][0] == "clean" and "Not listed" in shown[(V4, "bl.spamcop.net")][1]
    assert shown[("acme.example", "dbl.spamhaus.org")][0] == "listed"
    fragment = soup(response)
    link = fragment.select_one(f'tr[data-target="{V4}"][data-zone="zen.spamhaus.org"] a.blocklist-removal')
    assert link["href"] == "https://check.spamhaus.org/" and "noopener" in link["rel"]
    assert fragment.select_one(f'tr[data-target="{V4}"] .badge.state-fail').get_text() == "Listed"
    assert "Listed on 3 lists" in fragment.select_one("#blocklists-summary").get_text()
    assert "Last checked" in fragment.get_text()
    order = [tr["data-status"] for tr in fragment.select(f'tr.blocklist-row[data-target="{V4}"]')]
    assert order == ["listed", "unknown", "clean"]  # listings first
    assert "(botnet, open proxy). The list says: Listed in SBL" in shown[(V4, "zen.spamhaus.org")][1]
    page = soup(web.get(f"/sending/domains/{listed.id}"))  # the full page shows what was stored
    assert len(page.select("#blocklists tr.blocklist-row")) == 7


def test_the_domains_list_says_which_are_listed(app, listed, web):
    second = add_domain(web, "second.example")
    assert soup(web.get("/sending/domains")).select_one(f"#domain-{listed.id} .domain-blocklists").get_text() \
        == "not checked"
    web.post(f"/sending/domains/{listed.id}/blocklists")
    page = soup(web.get("/sending/domains"))
    badge = page.select_one(f"#domain-{listed.id} .domain-blocklists a.badge.state-fail")
    assert badge.get_text() == "Listed on 3 lists" and badge["href"].endswith(f"/sending/domains/{listed.id}#blocklists")
    # The team's SMTP addresses are listed twice on ZEN: every domain sent through them says so.
    assert page.select_one(f"#domain-{second.id} .domain-blocklists").get_text() == "Listed on 2 lists"


def test_another_domain_of_the_team_shows_only_its_own_domain_rows(app, listed, web):
    second = add_domain(web, "second.example")
    web.post(f"/sending/domains/{listed.id}/blocklists")
    shown = rows_on_page(web.get(f"/sending/domains/{second.id}"))
    assert ("second.example", "dbl.spamhaus.org") in shown and ("acme.example", "dbl.spamhaus.org") not in shown
    assert (V4, "zen.spamhaus.org") in shown  # the team's SMTP addresses send for every domain


def test_check_now_is_limited_per_team(app, listed, web):
    for _ in range(blocklists.CHECK_NOW_LIMIT):
        assert web.post(f"/sending/domains/{listed.id}/blocklists", htmx=True).status_code == 200
    refused = web.post(f"/sending/domains/{listed.id}/blocklists", htmx=True)
    assert refused.status_code == 422
    assert "Try again later" in soup(refused).select_one("#blocklists-error").get_text()
    assert rows_on_page(refused)  # the stored answers are still shown
    plain = web.post(f"/sending/domains/{listed.id}/blocklists")
    assert plain.status_code == 302 and plain.headers["Location"].endswith(f"/sending/domains/{listed.id}#blocklists")


def test_check_now_needs_the_csrf_token(app, listed, web):
    assert web.client.post(f"/sending/domains/{listed.id}/blocklists").status_code in (400, 403)
    assert not statuses(acme())


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_check_blocklists(app, listed, role):
    _, member = make_member(app, acme(), role)
    assert member.post(f"/sending/domains/{listed.id}/blocklists").status_code == 403
    assert not statuses(acme())


def test_another_teams_domain_is_not_found(app, listed, web):
    other = Team.create(name="Other")
    theirs = SenderDomain.create(team=other, domain="other.example", dkim_selector="loft202612", dkim_private_key="")
    add_account(other)
    assert web.post(f"/sending/domains/{theirs.id}/blocklists").status_code == 404
    assert web.post(f"/sending/domains/{2**70}/blocklists").status_code == 404
    assert not BlocklistStatus.select().exists()


# --- The instance setting ------------------------------------------------------------------------

def settings_form(app, **changes):
    with app.app_context():
        values = instance_settings.get_settings()
    form = {key: values[key] for key in ("base_url", "default_from_name", "default_from_email", "postal_address",
                                         "smtp_host", "smtp_port", "smtp_tls", "smtp_username", "team_creation")}
    form.update(changes)
    return form


def test_the_lists_are_an_instance_setting(app, listed, web, dns_zone):
    page = soup(web.get("/admin/settings"))
    assert page.select_one("#f-blocklist_address_zones").get_text().split() == [
        "zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]
    assert page.select_one("label[for=f-blocklist_domain_zones]")
    refused = web.post("/admin/settings", settings_form(app, blocklist_address_zones="zen.spamhaus.org\nhttp://evil",
                                                        blocklist_domain_zones="dbl.spamhaus.org"), htmx=True)
    assert refused.status_code == 422
    assert "'http://evil' is not a DNS zone name" in soup(refused).select_one("#e-blocklist_address_zones").get_text()
    with app.app_context():
        assert instance_settings.get_setting("blocklist_address_zones")[0] == "zen.spamhaus.org"
    saved = web.post("/admin/settings", settings_form(app, blocklist_address_zones="bl.example.test",
                                                      blocklist_domain_zones=""))
    assert saved.status_code == 302
    with app.app_context():
        assert instance_settings.get_setting("blocklist_address_zones") == ["bl.example.test"]
        assert instance_settings.get_setting("blocklist_domain_zones") == []
    dns_zone.add(f"{V4_NAME}.bl.example.test", "A", "127.0.0.2")
    web.post(f"/sending/domains/{listed.id}/blocklists")
    assert statuses(acme()) == {(V4, "bl.example.test"): "listed", (V6, "bl.example.test"): "clean"}


def test_a_settings_form_without_the_lists_keeps_them(app, admin, web):
    assert web.post("/admin/settings", settings_form(app)).status_code == 302
    with app.app_context():
        assert instance_settings.get_setting("blocklist_domain_zones") == ["dbl.spamhaus.org"]


def test_a_team_admin_cannot_change_the_lists(app, admin):
    _, team_admin = make_member(app, acme(), "admin", "teamadmin@example.com")
    assert team_admin.post("/admin/settings", {"blocklist_address_zones": "bl.example.test"}).status_code == 403
