"""Publishing a campaign (its checks, now or scheduled) and the state changes a person asks for after."""
from peewee import Case

from app import usage
from app.brand.services import brand_for
from app.campaigns import states
from app.campaigns.ab_testing import ab_test
from app.campaigns.ab_testing import split_for_ab_test
from app.campaigns.ab_testing import variants_of
from app.campaigns.drafts import audience
from app.campaigns.drafts import check_sender
from app.campaigns.drafts import layout_slot
from app.campaigns.errors import CampaignError
from app.campaigns.schedule import local_time
from app.content import prepare
from app.content import sandbox
from app.content.blocks import store as block_store
from app.content.blocks.schema import BlockProblem
from app.db import db
from app.deliverability import gate as domain_gate
from app.models import Campaign
from app.models import CampaignState
from app.models import Team
from app.models import Variant
from app.models import utcnow
from app.senders import accounts
from app.senders import domains
from app.sending import ledger
from app.teams import standing


def publish_problems(campaign):
    """Everything that stops this campaign from going out, in words. Empty when ready."""
    problems = []
    team = campaign.team
    if not campaign.subject:
        problems.append("Write a subject line.")
    if not campaign.body.strip() or (campaign.kind == "blocks" and not (campaign.blocks or {}).get("blocks")):
        problems.append("Write the content of the email.")
    try:  # stored before save-time checks existed, or changed behind the form's back
        check_sender(Campaign(from_email=campaign.from_email, reply_to=campaign.reply_to,
                              from_name=campaign.from_name))
    except CampaignError as exc:
        problems.append(str(exc))
    if campaign.template_id is not None and not layout_slot(campaign.template):
        problems.append(f"The layout “{campaign.template.name}” has no {{{{ content }}}} slot: choose another "
                        "layout, or none.")
    if not campaign.from_email or "@" not in campaign.from_email:
        problems.append("Enter the From address.")
    elif not domains.is_verified_sender(team.id, campaign.from_email):
        domain = campaign.from_email.rpartition("@")[2]
        problems.append(f"The sender domain {domain} is not verified. Add and verify it under Sender domains.")
    if not team.postal_address.strip():
        problems.append("Add your postal address in Team settings: the law (CAN-SPAM) requires it in every campaign.")
    selected = audience(campaign)
    if not selected.get("lists") and not selected.get("segments"):
        problems.append("Choose at least one list or segment to send to.")
    active = accounts.active_accounts(team.id)
    if not active:
        problems.append("Add an SMTP account (or resume a paused one) to send through.")
    elif len(accounts.failed_last_test(active)) == len(active):
        # Known not to work: publishing would only show "Sending 0 %" until it pauses.
        names = ", ".join(f"“{a.name}”" for a in active)
        problems.append(f"The SMTP account {names} failed its last connection test and has not connected since. "
                        "Fix it under Sending › SMTP accounts and test it again.")
    # The campaign's own content is rendered by the engine too (it is what the rest of an A/B audience
    # falls back on), so it is checked even when variants exist.
    variants = [None] + list(Variant.select().where(Variant.campaign == campaign).order_by(Variant.label))
    for variant in variants:
        try:
            # Rendering for a sample contact proves the template compiles and stays within its limits.
            prepare.preview(campaign, None, variant=variant)
        except sandbox.RenderError as exc:
            problems.append(f"{'Variant ' + variant.label if variant else 'Content'}: {exc}")
    for variant in variants[1:]:
        if variant.send_at is not None and variant.send_at <= utcnow():
            when = local_time(team, variant.send_at)
            problems.append(f"Variant {variant.label}'s send time ({when:%Y-%m-%d %H:%M}, {team.time_zone}) has "
                            "passed: choose a later one in the A/B test.")
    if ab_test(campaign) and Variant.select().where(Variant.campaign == campaign).count() < 2:
        problems.append("The A/B test needs a variant B. Give it what it tests: a different subject, From name, "
                        "content or send time.")
    return problems


def publish_warnings(campaign):
    """What may go wrong but does not stop publishing: SMTP accounts never tested nor used."""
    active = accounts.active_accounts(campaign.team_id)
    untested = accounts.never_connected(active)
    if active and len(untested) == len(active):
        names = ", ".join(f"“{a.name}”" for a in untested)
        return [f"The SMTP account {names} has never passed a connection test. If it cannot connect, the "
                "campaign page says so and the messages wait; test it under Sending › SMTP accounts."]
    return []


