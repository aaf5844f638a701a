"""Address validation (app/deliverability/validation.py) against a real DNS server on 127.0.0.1."""
import json
import re
import time
from pathlib import Path

import pytest

from app.deliverability import validation
from app.deliverability.validation import distance
from app.deliverability.validation import suggest_domain
from app.deliverability.validation import validate
from app.deliverability.validation import validate_many


@pytest.fixture(autouse=True)
def fresh_cache():
    validation.clear_cache()
    yield
    validation.clear_cache()
    validation.reload_disposable_domains()


def asked(zone, name, qtype=None):
    """How many questions about `name` (of type `qtype` when given) the zone was asked."""
    return sum(1 for n, t in zone.queries if n == name + "." and qtype in (None, t))


@pytest.fixture
def zone(ctx, dns_zone):
    dns_zone.add("example.com", "MX", "10 mx.example.com.")
    dns_zone.add("mx.example.com", "A", "192.0.2.10")
    dns_zone.add("a-only.example.org", "A", "192.0.2.20")  # no MX: the implicit MX (RFC 5321 §5.1)
    dns_zone.add("v6-only.example.org", "AAAA", "2001:db8::20")
    dns_zone.add("nomail.example.net", "MX", "0 .")
    dns_zone.publish("txt-only.example.net", "v=spf1 -all")  # exists, but neither MX nor an address
    return dns_zone


def test_a_plain_address_with_an_mx_is_valid(zone):
    verdict = validate(" Ann.Smith@Example.com ")
    assert verdict.status == "valid"
    assert verdict.reasons == ()
    assert verdict.normalized == "ann.smith@example.com"
    assert verdict.address == " Ann.Smith@Example.com "
    assert verdict.suggestion == ""
    assert "deliverable" in verdict.message


def test_syntax_errors_are_invalid_without_asking_dns(zone):
    for raw in ("", "no-at-sign", "two@@example.com", "a@b", "ann@example..com", None):
        verdict = validate(raw)
        assert verdict.status == "invalid", raw
        assert verdict.reasons == ("syntax",)
        assert verdict.normalized == ""
        assert verdict.message.startswith("This is not a valid email address: ")
    assert "@-sign" in validate("no-at-sign").message  # email-validator's own reason
    assert validate("  ").message == "This is not a valid email address: There is no address."
    assert zone.queries == []


def test_the_implicit_mx_an_a_or_aaaa_record_is_enough(zone):
    assert validate("bo@a-only.example.org").status == "valid"
    assert validate("bo@v6-only.example.org").status == "valid"


def test_an_address_record_mail_cannot_reach_is_no_implicit_mx(zone):
    for n, address in enumerate(("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.1.1", "::1", "fd00::25")):
        zone.add(f"private{n}.example.org", "AAAA" if ":" in address else "A", address)
        assert validate(f"bo@private{n}.example.org").reasons == ("no_domain",), address
    zone.add("mixed.example.org", "A", "10.0.0.1")
    zone.add("mixed.example.org", "A", "198.51.100.7")
    assert validate("bo@mixed.example.org").status == "valid"


def test_no_domain_for_nxdomain_and_for_a_name_without_mx_or_address(zone):
    for address in ("bo@missing.example.com", "bo@txt-only.example.net"):
        verdict = validate(address)
        assert verdict.status == "invalid", address
        assert verdict.reasons == ("no_domain",)
        assert "does not exist" in verdict.message


def test_a_null_mx_is_invalid(zone):
    verdict = validate("bo@nomail.example.net")
    assert (verdict.status, verdict.reasons) == ("invalid", ("null_mx",))
    assert "accepts no mail" in verdict.message
    # Not asked for A records: the null MX is the domain's answer.
    assert asked(zone, "nomail.example.net", "A") == 0


