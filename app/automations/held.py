"""An automation email step whose mail is on hold: Loft paused the step's hidden campaign (app/automations/mail.py).

The engine pauses a campaign when it cannot send (no active SMTP account, a key that cannot DKIM-sign, the team
suspended or at its monthly cap), the domain gate when the From domain's DNS would get the mail rejected, bounce
handling on a bounce or complaint rate or failed authentication. A step's hidden campaign is paused like any other;
its runs still reach the step and queue their messages, which wait in the ledger until the campaign sends again.

    held_steps(automation)        {step id: Held} for the automation's email steps whose campaign is paused
    held_counts(team)             {automation id: steps on hold}, for the automations list
    resume_step(step, who)        resume one step's campaign through publishing.control, the service an ordinary
                                  campaign's Resume uses, so the same checks run (an SMTP account, the domain gate,
                                  the team's standing): a cause still there is refused in words, nothing changed
    resume_held(automation, who)  resume_step for every held step (resuming the whole automation does it)

Services never enqueue: the caller hands each resumed campaign to the sending task.
"""
import dataclasses
import datetime

from peewee import fn

from app.campaigns import publishing
from app.errors import Problem
from app.models import AutomationStep
from app.models import Campaign
from app.models import CampaignState
from app.models import DomainPause
from app.models import Send
from app.models import SendStatus
from app.models import StepKind
from app.notices import alerts

WAITING = (SendStatus.QUEUED, SendStatus.DEFERRED, SendStatus.CLAIMED)  # messages that have not gone yet


class HeldError(Problem):
    """A step's mail cannot be resumed (it is not on hold), in words."""
    status = 409


@dataclasses.dataclass
class Held:
    step_id: int
    campaign_id: int
    reason: str  # the words the engine (or the gate, or bounce handling) recorded when it paused the campaign
    since: datetime.datetime  # UTC
    waiting: int  # messages queued at the step that have not gone


def _held_query(where):
    return (Campaign.select(Campaign.id, Campaign.state_reason, Campaign.updated_at, AutomationStep.id.alias("step"),
                            AutomationStep.automation.alias("automation"))
            .join(AutomationStep, on=(AutomationStep.campaign == Campaign.id))
            .where(where & (AutomationStep.kind == StepKind.EMAIL) & (Campaign.state == CampaignState.PAUSED)))


def held_steps(automation, include_removed=True):
    """{step id: Held} of the automation's email steps whose hidden campaign is paused (a removed step's mail that
    still waits too, unless include_removed is False)."""
    where = AutomationStep.automation == automation.id
    if not include_removed:
        where &= AutomationStep.removed_at.is_null()
    rows = list(_held_query(where).dicts())
    if not rows:
        return {}
    ids = [row["id"] for row in rows]
    waiting = dict(Send.select(Send.campaign, fn.COUNT(Send.id)).where(Send.campaign.in_(ids) & Send.status.in_(WAITING))
                   .group_by(Send.campaign).tuples())
    # The gate records when it paused; otherwise the campaign's updated_at, which mail.campaign_for leaves alone
    # while the campaign is paused.
    paused_at = dict(DomainPause.select(DomainPause.campaign, DomainPause.paused_at)
                     .where(DomainPause.campaign.in_(ids)).tuples())
    return {row["step"]: Held(row["step"], row["id"], alerts.step_words(row["state_reason"] or "Paused."),
                              paused_at.get(row["id"]) or row["updated_at"], waiting.get(row["id"], 0))
            for row in rows}


def held_counts(team):
    """{automation id: how many of its email steps are on hold} for the team (one query)."""
    query = (_held_query(Campaign.team == team)
             .select(AutomationStep.automation, fn.COUNT(AutomationStep.id)).group_by(AutomationStep.automation))
    return dict(query.tuples())


def email_step_of(automation, step_id):
    """This automation's email step with this id, removed or not (a removed step's mail may still be held), or None."""
    try:
        step_id = int(step_id)
    except (TypeError, ValueError):
        return None
    return AutomationStep.get_or_none((AutomationStep.id == step_id) & (AutomationStep.automation == automation.id)
                                      & (AutomationStep.kind == StepKind.EMAIL))


def resume_step(step, who=""):
    """Resume the step's held mail; returns the campaign, sending again. Raises HeldError when it is not on hold, or
    publishing's refusal (a states.TransitionError: no SMTP account, the domain still failing, the monthly cap)."""
    campaign = Campaign.get_or_none(Campaign.id == step.campaign_id) if step.campaign_id else None
    if campaign is None or campaign.state != CampaignState.PAUSED:
        raise HeldError("This step's emails are not on hold: they go out as contacts reach it.")
    return publishing.control(campaign, "resume", who=who)


def resume_held(automation, who=""):
    """Resume every held step of the automation whose cause is gone: ([resumed campaign ids], {step id: why not})."""
    resumed, refused = [], {}
    for step_id in held_steps(automation):
        step = AutomationStep.get_by_id(step_id)
        try:
            resumed.append(resume_step(step, who).id)
        except Problem as exc:
            refused[step_id] = exc.message
    return resumed, refused
