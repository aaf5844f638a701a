"""What the dashboard shows: how the team is doing (recent campaigns and their rates, list growth,
the best and worst campaign), what needs attention, and the first steps a new team has left.

Every rate is the report's (app.reports.services.numbers_for); list growth comes from the daily
totals the report aggregator keeps (TeamDay.new_contacts and unsubscribes, UTC days), so the page
reads a few dozen small rows however many contacts the team has. The number of active contacts is
the one the minute task counted (ContactCount), counted live only when that is missing or stale.
"""
import datetime
from dataclasses import dataclass

from app import usage
from app.automations import held as held_mail
from app.models import Automation
from app.models import BounceMailbox
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactCount
from app.models import ContactStatus
from app.models import MailingList
from app.models import Notice
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import TeamDay
from app.models import automation_email_campaigns
from app.models import utcnow
from app.reports import services as report_services

GROWTH_PERIODS = (30, 90)
RECENT = 5
# Best and worst are picked among the latest campaigns that reached at least this many people: a
# 2-recipient test with one click is not the team's best campaign.
RANKED_POOL = 10
MIN_DELIVERED = 100
COUNT_FRESH = datetime.timedelta(minutes=10)  # the minute task's count is used while this recent


def active_contacts(team, now=None):
    """(active contacts, when counted): the minute task's count (app.reports.rollup.count_contacts) while
    it is fresh, else counted now (a new team, or a stopped worker), with None as its time."""
    now = now or utcnow()
    counted = ContactCount.get_or_none(ContactCount.team == team)
    if counted is not None and counted.counted_at >= now - COUNT_FRESH:
        return counted.active, counted.counted_at
    return Contact.select().where((Contact.team == team) & (Contact.status == ContactStatus.ACTIVE)).count(), None


def _written(team):
    """The team's own campaigns: an automation email step's hidden campaign is always "sending" and is counted with
    its automation instead."""
    return Campaign.select().where((Campaign.team == team) & Campaign.id.not_in(automation_email_campaigns()))


def overview(team):
    contacts, counted_at = active_contacts(team)
    return {
        "contacts": contacts,
        "counted_at": counted_at,
        "lists": MailingList.select().where(MailingList.team == team).count(),
        "sending": _written(team).where(Campaign.state == CampaignState.SENDING).count(),
        "scheduled": _written(team).where(Campaign.state == CampaignState.SCHEDULED).count(),
        "sent_this_month": usage.sent_this_month(team),
    }


def campaign_results(team, min_delivered=MIN_DELIVERED, pool=RANKED_POOL, recent=RECENT):
    """(latest, best, worst) from one read of the latest `pool` campaigns that went out, each row
    {"campaign", "numbers"} with the report's rates: the `recent` latest, and the best and worst by
    click rate among those delivered to at least `min_delivered` people ((None, None) with fewer than two)."""
    rows = report_services.recent_campaigns(team, limit=pool)
    ranked = sorted((row for row in rows if row["numbers"]["delivered"] >= min_delivered),
                    key=lambda row: (row["numbers"]["click_rate"], row["numbers"]["open_rate"], row["campaign"].id))
    best, worst = (ranked[-1], ranked[0]) if len(ranked) >= 2 else (None, None)
    return rows[:recent], best, worst


@dataclass
class Growth:
    days: int
    labels: list  # "YYYY-MM-DD", UTC days, oldest first
    joined: list  # new contacts per day
    left: list  # unsubscribes per day

    @property
    def new(self):
        return sum(self.joined)

    @property
    def unsubscribed(self):
        return sum(self.left)

    @property
    def net(self):
        return self.new - self.unsubscribed

    def description(self):
        return (f"From {self.labels[0]} to {self.labels[-1]} (UTC days): {self.new:,} joined and "
                f"{self.unsubscribed:,} unsubscribed, net growth {self.net:+,}.")

    def running(self, values):
        total, out = 0, []
        for value in values:
            total += value
            out.append(total)
        return out