def test_a_disposable_domain_and_its_subdomains_are_risky(zone):
    zone.add("mailinator.com", "MX", "10 mx.example.com.")
    zone.add("x.mailinator.com", "MX", "10 mx.example.com.")
    for address in ("bo@mailinator.com", "bo@x.mailinator.com"):
        verdict = validate(address)
        assert (verdict.status, verdict.reasons) == ("risky", ("disposable",)), address


def test_the_instance_adds_its_own_disposable_domains(app, zone):
    assert validate("bo@example.com").status == "valid"
    app.config["DISPOSABLE_DOMAINS"] = " Example.com , other.example "
    validation.reload_disposable_domains()
    assert validate("bo@example.com").reasons == ("disposable",)
    app.config["DISPOSABLE_DOMAINS"] = ""


def test_role_accounts_are_risky(zone):
    for local in ("info", "postmaster", "abuse", "support+billing", "no-reply", "WEBMASTER"):
        verdict = validate(f"{local}@example.com")
        assert (verdict.status, verdict.reasons) == ("risky", ("role",)), local
    assert validate("information@example.com").status == "valid"
    assert validate("ann.info@example.com").status == "valid"


def test_typos_of_common_providers_are_suggested(zone):
    for domain in ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com"):
        zone.add(domain, "MX", "10 mx.example.com.")
    zone.add("gmaill.com", "MX", "10 mx.example.com.")  # typo domains are often registered, with MX
    verdict = validate("Ann@gmaill.com")
    assert (verdict.status, verdict.reasons) == ("risky", ("typo",))
    assert verdict.suggestion == "ann@gmail.com"
    assert "Did you mean ann@gmail.com?" in verdict.message
    # An unregistered typo is invalid and still gets the suggestion.
    verdict = validate("bo@hotmal.con")
    assert verdict.status == "invalid"
    assert verdict.reasons == ("no_domain", "typo")
    assert verdict.suggestion == "bo@hotmail.com"
    # The providers themselves are not typos.
    for address in ("bo@gmail.com", "bo@yahoo.com", "bo@outlook.com"):
        assert validate(address).status == "valid", address


@pytest.mark.parametrize("typed, meant", [
    ("gmial.com", "gmail.com"), ("gmal.com", "gmail.com"), ("gnail.com", "gmail.com"), ("gmaill.com", "gmail.com"),
    ("gmail.co", "gmail.com"), ("gmail.con", "gmail.com"), ("gmail.cmo", "gmail.com"), ("yaho.com", "yahoo.com"),
    ("yahooo.com", "yahoo.com"), ("hotmal.com", "hotmail.com"), ("hotmial.com", "hotmail.com"),
    ("outlok.com", "outlook.com"), ("iclod.com", "icloud.com"), ("protonmial.com", "protonmail.com"),
    ("protnmial.com", "protonmail.com"), ("comcast.nte", "comcast.net"), ("example.con", "example.com"),
    ("shop.example.ocm", "shop.example.com"), ("example.ogr", "example.org"),
])
def test_typo_suggestions(typed, meant):
    assert suggest_domain(typed) == meant


@pytest.mark.parametrize("domain", [
    "gmail.com", "mail.com", "email.com", "ymail.com", "me.com", "ma.com", "gmx.de", "gmx.net", "web.de",
    "example.com", "example.co", "example.cm", "aol.de", "live.de", "yahoo.co.jp", "hotmail.co.uk", "mail.ru",
    "university.edu", "company.io",
])
def test_intended_domains_get_no_suggestion(domain):
    assert suggest_domain(domain) == ""


def test_damerau_levenshtein_distance():
    assert distance("gmail", "gmail") == 0
    assert distance("gmial", "gmail") == 1  # one transposition
    assert distance("gmal", "gmail") == 1
    assert distance("gmaiil", "gmail") == 1
    assert distance("hotmail", "hotmial") == 1
    assert distance("ca", "abc") == 3  # optimal string alignment
    assert distance("abcdef", "uvwxyz", limit=2) > 2


