"""The domain-health gate: sending stops while a sender domain's DNS would get its mail rejected.

    check_domain(domain_row, force=False)   the checks of domain_health.py over real DNS answers, stored
                                            in DomainHealth; a check younger than
                                            DOMAIN_HEALTH_CACHE_MINUTES is reused unless forced
    gate_campaigns(domain_row, health)      pause the team's sending campaigns From the domain (the reason
                                            in Campaign.state_reason, with what to publish), alert the
                                            Administrators once per failure episode, and resume the
                                            campaigns it paused itself once the domain passes again
    check_and_gate(domain_row, force)       both; what the tasks and "Check now" call
    launch_problem(campaign)                why a campaign must not start now (publishing.start refuses)

Each campaign is judged by its own From domain: the domain itself, or a subdomain it covers (news.example.com
under a verified example.com), which gets its own SPF, DMARC and MX checks beside the domain's DKIM key
(DomainHealth.gate_reasons holds the reason per From domain).

A lookup that failed (timeout, SERVFAIL) is "unknown": it neither starts nor ends a failure episode, so
a flaky resolver never pauses a campaign and never resumes one that a real failure paused. Scheduled
campaigns are not paused (a campaign that has not started has nothing to stop): the minute tick does not
start one while its domain fails (publishing.start raises DomainGateError) and starts it once it passes.
Callers enqueue the sending of resumed campaigns (services never enqueue).
"""
import datetime
import ipaddress
import logging

import dns.exception
import dns.resolver
from flask import current_app
from peewee import IntegrityError

from app.campaigns import states
from app.campaigns.errors import CampaignError
from app.consent import ratelimit
from app.db import db
from app.errors import Problem
from app.deliverability import domain_health as health_checks
from app.models import Campaign
from app.models import CampaignState
from app.models import DomainHealth
from app.models import DomainPause
from app.models import SenderDomain
from app.models import utcnow
from app.notices import alerts
from app.senders import accounts
from app.senders import domains

log = logging.getLogger(__name__)

KIND = "domain_health"
LOOKUP_SECONDS = 3.0
# SMTP account presets whose provider documents the SPF include its outgoing servers need.
PRESET_INCLUDES = {"icloud": "icloud.com"}


class DomainGateError(CampaignError):
    """A campaign may not start: its sender domain's DNS would get the mail rejected."""
    status = 409


class DomainHealthError(Problem):
    """A "Check now" refused (too many in a short time), in words."""
    status = 429


class DnsAnswers:
    """Real answers through dnspython (domains.resolver: LOFT_DNS_NAMESERVER or the system's), each
    (name, type) asked once per check; after one timeout every further question is unknown at once, so a
    dead server costs one wait, not one per record."""

    def __init__(self, lifetime=LOOKUP_SECONDS):
        self.cache = {}
        self.dead = None
        try:
            self.resolver = domains.resolver(lifetime)
        except domains.DnsLookupError as exc:
            self.resolver, self.dead = None, str(exc)

    def get(self, name, rdtype):
        key = (name.rstrip(".").lower(), rdtype.upper())
        if key in self.cache:
            return list(self.cache[key])
        if self.dead:
            raise health_checks.LookupFailed(self.dead)
        try:
            answer = self.resolver.resolve(key[0] + ".", key[1])
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            values = []
        except dns.resolver.LifetimeTimeout:
            self.dead = f"the DNS server did not answer in time (asked for {key[0]} {key[1]})"
            raise health_checks.LookupFailed(self.dead) from None
        except dns.exception.DNSException as exc:
            raise health_checks.LookupFailed(f"the lookup of {key[0]} {key[1]} failed: {exc}") from None
        else:
            values = [_text(record, key[1]) for record in answer]
        self.cache[key] = values
        return list(values)


def _text(record, rdtype):
    if rdtype == "TXT":
        return b"".join(record.strings).decode("utf-8", "replace")
    if rdtype == "MX":
        return f"{record.preference} {record.exchange.to_text()}"
    if rdtype in ("A", "AAAA"):
        return record.address
    return record.to_text()