def publish(campaign, when=None):
    """Freeze the audience and content, then schedule or start sending.

    Returns the campaign in its new state; the caller enqueues the sending task
    when the state is "sending" (services never enqueue). Only a draft, or a scheduled campaign sent
    now, is published: any other is refused first, before its content or audience is touched (a
    completed campaign may go back to sending, but only to send its failed messages again: requeue_failed)."""
    states.check_transition(campaign.state, CampaignState.SENDING if when is None else CampaignState.SCHEDULED,
                            only_from=(CampaignState.DRAFT, CampaignState.SCHEDULED))
    refuse_unless_standing(campaign, when)
    if campaign.kind == "blocks":
        try:  # the email goes out in the team's brand as it is now
            block_store.refresh(campaign, brand_for(campaign.team))
        except BlockProblem as exc:
            raise CampaignError(exc.message) from None
    problems = publish_problems(campaign)
    if problems:
        raise CampaignError(" ".join(problems))
    if when is not None:
        early = [v.label for v in variants_of(campaign) if v.send_at is not None and v.send_at < when]
        if early:
            raise CampaignError(f"Variant {', '.join(early)} would go out before the scheduled time (variant A goes "
                                "at that time): schedule the campaign earlier, or give the variants later times.",
                                field="scheduled_at")
        campaign.scheduled_at = when
        campaign.save()
        return states.transition(campaign, CampaignState.SCHEDULED)
    return start(campaign)


class SendingRefusedError(states.TransitionError, CampaignError):
    """The team may not send now (suspended by the instance administrator, or at its monthly cap): refused
    wherever a state change is (409 in the API, the reason on the page)."""
    status = 409


def refuse_unless_standing(campaign, when=None):
    """SendingRefusedError with the gate's words unless the team may send (app/teams/standing.py). A campaign
    scheduled for a later month of the team is not held back by this month's cap: only a suspension stops it."""
    refusal = standing.sending_refusal(campaign.team_id)
    if refusal and when is not None:
        team = Team.get_by_id(campaign.team_id)  # as it is now, not as this campaign object remembers it
        if team.suspended_at is None and usage.month_key(team, when) != usage.month_key(team):
            return
    if refusal:
        raise SendingRefusedError(f"This campaign cannot be sent now. {refusal}")


def start(campaign):
    """Freeze the audience (idempotent: the ledger is unique per contact) and begin sending."""
    refuse_unless_standing(campaign)
    problem = domain_gate.launch_problem(campaign)
    if problem:  # the sender domain's DNS would get the mail rejected: say what to publish instead
        raise domain_gate.DomainGateError(problem)
    total = ledger.freeze_audience(campaign)
    if total == 0:
        raise CampaignError("Nobody is left to send to: everyone in this audience is unsubscribed, bounced, "
                            "complained or suppressed.")
    campaign = Campaign.get_by_id(campaign.id)
    split_for_ab_test(campaign)
    return states.transition(campaign, CampaignState.SENDING)


class ResumeRefusedError(states.TransitionError, CampaignError):
    """A paused campaign may not send again yet: what paused it (no SMTP account, its sender domain's DNS) is still
    there. Refused where the resume was asked (409 in the API), so it is not resumed only to pause again."""
    status = 409


def resume_problem(campaign):
    """Why a paused campaign cannot send now, in words, or None: the engine's own first checks (an SMTP account to
    send through) and the domain gate's. A gate failure is looked at again with fresh DNS answers, so a person who
    has just published the missing record is not held back by a check made before it."""
    if not accounts.active_accounts(campaign.team_id):
        return ("It cannot send yet: there is no active SMTP account to send through. "
                + accounts.paused_in_words(campaign.team_id))
    if domain_gate.launch_problem(campaign):
        problem = domain_gate.launch_problem(campaign, fresh=True)
        if problem:
            return problem.replace("This campaign cannot start:", "It cannot send yet:", 1)
    return None


# What each control button asks of the state machine.
CONTROL_TARGETS = {"pause": CampaignState.PAUSED, "resume": CampaignState.SENDING,
                   "cancel": CampaignState.CANCELLED, "unschedule": CampaignState.DRAFT}


def control(campaign, action, who=""):
    """Pause, resume, cancel or unschedule (`action`); returns the campaign in its new state, or
    TransitionError saying the state it is in. `who` is written in the reason of a pause or cancel.
    The caller starts sending again after a resume (services never enqueue)."""
    if action == "resume" and campaign.state != CampaignState.PAUSED:
        raise states.TransitionError(f"Only a paused campaign can be resumed; this one is "
                                     f"{states.LABELS[campaign.state].lower()}.")
    if action == "resume":
        refuse_unless_standing(campaign)
        problem = resume_problem(campaign)
        if problem:
            raise ResumeRefusedError(problem)
    reason = f"{action.capitalize()}d by {who}" if who and action in ("pause", "cancel") else ""
    return states.transition(campaign, CONTROL_TARGETS[action], reason=reason)


def requeue_failed(campaign):
    """Queue the failed sends again (and resume a finished campaign); returns (count, campaign)."""
    refuse_unless_standing(campaign)
    with db.atomic():
        # A fresh start: the retries with backoff apply again to each of them.
        count = ledger.retry_failed(campaign.id)
        remaining = Campaign.failed - count
        Campaign.update(failed=Case(None, [(remaining < 0, 0)], remaining)).where(Campaign.id == campaign.id).execute()
    if not count:
        raise CampaignError("There are no failed messages to send again.")
    if campaign.state in (CampaignState.COMPLETED, CampaignState.PAUSED):
        campaign = states.transition(campaign, CampaignState.SENDING, reason="Failed messages queued again")
    return count, campaign
