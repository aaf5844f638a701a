"""/api/v1/campaigns: list (cursor pages, by state), get, create, update, delete, test send, schedule, send
now, pause, resume, cancel and the report's numbers, each with the A/B test (ab_tests.py). Each operation
calls the services the campaign pages call (app/campaigns/, app/email_templates/ for test sends,
app/reports/ for the numbers) with the same
permission, so what a page refuses the API refuses: a field's problem is a 422 at that field, a move the
campaign's state does not allow is a 409 saying the state."""
import datetime
from typing import Annotated
from typing import Literal

from flask import g
from pydantic import AwareDatetime
from pydantic import Field

from app.api import ab_tests
from app.api import pagination
from app.api.contacts import utc
from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.campaigns import ab_testing
from app.campaigns import drafts
from app.campaigns import listing
from app.campaigns import publishing
from app.campaigns import schedule
from app.campaigns import stats
from app.campaigns.errors import CampaignError
from app.campaigns.errors import StateError
from app.campaigns.listing import team_campaign_or_404
from app.campaigns.states import TransitionError
from app.email_templates import services as template_services
from app.models import Campaign
from app.models import CampaignState
from app.reports import rollup
from app.reports import services as report_services
from app.sending import ledger
from tasks import sending as sending_tasks

StateName = Literal[tuple(state.value for state in CampaignState)]
MAX_ID = 2**31 - 1  # an id the database can hold: a larger one is no row's, and refused as a value
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
AUDIENCE_KEYS = ("lists", "segments", "exclude_lists", "exclude_segments")


class CampaignAudience(Schema):
    lists: list[RowId] = Field(default_factory=list, max_length=100, description="Send to these lists' subscribers.")
    segments: list[RowId] = Field(default_factory=list, max_length=100, description="And to these segments.")
    exclude_lists: list[RowId] = Field(default_factory=list, max_length=100,
                                     description="But not to the subscribers of these lists.")
    exclude_segments: list[RowId] = Field(default_factory=list, max_length=100,
                                        description="Nor to the contacts of these segments.")


class CampaignAudienceIn(CampaignAudience, Strict):
    pass


class UtmSettings(Schema):
    enabled: bool = Field(False, description="Add utm_* parameters to every web link.")
    source: str = Field("", max_length=200)
    medium: str = Field("", max_length=200)
    campaign: str = Field("", max_length=200)
    content: str = Field("", max_length=200)


class UtmSettingsIn(UtmSettings, Strict):
    pass


class CampaignSummary(Schema):
    id: int
    name: str
    subject: str
    state: StateName
    audience: CampaignAudience
    scheduled_at: datetime.datetime | None
    started_at: datetime.datetime | None
    total: int = Field(description="Recipients in the audience frozen when it went out (0 before).")
    updated_at: datetime.datetime


class CampaignOut(CampaignSummary):
    state_reason: str = Field(description="Why it paused, failed or was cancelled, in words.")
    preheader: str
    from_name: str
    from_email: str
    reply_to: str
    kind: Literal["html", "markdown", "blocks"]
    body: str = Field(description="The HTML or Markdown source; for a blocks email, its rendered HTML.")
    template_id: int | None = Field(description="The layout (a template with a {{ content }} slot) around the body.")
    track_opens: bool
    track_clicks: bool
    utm: UtmSettings
    ab_test: ab_tests.AbTestOut | None = Field(description="The A/B test and its variants; null without one.")
    finished_at: datetime.datetime | None
    created_at: datetime.datetime