def test_validate_many_asks_once_per_domain_and_the_cache_answers_later_calls(zone):
    for n in range(20):
        zone.add(f"d{n}.example.com", "MX", "10 mx.example.com.")
    addresses = [f"user{i}@d{i % 20}.example.com" for i in range(400)] + ["x@missing.example.com"] * 5
    verdicts = validate_many(addresses)
    assert [v.address for v in verdicts] == addresses  # in order
    assert [v.status for v in verdicts] == ["valid"] * 400 + ["invalid"] * 5
    for n in range(20):
        assert asked(zone, f"d{n}.example.com") == 1  # one MX question, no A/AAAA after an MX
    assert asked(zone, "missing.example.com") == 1  # NXDOMAIN ends the lookup
    questions = len(zone.queries)
    again = validate_many(addresses[:50] + ["x@missing.example.com"])
    assert [v.status for v in again] == ["valid"] * 50 + ["invalid"]
    assert len(zone.queries) == questions  # all from the cache (negative answers too)


def test_the_cache_is_per_name_server(app, zone):
    assert validate("bo@example.com").status == "valid"
    zone.remove("example.com", "MX")
    assert validate("bo@example.com").status == "valid"  # cached
    app.config["DNS_NAMESERVER"] = app.config["DNS_NAMESERVER"].replace("127.0.0.1", "127.0.0.2")
    try:
        # Another name server (nothing listens there): not the cached answer, and no answer at all.
        verdict = validate("bo@example.com", timeout=0.3)
    finally:
        app.config["DNS_NAMESERVER"] = app.config["DNS_NAMESERVER"].replace("127.0.0.2", "127.0.0.1")
    assert verdict.reasons == ("dns_timeout",)


def test_a_name_server_that_never_answers_makes_it_risky_not_invalid_and_is_not_cached(ctx, silent_dns):
    addresses = [f"bo{i}@slow{i % 30}.example.com" for i in range(60)]
    started = time.monotonic()
    verdicts = validate_many(addresses, timeout=0.5)
    elapsed = time.monotonic() - started
    assert {(v.status, v.reasons) for v in verdicts} == {("risky", ("dns_timeout",))}
    assert "did not answer in time" in verdicts[0].message
    # 30 domains asked at once (MAX_IN_FLIGHT), not one after another: about one timeout, not 30.
    assert elapsed < 0.5 * 30 / 2
    assert validation._cache == {}


def test_dns_off_checks_only_what_needs_no_lookup(zone):
    verdict = validate("info@missing.example.com", dns=False)
    assert (verdict.status, verdict.reasons) == ("risky", ("role",))
    assert zone.queries == []