def _sender_setup(team_id, answers):
    """(public addresses of the team's SMTP servers, SPF includes their presets need)."""
    addresses, includes = [], []
    for account in accounts.active_accounts(team_id):
        include = PRESET_INCLUDES.get(account.preset or "")
        if include and include not in includes:
            includes.append(include)
        try:
            hosts = [str(ipaddress.ip_address(account.host))]
        except ValueError:
            try:
                hosts = answers.get(account.host, "A") + answers.get(account.host, "AAAA")
            except health_checks.LookupFailed:
                hosts = []
        addresses += [h for h in hosts if ipaddress.ip_address(h).is_global and h not in addresses]
    return addresses, includes


def run_checks(domain_row, answers=None, subdomains=()):
    """The Checks of one sender domain (SPF, DKIM, DMARC, MX) over `answers` (real DNS by default), and
    for each subdomain sender in `subdomains` its own SPF, DMARC and MX (scope = that From domain)."""
    answers = answers or DnsAnswers()
    name = domain_row.domain
    sender_ips, includes = _sender_setup(domain_row.team_id, answers)
    public_key = domains.dkim_keys(domain_row)[1]
    # Loft signs with d=<this domain> and sends with the From address as the envelope sender, so for
    # mail From a subdomain the DKIM domain is this one and the SPF domain the subdomain.
    checks = [health_checks.check_spf(name, answers, sender_ips, includes),
              health_checks.check_dkim(name, domain_row.dkim_selector, public_key, answers),
              health_checks.check_dmarc(name, answers, dkim_domain=name, spf_domain=name),
              health_checks.check_mx(name, answers)]
    for sub in sorted(subdomains):
        for check, label in ((health_checks.check_spf(sub, answers, sender_ips, includes), f"SPF of {sub}"),
                             (health_checks.check_dmarc(sub, answers, dkim_domain=name, spf_domain=sub),
                              f"DMARC for {sub}"),
                             (health_checks.check_mx(sub, answers), f"MX of {sub}")):
            check.key, check.label, check.scope = f"{check.key}:{sub}", label, sub
            checks.append(check)
    return checks


def cache_minutes():
    return max(0, int(current_app.config.get("DOMAIN_HEALTH_CACHE_MINUTES", 10)))


def health_of(domain_row):
    return DomainHealth.get_or_none(DomainHealth.sender_domain == domain_row.id)


def scope_of(domain_row, from_email):
    """"" for mail From the domain itself, else the From address's subdomain of it."""
    from_domain = (from_email or "").rpartition("@")[2].strip().strip(">").lower().rstrip(".")
    return "" if from_domain == domain_row.domain else from_domain


def subdomains_in_use(domain_row):
    """The subdomains of this domain that the team's live campaigns send From (each checked on its own)."""
    found = set()
    live = (CampaignState.SENDING, CampaignState.SCHEDULED, CampaignState.PAUSED)
    for campaign in Campaign.select(Campaign.team, Campaign.from_email).where(
            (Campaign.team == domain_row.team_id) & Campaign.state.in_(live)):
        row = domains.domain_for_sender(campaign.team_id, campaign.from_email)
        if row is not None and row.id == domain_row.id:
            found.add(scope_of(domain_row, campaign.from_email))
    return found - {""}


def _checked_scopes(health):
    return {""} | {c.get("scope") or "" for c in (health.results or []) if isinstance(c, dict)}


