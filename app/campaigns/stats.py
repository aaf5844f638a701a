"""How many messages of a campaign went where: the ONE place pages read it.

The campaign list, the campaign page (live progress), the report and the dashboard's
recent campaigns all show a campaign's numbers from counts()/counts_for() here, so they
cannot disagree. (They did: three counters kept in three places, the engine's
Campaign.sent, the ledger and the report's aggregates, said 109, 110 and 111 for one
paused campaign, and the "Failed or bounced" tile counted what the list behind it did not.)

The numbers come from the send ledger, one Send row per recipient and the source of
truth, with one GROUP BY over the (campaign, status, id) index:

    sent        handed to a receiving server and answered: delivered + bounced
    delivered   sent and not bounced (status "sent")
    bounced     refused at once, or bounced later by mail (status "bounced")
    failed      given up on without a final answer: temporary refusals past the last
                retry, account limits (status "failed")
    problems    failed + bounced: the "Failed or bounced" tile and the list behind it
    skipped     left out at send time (unsubscribed or suppressed since publishing)
    remaining   queued, deferred, in flight, or held for the A/B winner

Opens and clicks come from the report's aggregates (app.reports), per delivered message.

A/B tests: ab_table() shows the test (the sample, split between the variants) and the
rest of the audience (sent the winner after the test) as separate columns, so the
winner's test result is not diluted by the messages sent after it.
"""
import datetime
import math

from peewee import fn

from app.models import CampaignState
from app.models import Event
from app.models import Send
from app.models import SendStatus
from app.models import Variant
from app.models import utcnow
from app.campaigns import schedule
from app.senders import accounts
from app.senders import domains
from app.senders import warmup
from app.senders import health
from app.sending import ledger

# Not done yet: waiting for a run, claimed by one, a retry due later, held for the A/B winner.
REMAINING = (SendStatus.QUEUED, SendStatus.CLAIMED, SendStatus.DEFERRED, SendStatus.HELD)


