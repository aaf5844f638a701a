"""Automations (migration 0067): a welcome series or drip sequence that a trigger starts for one contact at a time.

An automation's steps form a tree without loops: each step names the step after it (next_id), and a condition
names one for yes and one for no. A run is one contact's way through one automation; AutomationVisit is the run's
ledger (one row per run and step, unique), so a crash or a retry never does a step twice and never skips one."""
import enum

from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.db import in_partial_index
from app.models.campaigns import Campaign
from app.models.common import utcnow
from app.models.contacts import Contact
from app.models.teams import Team
from app.models.teams import User


class AutomationState(enum.StrEnum):
    DRAFT = "draft"  # being built: nobody enters, it can be tested with one contact and simulated
    LIVE = "live"  # triggers start runs, the scheduler moves them on
    PAUSED = "paused"  # triggers are ignored and no run moves; resuming picks up where each run stood


class StepKind(enum.StrEnum):
    EMAIL = "email"
    WAIT = "wait"
    CONDITION = "condition"
    ADD_TO_LIST = "add_to_list"
    REMOVE_FROM_LIST = "remove_from_list"
    SET_FIELD = "set_field"
    WEBHOOK = "webhook"
    EXIT = "exit"


class RunState(enum.StrEnum):
    WAITING = "waiting"  # next_at says when the scheduler looks at it again (a wait, or due now)
    DONE = "done"  # walked off the end of its branch or reached an exit step
    EXITED = "exited"  # left early: exit_reason says why (unsubscribed, bounced, complained, deleted, goal, ...)


class Reentry(enum.StrEnum):
    NEVER = "never"  # one run per contact, ever
    AFTER_END = "after_end"  # again once the previous run is done or exited
    ALWAYS = "always"  # again at every trigger, ended or not: the earlier run is exited ("reentered")


class Automation(BaseModel):
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    state = CharField(default=AutomationState.DRAFT)
    # {"kind": "list_join", "list_id": 3} ... the kinds live in app/automations/triggers.py
    trigger = JSONField()
    reentry = CharField(default=Reentry.NEVER)
    # {} or {"kind": "event", "name": "purchased"} or {"kind": "segment", "segment_id": 4}: reaching it ends the run
    goal = JSONField()
    first_step_id = IntegerField(null=True)  # the root of the step tree
    from_name = CharField(default="")
    from_email = CharField(default="")
    reply_to = CharField(default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "state"), False),)


class AutomationStep(BaseModel):
    """One step. Steps are never deleted while runs may point at them: removed_at marks a removed step, and a run
    waiting there moves on to the step that took its place (app/automations/flow.py documents the rule)."""
    automation = ForeignKeyField(Automation, backref="steps", on_delete="CASCADE")
    kind = CharField()  # a StepKind
    # The step's settings, by kind: email {"subject", "body", "kind", "preheader", "template_id"},
    # wait {"mode": "duration"|"until"|"event", ...}, condition {"test": ..., ...}, and so on.
    config = JSONField()
    next_id = IntegerField(null=True)  # the step after this one (None: the end of the branch)
    yes_id = IntegerField(null=True)  # a condition's branches
    no_id = IntegerField(null=True)
    # An email step's content and tracking live in a campaign of its own (never listed with campaigns), so links,
    # opens, clicks, bounces and reports reuse the campaign machinery.
    campaign = ForeignKeyField(Campaign, null=True, on_delete="SET NULL")
    removed_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class AutomationRun(BaseModel):
    """One contact's way through one automation (entry counts the contact's runs of it, from 1)."""
    automation = ForeignKeyField(Automation, on_delete="CASCADE", index=False)
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    entry = IntegerField(default=1)
    state = CharField(default=RunState.WAITING)
    step_id = IntegerField(null=True)  # the step it is at (waiting in, or about to do)
    next_at = DateTimeField(null=True)  # UTC; when the scheduler looks at it (None: not scheduled)
    waiting_for = CharField(default="")  # an event name a wait step waits for ("" for none)
    data = JSONField()  # what the trigger carried (an API event's data, the list joined, ...)
    claimed_until = DateTimeField(null=True)  # a scheduler tick's lease on it: another tick leaves it alone
    exit_reason = CharField(default="")
    entered_at = DateTimeField(default=utcnow)
    ended_at = DateTimeField(null=True)

    class Meta:
        # contact_id's own index (the foreign key's) serves the exits on unsubscribe, bounce, complaint, event
        indexes = ((("automation", "contact", "entry"), True),)