def check_domain(domain_row, force=False, now=None, answers=None, scopes=()):
    """The domain's DomainHealth, checked now unless a check younger than the cache time exists that
    covers every From domain asked about (`scopes`, and the subdomains live campaigns send From)."""
    now = now or utcnow()
    health = health_of(domain_row)
    wanted = subdomains_in_use(domain_row) | {s for s in scopes if s}
    if not force and health is not None and health.checked_at is not None \
            and now - health.checked_at < datetime.timedelta(minutes=cache_minutes()) \
            and wanted <= _checked_scopes(health):
        return health
    checks = run_checks(domain_row, answers, wanted)
    previous = (health.gate_reasons or {}) if health is not None else {}
    reasons = {}
    for scope in [""] + sorted(wanted):
        verdict = health_checks.evaluate_scope(checks, scope)
        if verdict["gate"]:
            reasons[scope] = health_checks.reason_words(scope or domain_row.domain, verdict["gate"])
        elif verdict["unknown"] and previous.get(scope):
            reasons[scope] = previous[scope]  # nothing known for sure: the failure stands until a lookup says
    status = health_checks.worst(checks)
    values = {"checked_at": now, "status": status, "results": [c.as_dict() for c in checks],
              "gate_reasons": reasons, "gate_reason": " ".join(reasons[k] for k in sorted(reasons))}
    if reasons:
        values["failing_since"] = (health.failing_since if health is not None else None) or now
    else:
        values.update(failing_since=None, alerted_at=None)
    if health is None:
        try:
            with db.atomic():
                health = DomainHealth.create(team=domain_row.team_id, sender_domain=domain_row.id, **values)
            return health
        except IntegrityError:  # another worker made it meanwhile
            health = health_of(domain_row)
    DomainHealth.update(**values).where(DomainHealth.id == health.id).execute()
    return DomainHealth.get_by_id(health.id)


def campaigns_from(domain_row, state=CampaignState.SENDING):
    """The team's campaigns in `state` whose From address this domain covers (the most specific one)."""
    found = []
    for campaign in Campaign.select().where((Campaign.team == domain_row.team_id) & (Campaign.state == state)):
        row = domains.domain_for_sender(campaign.team_id, campaign.from_email)
        if row is not None and row.id == domain_row.id:
            found.append(campaign)
    return found


def reason_for(domain_row, health, from_email):
    """Why mail From this address would be rejected, by the stored check ("" when it would not)."""
    reasons = health.gate_reasons or {}
    scope = scope_of(domain_row, from_email)
    if scope not in _checked_scopes(health):
        scope = ""  # a subdomain not checked yet: what is known of the domain itself
    return reasons.get(scope, "")


def gate_campaigns(domain_row, health, now=None):
    """Pause or resume the domain's campaigns after a check; {"paused", "resumed": [ids], "alerted": bool}.

    Each campaign is judged by the checks of its own From domain: a subdomain sender's failing DMARC
    pauses its campaigns only."""
    done = {"paused": [], "resumed": [], "alerted": False}
    for campaign in campaigns_from(domain_row):
        found = reason_for(domain_row, health, campaign.from_email)
        if not found:
            continue
        reason = f"Paused: {found}"
        with db.atomic():
            try:
                states.transition(campaign, CampaignState.PAUSED, reason=reason)
            except states.TransitionError:
                continue  # paused, cancelled or completed meanwhile
            DomainPause.delete().where(DomainPause.campaign == campaign.id).execute()
            DomainPause.create(campaign=campaign.id, sender_domain=domain_row.id, reason=reason)
        done["paused"].append(campaign.id)
        log.warning("campaign %s paused: %s", campaign.id, reason)
    if health.gate_reason:
        done["alerted"] = _alert_once(domain_row, health, done["paused"], now)
    for pause in list(DomainPause.select().where(DomainPause.sender_domain == domain_row.id)):
        campaign = Campaign.get_or_none(Campaign.id == pause.campaign_id)
        if campaign is not None and reason_for(domain_row, health, campaign.from_email):
            continue  # still failing (or not known to pass)
        # Only a campaign still paused with our own words: a person who paused or resumed it since decides.
        if campaign is not None and campaign.state == CampaignState.PAUSED and campaign.state_reason == pause.reason:
            try:
                states.transition(campaign, CampaignState.SENDING,
                                  reason=f"Resumed by Loft: {domain_row.domain} passes its DNS checks again.")
                done["resumed"].append(campaign.id)
            except states.TransitionError:
                pass
        pause.delete_instance()
    return done