def growth(team, days=GROWTH_PERIODS[0], now=None):
    """New contacts and unsubscribes per UTC day over the last `days` days (TeamDay rows)."""
    today = (now or utcnow()).date()
    start = today - datetime.timedelta(days=days - 1)
    rows = {day: (new or 0, left or 0) for day, new, left in
            TeamDay.select(TeamDay.day, TeamDay.new_contacts, TeamDay.unsubscribes)
            .where((TeamDay.team == team) & (TeamDay.day >= start.isoformat())).tuples()}
    labels = [(start + datetime.timedelta(days=offset)).isoformat() for offset in range(days)]
    return Growth(days=days, labels=labels, joined=[rows.get(day, (0, 0))[0] for day in labels],
                  left=[rows.get(day, (0, 0))[1] for day in labels])


@dataclass
class Attention:
    kind: str  # domain, campaign, account, mailbox, notices
    text: str
    endpoint: str
    args: dict


def needs_attention(team):
    """What is wrong or waiting for someone, most urgent first: failed and paused campaigns, SMTP
    accounts that cannot connect or are paused, bounce mailboxes whose last check failed, sender
    domains not verified yet, unread alerts."""
    items = []
    for campaign in (_written(team).where(Campaign.state.in_(
            (CampaignState.FAILED, CampaignState.PAUSED))).order_by(Campaign.updated_at.desc(), Campaign.id.desc())
            .limit(10)):
        failed = campaign.state == CampaignState.FAILED
        reason = f": {campaign.state_reason}" if campaign.state_reason else ""
        items.append(Attention("campaign", f"“{campaign.name}” {'failed' if failed else 'is paused'}{reason}",
                               "campaigns.edit" if failed else "campaigns.progress", {"campaign_id": campaign.id}))
    # An automation email step's paused hidden campaign is the automation's trouble: it links to the automation.
    held = held_mail.held_counts(team)
    for automation in Automation.select(Automation.id, Automation.name).where(Automation.id.in_(list(held))) \
            .order_by(Automation.name) if held else []:
        count = held[automation.id]
        items.append(Attention("automation", f"The automation “{automation.name}” has {count} email step"
                               f"{'s' if count != 1 else ''} on hold: its emails wait until you resume them",
                               "automations.builder", {"automation_id": automation.id}))
    for account in SmtpAccount.select().where((SmtpAccount.team == team) & (
            (SmtpAccount.connection_state == "failing") | (SmtpAccount.status == "paused"))).order_by(SmtpAccount.id):
        why = account.last_error if account.connection_state == "failing" else account.paused_reason
        state = "cannot connect" if account.connection_state == "failing" else "is paused"
        items.append(Attention("account", f"The SMTP account “{account.name}” {state}{': ' + why if why else ''}",
                               "sending.accounts", {}))
    for mailbox in BounceMailbox.select().where((BounceMailbox.team == team) & BounceMailbox.enabled
                                                & (BounceMailbox.last_error != "")).order_by(BounceMailbox.id):
        items.append(Attention("mailbox", f"The bounce mailbox “{mailbox.name or mailbox.username}” failed its last "
                               f"check: {mailbox.last_error}", "bounces.index", {}))
    for domain in SenderDomain.select().where((SenderDomain.team == team) & SenderDomain.verified_at.is_null()) \
            .order_by(SenderDomain.domain):
        items.append(Attention("domain", f"The sender domain {domain.domain} is not verified yet: campaigns cannot "
                               "send from it.", "sending.domain", {"domain_id": domain.id}))
    unread = (Notice.select().where((Notice.team == team) & Notice.dismissed_at.is_null() & Notice.read_at.is_null())
              .count())
    if unread:
        items.append(Attention("notices", f"{unread} unread alert{'s' if unread != 1 else ''}", "notices.index", {}))
    return items


def next_steps(team):
    """The setup steps, each (key, label, done), in the order a new team meets them."""
    return [
        ("postal_address", "Add your postal address and default sender", bool(team.postal_address.strip())),
        ("smtp", "Add an SMTP account to send through",
         SmtpAccount.select().where(SmtpAccount.team == team).exists()),
        ("domain", "Verify your sender domain",
         SenderDomain.select().where((SenderDomain.team == team) & SenderDomain.verified_at.is_null(False)).exists()),
        ("contacts", "Import or add contacts", Contact.select().where(Contact.team == team).exists()),
        ("list", "Create a list (and its sign-up form)", MailingList.select().where(MailingList.team == team).exists()),
        ("draft", "Write your first campaign", _written(team).exists()),
        ("campaign", "Send your first campaign",
         _written(team).where(Campaign.started_at.is_null(False)).exists()),
    ]
