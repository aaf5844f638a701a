"""The campaign list: one page of a team's campaigns, newest first, filtered by state and searched
by name, each with its audience in words, its date and the report's numbers.

Pages are keyset pages over the campaign id (the (team, state) index and the primary key), so the
last page of 10,000 campaigns costs what the first does. The rates are the report's own
(app.reports.services.numbers_for): unique human opens and clicks per delivered message.
"""
from dataclasses import dataclass
from dataclasses import field

from flask import abort

from app.campaigns import states
from app.campaigns import stats
from app.models import Campaign
from app.models import CampaignState
from app.models import MailingList
from app.models import Segment
from app.models import automation_email_campaigns
from app.reports import services as report_services
from app.teams.context import team_object_or_404

PAGE_SIZE = 50
# What a row shows: not the body, its blocks or its test settings, which can be large.
LIST_COLUMNS = (Campaign.id, Campaign.team, Campaign.name, Campaign.subject, Campaign.state, Campaign.audience,
                Campaign.scheduled_at, Campaign.started_at, Campaign.frozen_at, Campaign.total, Campaign.updated_at)
SEARCH_LIMIT = 200  # characters of a search that are used
AUDIENCE_NAMES_SHOWN = 2


@dataclass
class CampaignFilter:
    state: str = ""  # a CampaignState value, or "" for every state
    q: str = ""
    before: int | None = None  # show campaigns older than this id
    after: int | None = None  # show campaigns newer than this id (the page before)


@dataclass
class CampaignPage:
    rows: list = field(default_factory=list)
    older: int | None = None  # the `before` of the next page, None on the last
    newer: int | None = None  # the `after` of the previous page, None on the first
    any_campaign: bool = True  # False: the team has none at all (the empty state, not "no match")


def parse_filter(args):
    """A CampaignFilter from the query string; unknown states and bad ids are ignored."""
    state = args.get("state", "")
    return CampaignFilter(state=state if state in states.LABELS else "",
                          q=(args.get("q") or "").strip()[:SEARCH_LIMIT],
                          before=_positive(args.get("before")), after=_positive(args.get("after")))


def team_campaign_or_404(campaign_id):
    """The current team's campaign with this id, else 404; an automation email step's hidden campaign is the
    automation's (its builder shows and resumes it) and is not found here either, so no campaign page, report or API
    call can edit, send or cancel it behind the automation's back."""
    campaign = team_object_or_404(Campaign, campaign_id)
    if Campaign.select().where((Campaign.id == campaign.id)
                               & Campaign.id.in_(automation_email_campaigns())).exists():
        abort(404)
    return campaign


def _positive(value):
    return int(value) if value and str(value).isdigit() and int(value) > 0 else None


def campaign_page(team, wanted, page_size=PAGE_SIZE):
    """One page of the team's campaigns matching `wanted` (a CampaignFilter), newest first."""
    # An automation email step's hidden campaign is the automation's, never listed with campaigns.
    condition = (Campaign.team == team) & Campaign.id.not_in(automation_email_campaigns())
    if wanted.state:
        condition &= Campaign.state == wanted.state
    if wanted.q:
        condition &= Campaign.name.contains(wanted.q)
    query = Campaign.select(*LIST_COLUMNS).where(condition)
    if wanted.after is not None and wanted.before is None:
        found = list(query.where(Campaign.id > wanted.after).order_by(Campaign.id.asc()).limit(page_size + 1))
        more_newer = len(found) > page_size
        found = list(reversed(found[:page_size]))
        more_older = bool(found) and query.where(Campaign.id < found[-1].id).exists()
    else:
        if wanted.before is not None:
            query = query.where(Campaign.id < wanted.before)
        found = list(query.order_by(Campaign.id.desc()).limit(page_size + 1))
        more_older = len(found) > page_size
        found = found[:page_size]
        more_newer = wanted.before is not None and bool(found) and \
            Campaign.select().where(condition & (Campaign.id > found[0].id)).exists()
    page = CampaignPage(rows=rows_for(found), older=found[-1].id if found and more_older else None,
                        newer=found[0].id if found and more_newer else None)
    if not found and (wanted.state or wanted.q or wanted.before or wanted.after):
        page.any_campaign = Campaign.select().where(
            (Campaign.team == team) & Campaign.id.not_in(automation_email_campaigns())).exists()
    elif not found:
        page.any_campaign = False
    return page


def rows_for(campaigns):
    """What each row shows: the campaign, its numbers (the report's), its audience and its date."""
    counts = stats.counts_for(campaigns)
    numbers = report_services.numbers_for(campaigns, counts)
    names = _audience_names(campaigns)
    return [{"campaign": c, "numbers": numbers[c.id], "counts": counts[c.id], "audience": audience_summary(c, names),
             "date": row_date(c)} for c in campaigns]


def _ids(campaigns, key):
    ids = set()
    for campaign in campaigns:
        values = campaign.audience.get(key) if isinstance(campaign.audience, dict) else None
        ids.update(v for v in values or [] if isinstance(v, int))
    return ids


def _audience_names(campaigns):
    """{("list"|"segment", id): name} for every list and segment the campaigns name, in two queries."""
    names = {}
    list_ids = _ids(campaigns, "lists") | _ids(campaigns, "exclude_lists")
    segment_ids = _ids(campaigns, "segments") | _ids(campaigns, "exclude_segments")
    if list_ids:
        names.update({("list", i): n for i, n in MailingList.select(MailingList.id, MailingList.name)
                      .where(MailingList.id << list(list_ids)).tuples()})
    if segment_ids:
        names.update({("segment", i): n for i, n in Segment.select(Segment.id, Segment.name)
                      .where(Segment.id << list(segment_ids)).tuples()})
    return names


def audience_summary(campaign, names):
    """The audience in a few words: 'Newsletter, VIPs +2 more' ('—' when none is chosen yet); a list or
    segment deleted since is left out."""
    chosen = campaign.audience if isinstance(campaign.audience, dict) else {}
    parts = [names[("list", i)] for i in chosen.get("lists") or [] if ("list", i) in names]
    parts += [names[("segment", i)] for i in chosen.get("segments") or [] if ("segment", i) in names]
    if not parts:
        return ""
    shown = ", ".join(parts[:AUDIENCE_NAMES_SHOWN])
    more = len(parts) - AUDIENCE_NAMES_SHOWN
    return f"{shown} +{more} more" if more > 0 else shown


def row_date(campaign):
    """(what the date is, the stored UTC time): when it went out, is due, or was last edited."""
    if campaign.state == CampaignState.SCHEDULED and campaign.scheduled_at:
        return "Scheduled for", campaign.scheduled_at
    if campaign.started_at:
        return "Sent on", campaign.started_at
    return "Edited on", campaign.updated_at


def state_choices():
    return [("", "Any state")] + [(state.value, label) for state, label in states.LABELS.items()]