def _alert_once(domain_row, health, paused_ids, now=None):
    """One notice (in the app, emailed to the Administrators) per failure episode; True when this call sent it."""
    if domain_row.verified_at is None:
        return False  # not sending yet: the page says what is missing; nobody needs an email about it
    with db.atomic():
        claimed = (DomainHealth.update(alerted_at=now or utcnow())
                   .where((DomainHealth.id == health.id) & DomainHealth.alerted_at.is_null()).execute())
        if not claimed:
            return False
        paused = Campaign.select(Campaign.name).where(Campaign.id.in_(paused_ids)) if paused_ids else []
        names = ", ".join(f"“{c.name}”" for c in paused)
        text = (f"{health.gate_reason} "
                + (f"Loft paused {names} and resumes them by itself once the domain passes its checks."
                   if names else "Campaigns from it will not start until the domain passes its checks."))
        alerts.notify(domain_row.team_id, f"Sender domain {domain_row.domain} fails its DNS checks", text,
                      kind=KIND, data={"sender_domain": domain_row.id, "campaigns": list(paused_ids)}, now=now)
    return True


def check_and_gate(domain_row, force=False, now=None):
    """check_domain then gate_campaigns: (health, what was paused, resumed and alerted)."""
    health = check_domain(domain_row, force=force, now=now)
    return health, gate_campaigns(domain_row, health, now=now)


CHECK_NOW_LIMIT = 20  # "Check now" presses a team may make in CHECK_NOW_WINDOW seconds
CHECK_NOW_WINDOW = 600


def check_now(team, domain_row, now=None):
    """A person's "Check now": a fresh check and its pauses or resumes, limited per team because each
    press sends a dozen DNS questions to the configured resolver."""
    if not ratelimit.hit("domain-health-check", team.id, CHECK_NOW_LIMIT, CHECK_NOW_WINDOW):
        raise DomainHealthError(f"This team checked its domains {CHECK_NOW_LIMIT} times in the last "
                                f"{CHECK_NOW_WINDOW // 60} minutes; wait a few minutes and check again. "
                                "Loft also checks every hour by itself.")
    return check_and_gate(domain_row, force=True, now=now)


def enabled():
    return bool(current_app.config.get("DOMAIN_HEALTH_GATE", True))


def launch_problem(campaign, fresh=False):
    """Why this campaign must not start now (its domain's DNS would get the mail rejected), or None. `fresh`: ask
    DNS again rather than trust a recent check (a person resuming after a fix)."""
    if not enabled():
        return None
    row = domains.domain_for_sender(campaign.team_id, campaign.from_email)
    if row is None:
        return None  # publish_problems says the domain is not verified
    health = check_domain(row, force=fresh, scopes={scope_of(row, campaign.from_email)})
    found = reason_for(row, health, campaign.from_email)
    return f"This campaign cannot start: {found}" if found else None


def watched_domains(now=None):
    """Verified domains with a campaign sending, due to start, or paused by the gate: checked every few
    minutes (a due scheduled campaign that waits for its domain is how its admins hear of it soon)."""
    ids = {row.sender_domain_id for row in DomainPause.select(DomainPause.sender_domain)}
    rows = list(SenderDomain.select().where(SenderDomain.verified_at.is_null(False)))
    by_team = {}
    due = (Campaign.state == CampaignState.SCHEDULED) & (Campaign.scheduled_at <= (now or utcnow()))
    for campaign in Campaign.select(Campaign.team, Campaign.from_email).where(
            (Campaign.state == CampaignState.SENDING) | due):
        by_team.setdefault(campaign.team_id, set()).add(campaign.from_email)
    for team_id, addresses in by_team.items():
        for address in addresses:
            row = domains.domain_for_sender(team_id, address)
            if row is not None:
                ids.add(row.id)
    return [row for row in rows if row.id in ids]


def verified_domains():
    return list(SenderDomain.select().where(SenderDomain.verified_at.is_null(False)).order_by(SenderDomain.id))