# The scheduler's claim: the waiting runs by next_at, a partial index that ended runs leave (migration 0077). The
# queries that want it say its condition as written (app.db.in_partial_index).
AutomationRun.add_index(AutomationRun.index(AutomationRun.next_at, name="automation_run_due",
                                            where=in_partial_index(AutomationRun.state, RunState.WAITING)))


class AutomationVisit(BaseModel):
    """The run's ledger: a row per run and step, written before the step's effect (or with it, for a burst's email),
    so a step is done once. An email step's visit also holds its message (migration 0078, app/automations/mail.py):
    send_id is set in the transaction that writes the Send row, and once set the email is never queued again."""
    run = ForeignKeyField(AutomationRun, on_delete="CASCADE", index=False)
    step = ForeignKeyField(AutomationStep, on_delete="CASCADE", index=False)
    outcome = CharField(default="")  # "" while in progress; sent, skipped, yes, no, done, failed, ...
    detail = TextField(default="")
    entered_at = DateTimeField(default=utcnow)
    done_at = DateTimeField(null=True)
    send_id = IntegerField(null=True)  # an email step's Send row in the step's hidden campaign (reused by a re-entry)
    after_event_id = IntegerField(default=0)  # the newest Event id when it was queued: this run's opens follow it

    class Meta:
        # (step, outcome): the per-step counts read the index alone (migration 0076, app/automations/report.py)
        indexes = ((("run", "step"), True), (("step", "outcome"), False))


# --- Triggers (migration 0070, app/automations/triggers.py) ---

class AutomationSegmentMark(BaseModel):
    """A segment-entry automation's last look at its segment: members at the first look (go-live) are the baseline
    and never enter; a later member not yet known is a newcomer. A different segment_id starts a new baseline."""
    automation = ForeignKeyField(Automation, on_delete="CASCADE", unique=True)
    segment_id = IntegerField()
    baseline_at = DateTimeField(default=utcnow)
    checked_at = DateTimeField(default=utcnow)


class AutomationSegmentMember(BaseModel):
    """Who was in the automation's segment at the last look (the baseline, then each newcomer until they leave)."""
    automation = ForeignKeyField(Automation, on_delete="CASCADE", index=False)
    contact = ForeignKeyField(Contact, on_delete="CASCADE")
    since = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("automation", "contact"), True),)


class AutomationDateMark(BaseModel):
    """A date-field automation's window (migration 0074): live since when (again after a pause), last checked when."""
    automation = ForeignKeyField(Automation, on_delete="CASCADE", unique=True)
    live_since = DateTimeField(default=utcnow)
    checked_at = DateTimeField(null=True)


class AutomationEvent(BaseModel):
    """A named event about a contact (POST /api/v1/events, triggers.record_event): it may start, wake or end runs,
    and the simulation estimates from the last week's."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    name = CharField()
    data = JSONField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "name", "created_at"), False),)


# --- Email steps (migration 0069, app/automations/mail.py) ---

def automation_email_campaigns():
    """The ids of the hidden campaigns that automation email steps send from: the one definition of "not a campaign
    the team wrote", for the pages that list or count campaigns (`Campaign.id.not_in(...)`)."""
    steps = AutomationStep.select(AutomationStep.campaign).where(AutomationStep.campaign.is_null(False))
    # A deleted automation's steps are gone, its campaigns stay (cancelled): AutomationRetiredCampaign, below.
    return steps | AutomationRetiredCampaign.select(AutomationRetiredCampaign.campaign)


# --- Deleting an automation (migration 0072, app/automations/deletion.py) ---

class AutomationRetiredCampaign(BaseModel):
    """A hidden campaign of a deleted automation's email step. The steps go with the automation; their campaigns stay,
    cancelled, because their Send and Event rows are what the contacts were sent (the Activity timeline, the
    reports' totals). This row keeps such a campaign out of the campaign list, calendar and dashboard."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE", unique=True)
    team = ForeignKeyField(Team, on_delete="CASCADE")
    automation_name = CharField(default="")
    deleted_at = DateTimeField(default=utcnow)
