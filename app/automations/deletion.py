"""Deleting an automation: the automation, its steps, runs and visits go; what was sent stays.

Rules (docs/automations.md, "Deleting an automation"):
* a live automation is paused first, so no tick is moving its runs while they are deleted and the person sees the
  runs stop before choosing to delete;
* the runs still waiting stop (the confirmation says how many);
* each email step's hidden campaign is cancelled the way a person cancels a campaign (app.campaigns.states): its
  messages not yet handed to SMTP never leave (the engine sends only a "sending" campaign and a run it has started
  stops within a second), and nothing writes Send rows here (app.sending.ledger stays the one writer);
* those campaigns are kept, hidden (AutomationRetiredCampaign): their Send and Event rows are the emails the contacts
  really got, which their Activity and the team's totals must go on showing; deleting them would drop the history,
  listing them would show the team campaigns it never wrote.
"""
from app.campaigns import states
from app.db import db
from app.errors import Problem
from app.models import Automation
from app.models import AutomationRetiredCampaign
from app.models import AutomationRun
from app.models import AutomationState
from app.models import AutomationStep
from app.models import Campaign
from app.models import RunState
from app.models import utcnow


class DeletionError(Problem):
    status = 409


def waiting_runs(automation):
    """How many runs are still under way (they stop if the automation is deleted)."""
    return AutomationRun.select().where((AutomationRun.automation == automation.id)
                                        & (AutomationRun.state == RunState.WAITING)).count()


def refusal(automation):
    """Why this automation cannot be deleted now, in words, or ""."""
    if automation.state == AutomationState.LIVE:
        return "Pause this automation before deleting it: a live automation is still moving contacts along."
    return ""


def delete_automation(automation, who=""):
    """Delete the automation with its steps, runs and visits; cancel and keep (hidden) its steps' campaigns.
    Returns the number of runs that were still waiting. DeletionError for a live automation (nothing changes)."""
    with db.atomic():
        # Read again inside the transaction: a click on "Resume" in another tab must not slip past the rule.
        current = Automation.get_or_none(Automation.id == automation.id)
        if current is None:
            return 0
        why = refusal(current)
        if why:
            raise DeletionError(why)
        stopped = waiting_runs(current)
        campaign_ids = [row.campaign_id for row in AutomationStep.select(AutomationStep.campaign)
                        .where((AutomationStep.automation == current.id) & AutomationStep.campaign.is_null(False))]
        reason = f"The automation “{current.name}” was deleted" + (f" by {who}" if who else "") + "."
        for campaign in Campaign.select().where(Campaign.id.in_(campaign_ids)):
            if states.can_transition(campaign.state, states.S.CANCELLED):
                states.transition(campaign, states.S.CANCELLED, reason=reason)
        if campaign_ids:
            AutomationRetiredCampaign.insert_many(
                [{"campaign": campaign_id, "team": current.team_id, "automation_name": current.name[:200],
                  "deleted_at": utcnow()} for campaign_id in campaign_ids]).on_conflict_ignore().execute()
        # The foreign keys cascade: steps, runs, visits, the runs' mail rows and the segment marks go with it.
        Automation.delete().where(Automation.id == current.id).execute()
    return stopped