def test_progress_is_reported_and_ends_at_the_total(zone):
    for n in range(10):
        zone.add(f"p{n}.example.com", "MX", "10 mx.example.com.")
    calls = []
    validate_many([f"u{i}@p{i % 10}.example.com" for i in range(300)] + ["bad"], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (301, 301)
    assert len(calls) > 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert all(t == 301 for _, t in calls)


def test_as_json_is_plain_data(zone):
    verdict = validate("info@gnail.com")
    data = json.loads(json.dumps(verdict.as_json()))
    assert data == {"address": "info@gnail.com", "normalized": "info@gnail.com", "status": "invalid",
                    "reasons": ["no_domain", "role", "typo"], "suggestion": "info@gmail.com",
                    "message": verdict.message}
    with pytest.raises(AttributeError):
        verdict.status = "valid"  # frozen


def test_some_domains_answer_and_one_does_not(zone):
    zone.silence("slow.example.com")
    verdicts = validate_many(["ann@example.com", "bo@slow.example.com", "cy@nomail.example.net"], timeout=0.5)
    assert [(v.status, v.reasons) for v in verdicts] == [
        ("valid", ()), ("risky", ("dns_timeout",)), ("invalid", ("null_mx",))]


def test_the_cli_prints_one_json_object_per_address(app, zone):
    result = app.test_cli_runner().invoke(args=["contacts", "validate", "Ann@Example.com", "info@example.com",
                                                "bo@nomail.example.net", "not an address", "cy@gmaill.com"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(line["address"], line["status"], line["reasons"]) for line in lines] == [
        ("Ann@Example.com", "valid", []),
        ("info@example.com", "risky", ["role"]),
        ("bo@nomail.example.net", "invalid", ["null_mx"]),
        ("not an address", "invalid", ["syntax"]),
        ("cy@gmaill.com", "invalid", ["no_domain", "typo"]),
    ]
    assert lines[0]["normalized"] == "ann@example.com"
    assert lines[4]["suggestion"] == "cy@gmail.com"


def test_the_cli_reads_standard_input_and_can_skip_dns(app, zone):
    result = app.test_cli_runner().invoke(args=["contacts", "validate", "--no-dns", "-"],
                                          input="ann@missing.example.com\n\nsales@example.com\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["status"] for line in result.output.splitlines()] == ["valid", "risky"]
    assert zone.queries == []


def test_the_cli_without_addresses_says_what_to_give(app):
    result = app.test_cli_runner().invoke(args=["contacts", "validate"])
    assert result.exit_code == 2
    assert "Give at least one address" in result.output


def test_an_international_domain_is_asked_for_in_punycode(zone):
    zone.add("xn--bcher-kva.example", "MX", "10 mx.example.com.")
    verdict = validate("Ann@Bücher.example")
    assert (verdict.status, verdict.normalized) == ("valid", "ann@bücher.example")
    assert asked(zone, "xn--bcher-kva.example", "MX") == 1


def single_edits(name):
    """Every name one deletion, substitution, insertion or neighbour transposition away from `name`."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789-"
    found = set()
    for i in range(len(name) + 1):
        for c in letters:
            found.add(name[:i] + c + name[i:])
        if i < len(name):
            found.add(name[:i] + name[i + 1:])
            found.update(name[:i] + c + name[i + 1:] for c in letters)
        if i + 1 < len(name):
            found.add(name[:i] + name[i + 1] + name[i] + name[i + 2:])
    return found - {name, ""}


def test_typos_generalise_to_every_single_edit_of_a_provider_name():
    # Not a list of known pairs: every one-edit slip of every provider suggested (gmail, hotmail, outlook, ...).
    total = corrected = 0
    for target in ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "protonmail.com"):
        name, _, rest = target.partition(".")
        for typed in single_edits(name):
            domain = f"{typed}.{rest}"
            if domain in validation.PROVIDERS:
                continue
            total += 1
            corrected += suggest_domain(domain) == target
    assert total > 2_000
    assert corrected / total > 0.99, (corrected, total)


def test_real_domains_from_the_corpus_get_no_suggestion():
    # Domains of addresses in real bounce and complaint messages: none of them is a typo of a provider.
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"corpus not found: {corpus} (../shared is absent)")
    domains = set()
    for path in list(corpus.glob("bounces/*.eml")) + list(corpus.glob("complaints/*")):
        if path.is_file():
            text = path.read_text(errors="replace")
            domains.update(d.lower() for d in re.findall(r"[\w.+-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)+)", text, re.I))
    assert len(domains) > 100
    assert {d: suggest_domain(d) for d in domains if suggest_domain(d)} == {}


def test_without_a_usable_name_server_every_domain_is_unknown_not_an_error(app, ctx):
    app.config["DNS_NAMESERVER"] = "not-an-address"
    try:
        verdicts = validate_many(["ann@example.com", "info@example.com", "bad"])
    finally:
        app.config["DNS_NAMESERVER"] = ""
    assert [(v.status, v.reasons) for v in verdicts] == [
        ("risky", ("dns_timeout",)), ("risky", ("role", "dns_timeout")), ("invalid", ("syntax",))]
    assert validate_many([]) == []