class CampaignListPage(Schema):
    data: list[CampaignSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    next: str | None = Field(description="The URL of the next page; null on the last page.")


class CampaignQuery(pagination.PageQuery, Strict):
    state: StateName | None = Field(None, description="Only campaigns in this state.")
    search: str | None = Field(None, max_length=listing.SEARCH_LIMIT, description="Only names containing this.")


class CampaignPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(None, max_length=998)
    preheader: str | None = Field(None, max_length=300)
    from_name: str | None = Field(None, max_length=200)
    from_email: str | None = Field(None, max_length=254)
    reply_to: str | None = Field(None, max_length=254, description="Empty: replies go to the From address.")
    kind: Literal["html", "markdown"] | None = Field(None, description="How `body` is written.")
    body: str | None = Field(None, max_length=300_000)
    template_id: int | None = Field(None, ge=0, le=MAX_ID, description="A layout template's id; 0 takes the layout "
                                                                        "away.")
    track_opens: bool | None = None
    track_clicks: bool | None = None
    audience: CampaignAudienceIn | None = Field(None, description="Replaces the whole audience.")
    utm: UtmSettingsIn | None = None
    ab_test: ab_tests.AbTestIn | None = Field(None, description=(
        "Replaces the whole A/B test, as the campaign page's A/B section does; `enabled: false` removes it."))


class CampaignIn(CampaignPatch):
    name: str = Field("", max_length=200, description="Only your team sees it; may be left out with `start_from`.")
    kind: Literal["html", "markdown", "blocks"] | None = Field(None, description=(
        "How the blank email is written (default html); a blocks email is edited in the block editor."))
    start_from: str = Field("", max_length=120, description=(
        "\"template:<id>\" (a layout becomes the campaign's layout, any other template is copied), "
        "\"starter:<key>\" or \"builtin:<key>\": the built-in block and HTML templates."))


class CampaignScheduleIn(Strict):
    # Strict models take no text for a time; this one is RFC 3339 text by design.
    at: AwareDatetime = Field(strict=False, description=(
        "When to send: RFC 3339 with its offset, such as 2026-12-01T09:30:00+01:00."))


class CampaignTestIn(Strict):
    addresses: list[str] = Field(min_length=1, max_length=template_services.MAX_TEST_ADDRESSES,
                                 description="Send the test to these addresses.")
    contact: str | None = Field(None, max_length=320, description="Personalise it as the contact with this address.")
    variant: str | None = Field(None, max_length=1, description="Send this A/B variant (its label, A to D).")


class TestDelivery(Schema):
    address: str
    ok: bool
    detail: str = Field(description="The SMTP server's answer, or why it was not sent.")


class CampaignTestOut(Schema):
    results: list[TestDelivery]


class CampaignRates(Schema):
    delivery: float = Field(description="delivered / sent")
    bounce: float = Field(description="bounced / sent")
    open: float = Field(description="unique opens / delivered")
    click: float = Field(description="unique clicks / delivered")
    click_to_open: float = Field(description="unique clicks / unique opens")
    unsubscribe: float = Field(description="unsubscribed / delivered")
    complaint: float = Field(description="complained / delivered")


class CampaignStats(Schema):
    total: int = Field(description="Recipients in the frozen audience.")
    sent: int = Field(description="Handed to a receiving server and answered (delivered + bounced).")
    delivered: int
    bounced: int
    failed: int = Field(description="Given up on without a final answer.")
    skipped: int = Field(description="Left out at send time (unsubscribed or suppressed since).")
    remaining: int = Field(description="Not sent yet: queued, retrying or held for the A/B winner.")
    opened: int = Field(description="Opens by people (machine opens left out), every time.")
    opened_unique: int
    clicked: int = Field(description="Clicks by people (link scanners left out), every time.")
    clicked_unique: int
    unsubscribed: int
    complained: int
    rates: CampaignRates
    variants: list[ab_tests.VariantStats] | None = Field(description=(
        "With an A/B test: each variant on its share of the sample, then the rest of the audience once the "
        "winner is picked; null without a test."))


def campaign_summary(campaign):
    chosen = drafts.audience(campaign)
    return dict(id=campaign.id, name=campaign.name, subject=campaign.subject, state=campaign.state,
                audience=CampaignAudience(**{key: chosen.get(key) or [] for key in AUDIENCE_KEYS}),
                scheduled_at=utc(campaign.scheduled_at), started_at=utc(campaign.started_at), total=campaign.total,
                updated_at=utc(campaign.updated_at))


def campaign_out(campaign):
    settings = campaign.utm if isinstance(campaign.utm, dict) else {}
    return CampaignOut(**campaign_summary(campaign), state_reason=campaign.state_reason,
                       preheader=campaign.preheader, from_name=campaign.from_name, from_email=campaign.from_email,
                       reply_to=campaign.reply_to, kind=campaign.kind, body=campaign.body,
                       template_id=campaign.template_id, track_opens=campaign.track_opens,
                       track_clicks=campaign.track_clicks,
                       utm=UtmSettings(enabled=bool(settings.get("enabled")),
                               **{name: str(settings.get(name) or "") for name in ("source", "medium", "campaign",
                                                                                      "content")}),
                       ab_test=ab_tests.ab_test_out(campaign), finished_at=utc(campaign.finished_at),
                       created_at=utc(campaign.created_at))


# The builder form's field names, as this API names them in a problem's `errors`.
API_FIELDS = {"template": "template_id", "scheduled_at": "at", **{key: f"audience.{key}" for key in AUDIENCE_KEYS}}


def api_field(name):
    if name.startswith("utm_"):
        return f"utm.{name[4:]}"
    return ab_tests.api_field(name) or API_FIELDS.get(name, name)


def api_errors(problem):
    problem.errors = {api_field(name): message for name, message in problem.errors.items()}
    return problem


def builder_changes(body, exclude=()):
    """The builder form's fields for the values given in a body (the services' names and spellings)."""
    given = body.model_dump(exclude_none=True, exclude=set(exclude) | {"ab_test"})
    changes = {key: value for key, value in given.items()
               if key not in ("template_id", "audience", "utm", "track_opens", "track_clicks")}
    if body.ab_test is not None:
        changes.update(ab_tests.form_changes(g.team, body.ab_test))
    if "template_id" in given:
        changes["template"] = str(given["template_id"] or "")
    for name in ("track_opens", "track_clicks"):
        if name in given:
            changes[name] = "1" if given[name] else ""
    if "audience" in given:
        changes.update({key: given["audience"][key] for key in AUDIENCE_KEYS})
    if "utm" in given:
        changes["utm_enabled"] = "1" if given["utm"]["enabled"] else ""
        changes.update({f"utm_{name}": value for name, value in given["utm"].items() if name != "enabled"})
    return changes


def utc_moment(moment):
    """An aware datetime as the naive UTC the campaign stores, or a 422 for one at the calendar's edge."""
    try:
        return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    except OverflowError:
        raise ApiProblem(422, "This time is out of range.", errors={"at": "out of range"}) from None


def state_conflict(problem, campaign_id):
    """A refusal for the campaign's state as 409, naming the state it is in now."""
    state = Campaign.get_by_id(campaign_id).state
    return ApiProblem(409, problem.message, title="Conflict", errors={"state": state})


def sendable(campaign_id):
    """The campaign after a move that may have started sending: its run is enqueued (the pages do the same)."""
    campaign = Campaign.get_by_id(campaign_id)
    if campaign.state == CampaignState.SENDING:
        sending_tasks.send_campaign(campaign.id)
        campaign = Campaign.get_by_id(campaign.id)
    return campaign


# --- Reading ----------------------------------------------------------------------------------------

@operation("/campaigns", "GET", "view", ok=CampaignListPage, query=CampaignQuery, tags=["campaigns"])
def list_campaigns(query):
    """List campaigns, newest first"""
    wanted = listing.CampaignFilter(state=query.state or "", q=(query.search or "").strip(),
                                    before=pagination.decode(query.cursor))
    page = listing.campaign_page(g.team, wanted, page_size=query.limit)
    next_cursor, next_url = pagination.next_link(page.older)
    return CampaignListPage(data=[CampaignSummary(**campaign_summary(row["campaign"])) for row in page.rows],
                        next_cursor=next_cursor, next=next_url)


@operation("/campaigns/<int:campaign_id>", "GET", "view", ok=CampaignOut, tags=["campaigns"])
def get_campaign(campaign_id):
    """Get a campaign"""
    return campaign_out(team_campaign_or_404(campaign_id))


@operation("/campaigns/<int:campaign_id>/stats", "GET", "view", ok=CampaignStats, tags=["campaigns"])
def campaign_stats(campaign_id):
    """The campaign report's numbers"""
    campaign = team_campaign_or_404(campaign_id)
    rollup.catch_up()  # as the report page does: count what arrived since the aggregator's last run
    counts = stats.counts(campaign)
    numbers = report_services.numbers_for([campaign], {campaign.id: counts})[campaign.id]
    return CampaignStats(total=counts["total"], sent=numbers["sent"], delivered=numbers["delivered"],
                    bounced=numbers["bounced"], failed=counts["failed"], skipped=counts["skipped"],
                    remaining=counts["remaining"], opened=numbers["opens_total"], opened_unique=numbers["opens_unique"],
                    clicked=numbers["clicks_total"],
                    clicked_unique=numbers["clicks_unique"], unsubscribed=numbers["unsubscribes"],
                    complained=numbers["complaints"],
                    rates=CampaignRates(delivery=numbers["delivery_rate"], bounce=numbers["bounce_rate"],
                                open=numbers["open_rate"], click=numbers["click_rate"],
                                click_to_open=numbers["click_to_open"], unsubscribe=numbers["unsubscribe_rate"],
                                complaint=numbers["complaint_rate"]),
                    variants=ab_tests.variant_stats(campaign))


# --- Writing ----------------------------------------------------------------------------------------

@operation("/campaigns", "POST", "edit_content", ok=CampaignOut, status=201, body=CampaignIn, tags=["campaigns"],
           location="/campaigns/{id}")
def create_campaign(body):
    """Create a draft campaign"""
    changes = builder_changes(body, exclude=("name", "kind", "start_from"))
    try:
        campaign = drafts.create_draft(g.team, g.api_key.created_by_id, body.name, start_from=body.start_from,
                                       kind=body.kind or "html", changes=changes)
    except CampaignError as problem:
        raise api_errors(problem)
    return campaign_out(campaign)


@operation("/campaigns/<int:campaign_id>", "PATCH", "edit_content", ok=CampaignOut, body=CampaignPatch,
           tags=["campaigns"], problems=(409,))
def update_campaign(campaign_id, body):
    """Change a draft: only the values given"""
    campaign = team_campaign_or_404(campaign_id)
    try:
        campaign = drafts.edit_draft(campaign, builder_changes(body))
    except StateError as problem:
        raise state_conflict(problem, campaign.id)
    except CampaignError as problem:
        raise api_errors(problem)
    return campaign_out(campaign)


@operation("/campaigns/<int:campaign_id>", "DELETE", "edit_content", tags=["campaigns"], problems=(409,))
def delete_campaign(campaign_id):
    """Delete a draft, cancelled or failed campaign"""
    campaign = team_campaign_or_404(campaign_id)
    try:
        drafts.delete_campaign(campaign)
    except StateError as problem:
        raise state_conflict(problem, campaign.id)


# --- Sending ----------------------------------------------------------------------------------------

@operation("/campaigns/<int:campaign_id>/test", "POST", "send", ok=CampaignTestOut, body=CampaignTestIn, tags=["campaigns"])
def send_test(campaign_id, body):
    """Send a test of the campaign to a few addresses"""
    campaign = team_campaign_or_404(campaign_id)
    contact = variant = None
    if body.contact:
        contact = template_services.find_contact(g.team, body.contact)
        if contact is None:
            raise ApiProblem(422, "There is no contact with this address in this team.",
                             errors={"contact": "no such contact"})
    if body.variant:
        variant = ab_testing.variant_of(campaign, label=body.variant)
        if variant is None:
            raise ApiProblem(422, "This campaign has no A/B variant with this label.",
                             errors={"variant": "no such variant"})
    addresses = template_services.parse_addresses(", ".join(body.addresses))
    results = template_services.send_test(campaign, addresses, g.team, contact, variant)
    return CampaignTestOut(results=[TestDelivery(address=r.address, ok=r.ok, detail=r.detail) for r in results])


@operation("/campaigns/<int:campaign_id>/schedule", "POST", "send", ok=CampaignOut, body=CampaignScheduleIn,
           tags=["campaigns"])
def schedule_campaign(campaign_id, body):
    """Schedule a draft to go out at a time"""
    campaign = team_campaign_or_404(campaign_id)
    try:
        when = schedule.check_schedule(g.team, utc_moment(body.at))
        campaign = publishing.publish(campaign, when)
    except TransitionError as problem:
        raise state_conflict(problem, campaign.id)
    except (CampaignError, ledger.LedgerError) as problem:
        raise api_errors(problem)
    return campaign_out(campaign)


@operation("/campaigns/<int:campaign_id>/send", "POST", "send", ok=CampaignOut, status=202, tags=["campaigns"])
def send_campaign(campaign_id):
    """Send a draft (or a scheduled campaign) now"""
    campaign = team_campaign_or_404(campaign_id)
    try:
        campaign = publishing.publish(campaign)
    except TransitionError as problem:
        raise state_conflict(problem, campaign.id)
    except (CampaignError, ledger.LedgerError) as problem:
        raise api_errors(problem)
    return campaign_out(sendable(campaign.id))


def control(campaign_id, action):
    campaign = team_campaign_or_404(campaign_id)
    try:
        campaign = publishing.control(campaign, action, who=f"the API key “{g.api_key.name}”")
    except TransitionError as problem:
        raise state_conflict(problem, campaign.id)
    return campaign_out(sendable(campaign.id) if action == "resume" else campaign)


@operation("/campaigns/<int:campaign_id>/pause", "POST", "send", ok=CampaignOut, tags=["campaigns"])
def pause_campaign(campaign_id):
    """Pause a sending campaign"""
    return control(campaign_id, "pause")


@operation("/campaigns/<int:campaign_id>/resume", "POST", "send", ok=CampaignOut, tags=["campaigns"])
def resume_campaign(campaign_id):
    """Resume a paused campaign"""
    return control(campaign_id, "resume")


@operation("/campaigns/<int:campaign_id>/cancel", "POST", "send", ok=CampaignOut, tags=["campaigns"])
def cancel_campaign(campaign_id):
    """Cancel a scheduled, sending or paused campaign"""
    return control(campaign_id, "cancel")


@operation("/campaigns/<int:campaign_id>/ab/winner", "POST", "send", ok=CampaignOut, body=ab_tests.AbWinnerIn,
           tags=["campaigns"])
def pick_ab_winner(campaign_id, body):
    """Pick the A/B test's winner now: the rest of the audience gets it (as "Pick this winner" on the report)"""
    campaign = team_campaign_or_404(campaign_id)
    variant = ab_testing.variant_of(campaign, label=body.variant)
    if variant is None:
        raise ApiProblem(422, "This campaign has no A/B variant with this label.",
                         errors={"variant": "no such variant"})
    try:
        ab_testing.pick_winner(campaign, variant.id)
    except CampaignError as problem:  # decided already, or a campaign that is not sending or paused
        raise ApiProblem(409, problem.message, title="Conflict", errors={"state": campaign.state}) from None
    return campaign_out(sendable(campaign.id))
