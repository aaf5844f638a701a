"""The campaign state machine, enforced in one place.

    draft → scheduled → sending → completed
      │         │          ↕
      │         │        paused ──→ cancelled
      └─────────┴──→ sending / cancelled            (any live state → failed on a fatal error)

Every state change goes through transition(), which checks the move is legal
and makes it with a conditional UPDATE (WHERE state = <expected>), so two
workers or a worker and a click can never both win a race.
"""
from app.errors import Problem
from app.models import Campaign
from app.models import utcnow

TRANSITIONS = {
    "draft": {"scheduled", "sending", "cancelled"},
    "scheduled": {"draft", "sending", "cancelled"},
    "sending": {"paused", "completed", "failed", "cancelled"},
    "paused": {"sending", "cancelled", "failed"},
    "completed": {"sending"},  # only to send its failed messages again (services.requeue_failed)
    "failed": {"draft"},  # a failed campaign can be fixed and published again
    "cancelled": set(),
}

VERBS = {"scheduled": "schedule", "sending": "send", "paused": "pause", "completed": "complete",
         "failed": "fail", "cancelled": "cancel", "draft": "unschedule"}

LABELS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "paused": "Paused",
          "completed": "Completed", "failed": "Failed", "cancelled": "Cancelled"}


class TransitionError(Problem):
    """An illegal move, with a message for the person who asked."""


def can_transition(current, target):
    return target in TRANSITIONS.get(current, set())


def transition(campaign, target, reason=""):
    """Move `campaign` to `target` or raise TransitionError. Returns the refreshed campaign."""
    current = campaign.state
    if not can_transition(current, target):
        raise TransitionError(f"A {LABELS[current].lower()} campaign cannot {VERBS[target]}"
                              f"{'' if target != 'sending' else ' now'}.")
    values = {Campaign.state: target, Campaign.state_reason: reason, Campaign.updated_at: utcnow()}
    if target == "sending" and campaign.started_at is None:
        values[Campaign.started_at] = utcnow()
    if target in ("completed", "failed", "cancelled"):
        values[Campaign.finished_at] = utcnow()
    changed = (Campaign.update(values)
               .where((Campaign.id == campaign.id) & (Campaign.state == current)).execute())
    if not changed:
        fresh = Campaign.get_by_id(campaign.id)
        raise TransitionError(f"The campaign changed meanwhile (it is now {LABELS[fresh.state].lower()}). "
                              "Reload the page.")
    return Campaign.get_by_id(campaign.id)
