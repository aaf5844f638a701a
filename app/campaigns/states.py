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
from app.models import CampaignState as S
from app.models import utcnow

TRANSITIONS = {
    S.DRAFT: {S.SCHEDULED, S.SENDING, S.CANCELLED},
    S.SCHEDULED: {S.DRAFT, S.SENDING, S.CANCELLED},
    S.SENDING: {S.PAUSED, S.COMPLETED, S.FAILED, S.CANCELLED},
    S.PAUSED: {S.SENDING, S.CANCELLED, S.FAILED},
    S.COMPLETED: {S.SENDING},  # only to send its failed messages again (publishing.requeue_failed)
    S.FAILED: {S.DRAFT},  # a failed campaign can be fixed and published again
    S.CANCELLED: set(),
}

VERBS = {S.SCHEDULED: "schedule", S.SENDING: "send", S.PAUSED: "pause", S.COMPLETED: "complete",
         S.FAILED: "fail", S.CANCELLED: "cancel", S.DRAFT: "unschedule"}

LABELS = {S.DRAFT: "Draft", S.SCHEDULED: "Scheduled", S.SENDING: "Sending", S.PAUSED: "Paused",
          S.COMPLETED: "Completed", S.FAILED: "Failed", S.CANCELLED: "Cancelled"}


class TransitionError(Problem):
    """An illegal move, with a message for the person who asked."""
    status = 409  # the API's answer: the request conflicts with the campaign's state


def can_transition(current, target):
    return target in TRANSITIONS.get(current, set())


def check_transition(current, target, only_from=None):
    """TransitionError, saying the state, unless a campaign in `current` may move to `target` (and
    `current` is one of `only_from`, when given: a move legal for another cause is not this one)."""
    if not can_transition(current, target) or (only_from is not None and current not in only_from):
        raise TransitionError(f"A {LABELS[current].lower()} campaign cannot {VERBS[target]}"
                              f"{'' if target != S.SENDING else ' now'}.")


def transition(campaign, target, reason=""):
    """Move `campaign` to `target` or raise TransitionError. Returns the refreshed campaign."""
    current = campaign.state
    check_transition(current, target)
    values = {Campaign.state: target, Campaign.state_reason: reason, Campaign.updated_at: utcnow()}
    if target == S.SENDING and campaign.started_at is None:
        values[Campaign.started_at] = utcnow()
    if target in (S.COMPLETED, S.FAILED, S.CANCELLED):
        values[Campaign.finished_at] = utcnow()
    changed = (Campaign.update(values)
               .where((Campaign.id == campaign.id) & (Campaign.state == current)).execute())
    if not changed:
        fresh = Campaign.get_by_id(campaign.id)
        raise TransitionError(f"The campaign changed meanwhile (it is now {LABELS[fresh.state].lower()}). "
                              "Reload the page.")
    return Campaign.get_by_id(campaign.id)


# --- Waiting for a warm-up plan's allowance (still "sending") -------------------------------------------

def wait_until(campaign_id, moment):
    """Record when a warm-up plan lets the sending campaign go on (Campaign.waiting_until, UTC). True when
    that changed it, or the time stored has passed (the scheduled run itself found no room yet): one
    conditional UPDATE, so of several runs stopping at once one schedules the continuation."""
    return bool(Campaign.update(waiting_until=moment)
                .where((Campaign.id == campaign_id)
                       & (Campaign.waiting_until.is_null() | (Campaign.waiting_until != moment)
                          | (Campaign.waiting_until <= utcnow())))
                .execute())


def stop_waiting(team_id):
    """A warm-up plan of the team changed (raised, or turned off): its waiting campaigns no longer wait for
    the time computed under the old plan; the minute tick continues them (their scheduled run, if it
    comes, finds them sent or sends what is left). Returns how many waited."""
    return (Campaign.update(waiting_until=None)
            .where((Campaign.team == team_id) & Campaign.waiting_until.is_null(False)).execute())