def numbers_of(by_status, total=None):
    """The counts the pages show from {status: sends}."""
    c = {status.value: int(by_status.get(status, 0)) for status in SendStatus}  # every status, 0 when absent
    c["delivered"] = c["sent"]
    c["sent"] = c["delivered"] + c["bounced"]
    c["problems"] = c["failed"] + c["bounced"]
    c["remaining"] = sum(c[status] for status in REMAINING)
    c["total"] = total if total else sum(by_status.values())
    done = c["total"] - c["remaining"]
    c["percent"] = max(0, min(100, 100 * done // c["total"])) if c["total"] else 0
    c["bounce_rate"] = c["bounced"] / c["sent"] if c["sent"] else 0.0
    return c


# Counted row by row; "sent" is what they leave of the frozen audience.
NOT_SENT = tuple(status for status in SendStatus if status != SendStatus.SENT)


def statuses_for(campaigns):
    """{campaign id: {status: sends}} for several campaigns, in at most two queries over the
    (campaign, status, id) index. A frozen campaign's "sent" is its total (the ledger's count of its
    rows at publish; rows are never added to a frozen campaign nor removed from it) minus its sends
    in every other status, so only those are counted: a finished campaign's sends are nearly all
    "sent", and counting a million of them took 240 ms on PostgreSQL."""
    campaigns = list(campaigns)
    frozen = [c.id for c in campaigns if c.frozen_at is not None and c.total]
    unfrozen = [c.id for c in campaigns if c.frozen_at is None and c.total]
    by_campaign = {}
    for ids, condition in ((frozen, Send.status << NOT_SENT), (unfrozen, None)):
        if not ids:
            continue
        where = Send.campaign << ids if condition is None else (Send.campaign << ids) & condition
        rows = (Send.select(Send.campaign, Send.status, fn.COUNT(Send.id)).where(where)
                .group_by(Send.campaign, Send.status).tuples())
        for campaign_id, status, count in rows:
            by_campaign.setdefault(campaign_id, {})[status] = count
    for campaign in campaigns:
        if campaign.id in frozen:
            counted = by_campaign.setdefault(campaign.id, {})
            counted[SendStatus.SENT.value] = max(0, campaign.total - sum(counted.values()))
    return {c.id: by_campaign.get(c.id, {}) for c in campaigns}


def counts_for(campaigns):
    """{campaign id: counts} for several campaigns (see the module docstring)."""
    campaigns = list(campaigns)
    by_campaign = statuses_for(campaigns)
    return {c.id: numbers_of(by_campaign[c.id], c.total) for c in campaigns}


def counts(campaign):
    return counts_for([campaign])[campaign.id]


# --- Live progress ----------------------------------------------------------------------

def progress(campaign, now=None):
    """counts() plus the current rate and the time left, which includes the A/B test's wait."""
    now = now or utcnow()
    c = counts(campaign)
    # Only a sending campaign has a rate (a finished one showed its last minute's for a minute).
    rate = ledger.send_rate(campaign, now) if campaign.state == CampaignState.SENDING else 0.0
    eta = winner_in = None
    settings = campaign.ab_test
    waiting = bool(c["held"] and settings and not campaign.ab_decided_at and campaign.started_at)
    if waiting:
        decision_at = ab_decision_at(campaign)
        winner_in = datetime.timedelta(seconds=max(0, int((decision_at - now).total_seconds())))
    if campaign.state == CampaignState.SENDING and c["remaining"]:
        if waiting:
            # The sample goes out now; the rest only once the winner is picked, at the same pace.
            if rate > 0:
                sample_left = (c["remaining"] - c["held"]) / rate
                eta = datetime.timedelta(seconds=int(max(winner_in.total_seconds(), sample_left) + c["held"] / rate))
        else:
            eta = _time_left(campaign, c, rate, now)
    # Accounts the engine cannot reach: the page says it is waiting for them.
    waiting = health.failing(campaign.team_id) if campaign.state == CampaignState.SENDING else []
    # Every account used up its warm-up cap for today: the page says the campaign waits for tomorrow.
    warming = (accounts.held_by_warmup(campaign.team_id)
               if campaign.state == CampaignState.SENDING and c["remaining"] else [])
    # A send-time test's variants wait as deferred sends never tried (attempts 0); retries were tried once at least.
    timed = 0
    if c["deferred"] and settings and settings.get("tests") == "send_time":
        timed = Send.select().where((Send.campaign == campaign.id) & (Send.status == SendStatus.DEFERRED)
                                    & (Send.attempts == 0)).count()
    plan = (warmup_status(campaign, now)
            if campaign.state == CampaignState.SENDING and c["remaining"] else "")
    return dict(c, rate=rate, eta=eta, winner_in=winner_in, waiting=waiting, warming=warming, timed=timed,
                retries=c["deferred"] - timed, warmup=plan)


def warmup_status(campaign, now=None):
    """'Warming up: day 3 of 14 · 400 sent today · resumes tomorrow 09:00' while a warm-up plan holds
    the sending campaign ('' without one): the From domain's plan when it has one, else the plan of the
    team's first active account in warm-up. "Sent today" is the plan's rolling 24 hours, and the time it
    resumes is Campaign.waiting_until (the engine's scheduled run), in the team's time zone."""
    now = now or utcnow()
    plan = domains.domain_for_sender(campaign.team_id, campaign.from_email)
    if warmup.limit(plan, now.date()) is not None:
        sent = warmup.domain_sent(plan, now)
    else:
        plan = next((a for a in accounts.active_accounts(campaign.team_id)
                     if warmup.limit(a, now.date()) is not None), None)
        if plan is None:
            return ""
        sent = accounts.sent_counts([plan.id], now).get(plan.id, {}).get("day", 0)
    days = warmup.length(plan)
    where = (f"day {warmup.day_index(plan, now.date()) + 1} of {days}" if days
             else f"a fixed cap of {warmup.limit(plan, now.date()):,} a day")
    parts = [f"Warming up: {where}", f"{sent:,} sent today"]
    if campaign.waiting_until is not None and campaign.waiting_until > now:
        parts.append("resumes " + schedule.moment_in_words(campaign.team, campaign.waiting_until, now))
    return " · ".join(parts)


def _time_left(campaign, c, rate, now):
    """What can go now at the current rate, but never before the last retry is due; at least a
    second while anything remains (a timedelta of 0 read as "unknown" and the tile flickered)."""
    seconds = None
    ready = c["remaining"] - c["deferred"] - c["held"]
    if ready and rate > 0:
        seconds = math.ceil(ready / rate)
    if c["deferred"]:
        due = ledger.last_retry_due(campaign.id)
        if due is not None:
            seconds = max(seconds or 0, math.ceil((due - now).total_seconds()))
    return datetime.timedelta(seconds=max(1, seconds)) if seconds is not None else None


# --- A/B tests ------------------------------------------------------------------------------

def ab_decision_at(campaign):
    """When the winner is picked by itself: the wait after the test starts, or after the last variant
    of a send-time test went out. None before the campaign starts or without a test."""
    settings = campaign.ab_test
    if not settings or campaign.started_at is None:
        return None
    times = [v.send_at for v in Variant.select(Variant.send_at).where(
        (Variant.campaign == campaign.id) & Variant.send_at.is_null(False))]
    return max([campaign.started_at] + times) + datetime.timedelta(minutes=settings.get("wait_minutes", 0))


def sample_cutoff(campaign):
    """The highest Send id of the A/B test's sample (sends above it are the rest of the audience),
    or None without a test. The same rule split_for_ab_test applies at publish."""
    settings = campaign.ab_test
    if not settings or not campaign.total:
        return None
    # At least one send per variant (a 2% sample of 100 people still tries all four), never past the audience.
    variants = Variant.select().where(Variant.campaign == campaign.id).count()
    sample = min(campaign.total, max(2, variants, campaign.total * settings["sample_percent"] // 100))
    return (Send.select(Send.id).where(Send.campaign == campaign.id).order_by(Send.id)
            .offset(sample - 1).limit(1).scalar())


def _unique(campaign_id, contacts, *conditions):
    return (Event.select(Event.contact).distinct()
            .where((Event.campaign_id == campaign_id) & (Event.contact << contacts) & _any(conditions)).count())


def _any(conditions):
    condition = conditions[0]
    for other in conditions[1:]:
        condition = condition | other
    return condition


def _human(event_type, robot_flag):
    # Machine opens (Apple MPP) and scanner clicks are kept as events but never count.
    flag = Event.data[robot_flag]
    return (Event.type == event_type) & (flag.is_null() | (flag != True))  # noqa: E712 (SQL, not Python)


def group_numbers(campaign_id, condition):
    """Counts, unique opens and clicks, unsubscribes and complaints of the sends matching `condition`."""
    by_status = dict(Send.select(Send.status, fn.COUNT(Send.id)).where(condition).group_by(Send.status).tuples())
    contacts = Send.select(Send.contact).where(condition)
    # A person who clicked has opened the message, even with images blocked (as the report counts it).
    return column_numbers(by_status, opens=_unique(campaign_id, contacts, _human("opened", "machine"),
                                                   _human("clicked", "bot")),
                          clicks=_unique(campaign_id, contacts, _human("clicked", "bot")),
                          unsubscribes=_unique(campaign_id, contacts, Event.type == "unsubscribed"),
                          complaints=_unique(campaign_id, contacts, Event.type == "complained"))


def column_numbers(by_status, opens, clicks, unsubscribes, complaints):
    """An A/B column: the counts of its sends by status, their unique opens and clicks, unsubscribes
    and complaints, and the rates per delivered message."""
    c = numbers_of(by_status)
    delivered = c["delivered"]
    c.update(opens=opens, clicks=clicks, unsubscribes=unsubscribes, complaints=complaints,
             open_rate=opens / delivered if delivered else 0.0, click_rate=clicks / delivered if delivered else 0.0,
             click_to_open=clicks / opens if opens else 0.0)
    return c


def sample_sizes(campaign_id, cutoff):
    """{variant id (as text, a JSON key): sends} of the A/B test's sample (the sends up to id `cutoff`),
    which never changes once the sample is split at publish."""
    return {str(variant_id): count for variant_id, count in
            Send.select(Send.variant, fn.COUNT(Send.id)).where((Send.campaign == campaign_id) & (Send.id <= cutoff))
            .group_by(Send.variant).tuples()}


def sample_statuses(campaign_id, cutoff, sizes):
    """{variant id: {status: sends}} of the A/B test's sample: the statuses other than "sent" counted
    over the (campaign, status, id) index up to id `cutoff`, "sent" what they leave of each variant's
    share of the sample (`sizes`, sample_sizes')."""
    by_variant = {int(variant_id): {} for variant_id in sizes}
    for variant_id, status, count in (Send.select(Send.variant, Send.status, fn.COUNT(Send.id))
                                      .where((Send.campaign == campaign_id) & (Send.status << NOT_SENT)
                                             & (Send.id <= cutoff))
                                      .group_by(Send.variant, Send.status).tuples()):
        by_variant.setdefault(variant_id, {})[status] = count
    for variant_id, counted in by_variant.items():
        counted[SendStatus.SENT.value] = max(0, sizes.get(str(variant_id), 0) - sum(counted.values()))
    return by_variant


def ab_table(campaign, counted=None):
    """The A/B test as columns: each variant on its share of the sample, then (once the winner
    is picked) the rest of the audience, which got the winner. None without a test.
    `counted` (app.reports.services.CountedAbTest) gives the sample's end and each column's numbers
    from the report's aggregates; without it they are counted from the ledger and the events."""
    settings = campaign.ab_test
    variants = list(Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.label))
    if not settings or not variants:
        return None
    cutoff = counted.cutoff if counted else sample_cutoff(campaign)
    in_campaign = Send.campaign == campaign.id
    in_test = in_campaign & (Send.id <= cutoff) if cutoff else in_campaign

    def numbers(variant, condition):
        return counted.numbers(variant) if counted else group_numbers(campaign.id, condition)
    columns = [dict(numbers(variant, in_test & (Send.variant == variant.id)), variant=variant, part="test",
                    label=f"{variant.label} (test)") for variant in variants]
    winner = next((v for v in variants if v.is_winner), None)
    if winner is not None and cutoff:
        columns.append(dict(numbers(None, in_campaign & (Send.id > cutoff)), variant=winner, part="rest",
                            label=f"Rest of the audience ({winner.label})"))
    return {"settings": settings, "columns": columns, "winner": winner,
            "tests": [column for column in columns if column["part"] == "test"]}
