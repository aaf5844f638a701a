"""Automations (app/models/automations.py): automation, automation_step, automation_run and automation_visit,
the run's ledger (unique per run and step)."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField
from app.models.common import utcnow


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class Team(Base):
        class Meta:
            table_name = "team"

    class Contact(Base):
        class Meta:
            table_name = "contact"

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class Automation(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        state = CharField(default="draft")
        # {"kind": "list_join", "list_id": 3} ... the kinds live in app/automations/triggers.py
        trigger = JSONField()
        reentry = CharField(default="never")
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

    class AutomationStep(Base):
        id = IdField()
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

    class AutomationRun(Base):
        id = IdField()
        automation = ForeignKeyField(Automation, on_delete="CASCADE", index=False)
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
        entry = IntegerField(default=1)
        state = CharField(default="waiting")
        step_id = IntegerField(null=True)  # the step it is at (waiting in, or about to do)
        next_at = DateTimeField(null=True)  # UTC; when the scheduler looks at it (None: not scheduled)
        waiting_for = CharField(default="")  # an event name a wait step waits for ("" for none)
        data = JSONField()  # what the trigger carried (an API event's data, the list joined, ...)
        claimed_until = DateTimeField(null=True)  # a scheduler tick's lease on it: another tick leaves it alone
        exit_reason = CharField(default="")
        entered_at = DateTimeField(default=utcnow)
        ended_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("automation", "contact", "entry"), True),
                (("state", "next_at"), False),  # the scheduler's claim
                (("contact", "state"), False),  # exits on unsubscribe, bounce, complaint, event
            )

    class AutomationVisit(Base):
        id = IdField()
        run = ForeignKeyField(AutomationRun, on_delete="CASCADE", index=False)
        step = ForeignKeyField(AutomationStep, on_delete="CASCADE")
        outcome = CharField(default="")  # "" while in progress; sent, skipped, yes, no, done, failed, ...
        detail = TextField(default="")
        entered_at = DateTimeField(default=utcnow)
        done_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("run", "step"), True),)

    db.create_tables([Automation, AutomationStep, AutomationRun, AutomationVisit])


def down(migrator, db):
    for table in ("automation_visit", "automation_run", "automation_step", "automation"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
