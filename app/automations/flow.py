"""Building an automation: the one writer of AutomationStep rows and of an Automation's settings and state.

The steps form a tree (app/models/automations.py): a step names the step after it (next_id), a condition names the
first step of its yes and no branches. Adding a step links it in; removing one keeps its row (removed_at) so a run
waiting there can move on, by this rule, which the engine follows:

* a run at a removed step goes on to that step's next_id as it was when the step was removed, and flow.py keeps
  that next_id pointing at whatever replaced it (removing the replacement later re-points it again);
* removing a condition keeps its yes branch in its place (the removed condition's next_id is the yes branch's first
  step, or None: the end) and removes every step of its no branch; a removed no-branch step's next_id is None, so a
  run waiting in the removed no branch ends there (done).

Editing a live automation is allowed: the engine reads a step when a run reaches it, so a change applies to runs
that have not reached the changed step yet.
"""
import re
import secrets

from peewee import fn

from app import addresses
from app import security
from app.content import prepare
from app.content import sandbox
from app.db import db
from app.errors import Problem
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationState
from app.models import AutomationStep
from app.models import CustomField
from app.models import MailingList
from app.models import Reentry
from app.models import RunState
from app.models import Segment
from app.models import StepKind
from app.models import Template
from app.models import utcnow
from app.senders import domains
from app.webhooks import ssrf

NAME_MAX = 200
SUBJECT_MAX = 998
PREHEADER_MAX = 300
VALUE_MAX = 2000
MAX_WAIT_MINUTES = 366 * 24 * 60
MAX_STEPS = 200  # a flow a person can still read; also bounds the tree walk
EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
BUILT_IN_FIELDS = ("name",)  # contact columns a condition or set_field may use besides the custom fields

STEP_LABELS = {StepKind.EMAIL: "Send email", StepKind.WAIT: "Wait", StepKind.CONDITION: "If / else",
               StepKind.ADD_TO_LIST: "Add to list", StepKind.REMOVE_FROM_LIST: "Remove from list",
               StepKind.SET_FIELD: "Set field", StepKind.WEBHOOK: "Call webhook", StepKind.EXIT: "Exit"}
TRIGGER_LABELS = {"list_join": "Joins a list", "confirmed": "Confirms a double opt-in list",
                  "segment_entry": "Enters a segment", "date_field": "A date field comes round",
                  "event": "An API event happens", "manual": "Started by hand"}
GOAL_LABELS = {"": "No goal", "event": "An API event happens", "segment": "Enters a segment"}
REENTRY_LABELS = {Reentry.NEVER: "Never: once per contact", Reentry.AFTER_END: "Again after the previous run ended",
                  Reentry.ALWAYS: "At every trigger (a running run is exited)"}
FIELD_OPS = {"equals": "equals", "not_equals": "does not equal", "contains": "contains", "is_set": "is set",
             "is_not_set": "is not set", "greater": "is greater than", "less": "is less than"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}


class FlowError(Problem):
    pass


# --- reading -----------------------------------------------------------------------------------------------------

def live_steps(automation):
    return {s.id: s for s in AutomationStep.select().where((AutomationStep.automation == automation.id)
                                                           & AutomationStep.removed_at.is_null())}


def steps_tree(automation, steps=None):
    """The steps as nested nodes for rendering: [{"step", "yes": [...], "no": [...]}, ...] from the top.
    A broken link (a step of another automation, a loop) ends the branch instead of looping."""
    steps = live_steps(automation) if steps is None else steps
    seen = set()

    def branch(step_id):
        nodes = []
        while step_id in steps and step_id not in seen and len(seen) < MAX_STEPS:
            seen.add(step_id)
            step = steps[step_id]
            node = {"step": step, "yes": [], "no": []}
            nodes.append(node)
            if step.kind == StepKind.CONDITION:
                node["yes"], node["no"] = branch(step.yes_id), branch(step.no_id)
                break
            step_id = step.next_id
        return nodes
    return branch(automation.first_step_id)


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node["yes"])
        yield from walk(node["no"])


def ordered_steps(automation):
    """Every step in the tree, top to bottom (yes branch before no)."""
    return [node["step"] for node in walk(steps_tree(automation))]


def _ancestors(automation, step_id):
    """The ids of the steps a run passes before `step_id` (its path from the top), or None if it is not in the tree."""
    def find(nodes, path):
        for index, node in enumerate(nodes):
            before = path + [n["step"].id for n in nodes[:index]]
            if node["step"].id == step_id:
                return before
            for side in ("yes", "no"):
                found = find(node[side], before + [node["step"].id])
                if found is not None:
                    return found
        return None
    return find(steps_tree(automation), [])


def step_of(automation, step_id):
    """This automation's live step with this id, or None."""
    try:
        step_id = int(step_id)
    except (TypeError, ValueError):
        return None
    return AutomationStep.get_or_none((AutomationStep.id == step_id) & (AutomationStep.automation == automation.id)
                                      & AutomationStep.removed_at.is_null())


def has_runs(automation):
    return AutomationRun.select().where(AutomationRun.automation == automation.id).exists()


# --- creating and settings -----------------------------------------------------------------------------------------

def _name(value):
    name = (value or "").strip()
    if not name:
        raise FlowError("Give the automation a name (only your team sees it).", field="name")
    if len(name) > NAME_MAX:
        raise FlowError(f"Keep the name under {NAME_MAX} characters.", field="name")
    return name


WELCOME = ((StepKind.EMAIL, {"subject": "Welcome!", "body": "<p>Hi {{ contact.name }}, thanks for joining us.</p>"}),
           (StepKind.WAIT, {"mode": "duration", "minutes": 2 * 24 * 60}),
           (StepKind.EMAIL, {"subject": "Getting started", "body": "<p>Here is how to get the most out of it.</p>"}))
STARTERS = {"": "Blank: add the steps yourself", "welcome": "Welcome series: email, wait 2 days, email"}


def create_automation(team, user, name, starter=""):
    """A new draft, blank or from a starter ("welcome"), sent from the team's default sender."""
    if starter not in STARTERS:
        raise FlowError("Choose a blank automation or the welcome series.", field="starter")
    if starter == "welcome" and not (name or "").strip():
        name = "Welcome series"
    name = _name(name)
    with db.atomic():
        automation = Automation.create(team=team, name=name, trigger={"kind": "manual"}, goal={},
                                       from_name=team.default_from_name or "", from_email=team.default_from_email or "",
                                       created_by=user)
        after = None
        for kind, config in (WELCOME if starter == "welcome" else ()):
            step = add_step(automation, kind, after=after)
            if config:
                step.config = {**step.config, **config}
                step.save()
            after = step.id
    return automation


def _team_row(model, team, raw, field, label):
    try:
        row_id = int(raw)
    except (TypeError, ValueError):
        raise FlowError(f"Choose a {label}.", field=field) from None
    if not model.select().where((model.id == row_id) & (model.team == team)).exists():
        raise FlowError(f"No {label} of this team has the id {row_id}.", field=field)
    return row_id


def _event_name(raw, field):
    name = (raw or "").strip()
    if not EVENT_NAME.match(name):
        raise FlowError("An event name is 1 to 100 letters, digits, dots, dashes, colons or underscores, "
                        "such as order_placed.", field=field)
    return name


def _int(raw, field, label, low, high):
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise FlowError(f"{label} must be a whole number.", field=field) from None
    if not low <= value <= high:
        raise FlowError(f"{label} must be between {low:,} and {high:,}.", field=field)
    return value


def _time(raw, field):
    value = (raw or "").strip()
    if not TIME.match(value):
        raise FlowError("Enter a time as HH:MM on a 24-hour clock, such as 09:00.", field=field)
    return value


def _field_key(team, raw, field, date_only=False):
    key = (raw or "").strip()
    query = CustomField.select().where((CustomField.team == team) & (CustomField.key == key))
    if date_only:
        if not query.where(CustomField.type == "date").exists():
            raise FlowError(f"“{key}” is not a date field of this team. Add one under Contacts › Fields.", field=field)
    elif key not in BUILT_IN_FIELDS and not query.exists():
        raise FlowError(f"“{key}” is not a field of this team.", field=field)
    return key


def parse_trigger(team, form):
    kind = form.get("trigger_kind", "")
    if kind in ("list_join", "confirmed"):
        return {"kind": kind, "list_id": _team_row(MailingList, team, form.get("trigger_list_id"),
                                                   "trigger_list_id", "list")}
    if kind == "segment_entry":
        return {"kind": kind, "segment_id": _team_row(Segment, team, form.get("trigger_segment_id"),
                                                      "trigger_segment_id", "segment")}
    if kind == "date_field":
        return {"kind": kind, "field": _field_key(team, form.get("trigger_field"), "trigger_field", date_only=True),
                "offset_days": _int(form.get("trigger_offset_days") or "0", "trigger_offset_days",
                                    "The number of days", -366, 366),
                "time": _time(form.get("trigger_time") or "09:00", "trigger_time"),
                "yearly": bool(form.get("trigger_yearly"))}
    if kind == "event":
        return {"kind": kind, "name": _event_name(form.get("trigger_event"), "trigger_event")}
    if kind == "manual":
        return {"kind": kind}
    raise FlowError("Choose what starts the automation.", field="trigger_kind")


def parse_goal(team, form):
    kind = form.get("goal_kind", "")
    if kind == "":
        return {}
    if kind == "event":
        return {"kind": kind, "name": _event_name(form.get("goal_event"), "goal_event")}
    if kind == "segment":
        return {"kind": kind, "segment_id": _team_row(Segment, team, form.get("goal_segment_id"),
                                                      "goal_segment_id", "segment")}
    raise FlowError("Choose a goal, or none.", field="goal_kind")


def _sender(form, prefix=""):
    """(from_name, from_email, reply_to) checked by the campaigns' sender rules: one address each, one line."""
    values = {}
    for name in ("from_email", "reply_to"):
        raw = (form.get(prefix + name) or "").strip().lower()
        if raw:
            try:
                raw = addresses.normalise_email(raw, allow_test_domains=True)
            except addresses.InvalidEmail as exc:
                label = "From address" if name == "from_email" else "Reply-to address"
                raise FlowError(f"The {label} must be one email address, such as news@example.com ({exc})",
                                field=prefix + name) from None
        values[name] = raw
    from_name = (form.get(prefix + "from_name") or "").strip()[:NAME_MAX]
    if re.search(r"[\x00-\x1f\x7f]", from_name):
        raise FlowError("The From name must be one line of text.", field=prefix + "from_name")
    return from_name, values["from_email"], values.get("reply_to", "")


def update_settings(automation, form):
    """Name, trigger, goal, re-entry and sender from the settings form; FlowError stores nothing."""
    team = automation.team
    name = _name(form.get("name"))
    trigger = parse_trigger(team, form)
    goal = parse_goal(team, form)
    reentry = form.get("reentry", "")
    if reentry not in REENTRY_LABELS:
        raise FlowError("Choose whether a contact can go through it again.", field="reentry")
    from_name, from_email, reply_to = _sender(form)
    Automation.update(name=name, trigger=trigger, goal=goal, reentry=reentry, from_name=from_name,
                      from_email=from_email, reply_to=reply_to, updated_at=utcnow()
                      ).where(Automation.id == automation.id).execute()
    return Automation.get_by_id(automation.id)


# --- steps -------------------------------------------------------------------------------------------------------

DEFAULTS = {StepKind.EMAIL: {"subject": "", "preheader": "", "kind": "html", "body": "", "template_id": None,
                             "from_name": "", "from_email": ""},
            StepKind.WAIT: {"mode": "duration", "minutes": 24 * 60},
            StepKind.CONDITION: {"test": "field", "field": "name", "op": "is_set", "value": ""},
            StepKind.ADD_TO_LIST: {"list_id": None}, StepKind.REMOVE_FROM_LIST: {"list_id": None},
            StepKind.SET_FIELD: {"field": "", "value": ""}, StepKind.WEBHOOK: {"url": ""}, StepKind.EXIT: {}}


def parse_position(raw):
    """"top", "after:<id>", "yes:<id>" or "no:<id>" as (where, step id)."""
    where, _sep, ident = (raw or "top").partition(":")
    if where == "top":
        return "top", None
    if where in ("after", "yes", "no") and ident.isdigit():
        return where, int(ident)
    raise FlowError("Choose where the step goes.", field="position")


def add_step(automation, kind, after=None, branch=None):
    """A new step with default settings: after step `after`, at the start of condition `branch[1]`'s
    branch `branch[0]` ("yes"/"no"), or at the top. The step that was there follows it (a new condition takes it
    into its yes branch)."""
    if kind not in STEP_LABELS:
        raise FlowError("Choose a kind of step.", field="kind")
    with db.atomic():
        if AutomationStep.select().where((AutomationStep.automation == automation.id)
                                         & AutomationStep.removed_at.is_null()).count() >= MAX_STEPS:
            raise FlowError(f"An automation has at most {MAX_STEPS} steps.")
        if after is not None:
            parent = step_of(automation, after)
            if parent is None or parent.kind == StepKind.CONDITION:
                raise FlowError("That step is no longer there, or is a condition: add to one of its branches.",
                                field="position")
            following, attribute = parent.next_id, "next_id"
        elif branch is not None:
            side, parent = branch[0], step_of(automation, branch[1])
            if parent is None or parent.kind != StepKind.CONDITION or side not in ("yes", "no"):
                raise FlowError("That condition is no longer there.", field="position")
            attribute = f"{side}_id"
            following = getattr(parent, attribute)
        else:
            parent, following = None, Automation.get_by_id(automation.id).first_step_id
        step = AutomationStep.create(automation=automation.id, kind=kind, config=dict(DEFAULTS[kind]))
        if kind == StepKind.CONDITION:
            step.yes_id = following
        else:
            step.next_id = following
        step.save()
        if parent is None:
            Automation.update(first_step_id=step.id, updated_at=utcnow()).where(
                Automation.id == automation.id).execute()
            automation.first_step_id = step.id
        else:
            AutomationStep.update({attribute: step.id, AutomationStep.updated_at: utcnow()}).where(
                AutomationStep.id == parent.id).execute()
    return step


def _parent_link(automation, step):
    """(parent step or None for the top, the attribute that points at `step`)."""
    if Automation.get_by_id(automation.id).first_step_id == step.id:
        return None, "first_step_id"
    for attribute in ("next_id", "yes_id", "no_id"):
        parent = AutomationStep.get_or_none((AutomationStep.automation == automation.id)
                                            & AutomationStep.removed_at.is_null()
                                            & (getattr(AutomationStep, attribute) == step.id))
        if parent is not None:
            return parent, attribute
    return None, None


def _subtree(steps, step_id):
    ids, stack = [], [step_id]
    while stack:
        current = stack.pop()
        if current in steps and current not in ids:
            ids.append(current)
            s = steps[current]
            stack += [s.next_id, s.yes_id, s.no_id]
    return ids


def remove_step(automation, step, now=None):
    """Remove a step by the rule at the top of this module; returns the ids removed."""
    now = now or utcnow()
    with db.atomic():
        steps = live_steps(automation)
        if step.id not in steps:
            raise FlowError("That step was already removed.")
        replacement = step.yes_id if step.kind == StepKind.CONDITION else step.next_id
        removed = [step.id]
        if step.kind == StepKind.CONDITION:
            dropped = _subtree(steps, step.no_id)
            removed += dropped
            if dropped:
                AutomationStep.update(removed_at=now, next_id=None, yes_id=None, no_id=None, updated_at=now).where(
                    AutomationStep.id.in_(dropped)).execute()
        parent, attribute = _parent_link(automation, step)
        if attribute == "first_step_id":
            Automation.update(first_step_id=replacement, updated_at=now).where(Automation.id == automation.id).execute()
            automation.first_step_id = replacement
        elif parent is not None:
            AutomationStep.update({attribute: replacement, AutomationStep.updated_at: now}).where(
                AutomationStep.id == parent.id).execute()
        AutomationStep.update(removed_at=now, next_id=replacement, updated_at=now).where(
            AutomationStep.id == step.id).execute()
        # Steps removed earlier that pointed here now point at what replaces this one.
        AutomationStep.update(next_id=replacement).where(
            (AutomationStep.automation == automation.id) & AutomationStep.removed_at.is_null(False)
            & (AutomationStep.next_id == step.id) & (AutomationStep.id != step.id)).execute()
    return removed


def removal_preview(automation, step):
    """What removing `step` would do, for its confirmation: {"waiting": runs waiting at it, "moves_to": the step they
    go on to (None: their run ends there), "dropped": the no-branch steps removed with a condition, "dropped_waiting":
    the runs waiting in those, which end}. One query counts the runs, whatever the size of the branch."""
    steps = live_steps(automation)
    dropped = _subtree(steps, step.no_id) if step.kind == StepKind.CONDITION else []
    following = step.yes_id if step.kind == StepKind.CONDITION else step.next_id
    counts = dict(AutomationRun.select(AutomationRun.step_id, fn.COUNT(AutomationRun.id))
                  .where((AutomationRun.automation == automation.id) & (AutomationRun.state == RunState.WAITING)
                         & AutomationRun.step_id.in_([step.id] + dropped))
                  .group_by(AutomationRun.step_id).tuples())
    return {"waiting": counts.get(step.id, 0), "moves_to": steps.get(following),
            "dropped": [steps[i] for i in dropped], "dropped_waiting": sum(counts.get(i, 0) for i in dropped)}


def _email_config(automation, step, form):
    team = automation.team
    subject = (form.get("subject") or "").strip()
    if len(subject) > SUBJECT_MAX:
        raise FlowError(f"Keep the subject under {SUBJECT_MAX} characters.", field="subject")
    try:
        sandbox.compile_template(subject, autoescape=False)
    except sandbox.RenderError as exc:
        raise FlowError(f"This subject cannot be used: {exc}", field="subject") from None
    preheader = (form.get("preheader") or "").strip()
    if len(preheader) > PREHEADER_MAX:
        raise FlowError(f"Keep the preview text under {PREHEADER_MAX} characters.", field="preheader")
    kind = form.get("body_kind") or form.get("kind") or "html"
    if kind not in ("html", "markdown"):
        raise FlowError("Choose HTML or Markdown.", field="body_kind")
    body = form.get("body") or ""
    if len(body) > sandbox.MAX_SOURCE:
        raise FlowError(f"This email is too long ({len(body):,} characters; at most {sandbox.MAX_SOURCE:,}).",
                        field="body")
    try:
        body = prepare.clean_source(body, kind) if body.strip() else ""
    except sandbox.RenderError as exc:
        raise FlowError(f"The content cannot be used: {exc}", field="body") from None
    template_id = None
    if (form.get("template_id") or "").strip():
        template_id = _team_row(Template, team, form.get("template_id"), "template_id", "template")
    from_name, from_email, _reply = _sender(form)
    return {"subject": subject, "preheader": preheader, "kind": kind, "body": body, "template_id": template_id,
            "from_name": from_name, "from_email": from_email}


def _wait_config(form):
    mode = form.get("mode", "")
    if mode == "duration":
        unit = form.get("unit", "minutes")
        if unit not in UNITS:
            raise FlowError("Choose minutes, hours or days.", field="unit")
        amount = _int(form.get("amount"), "amount", "The wait", 1, MAX_WAIT_MINUTES // UNITS[unit])
        return {"mode": mode, "minutes": amount * UNITS[unit]}
    if mode == "until":
        days = sorted({int(d) for d in form.getlist("weekdays") if str(d).isdigit() and 0 <= int(d) <= 6})
        if not days:
            raise FlowError("Choose at least one day of the week.", field="weekdays")
        zone = form.get("zone", "team")
        if zone not in ("contact", "team"):
            raise FlowError("Choose the contact's or the team's time zone.", field="zone")
        return {"mode": mode, "weekdays": days, "time": _time(form.get("time"), "time"), "zone": zone}
    if mode == "event":
        return {"mode": mode, "event": _event_name(form.get("event"), "event"),
                "timeout_minutes": _int(form.get("timeout_days"), "timeout_days", "The longest wait in days", 1,
                                        366) * 24 * 60}
    raise FlowError("Choose how long to wait.", field="mode")


def _condition_config(automation, step, form):
    test = form.get("test", "")
    if test in ("opened", "clicked"):
        target = step_of(automation, form.get("email_step_id"))
        if target is None or target.kind != StepKind.EMAIL:
            raise FlowError("Choose an email step of this automation.", field="email_step_id")
        if target.id not in (_ancestors(automation, step.id) or []):
            raise FlowError("Choose an email step that comes before this condition.", field="email_step_id")
        return {"test": test, "step_id": target.id}
    if test == "field":
        op = form.get("op", "")
        if op not in FIELD_OPS:
            raise FlowError("Choose how to compare the field.", field="op")
        value = (form.get("value") or "").strip()
        if len(value) > VALUE_MAX:
            raise FlowError(f"Keep the value under {VALUE_MAX:,} characters.", field="value")
        if op not in ("is_set", "is_not_set") and not value:
            raise FlowError("Enter the value to compare with.", field="value")
        return {"test": test, "field": _field_key(automation.team, form.get("field"), "field"), "op": op,
                "value": "" if op in ("is_set", "is_not_set") else value}
    if test == "segment":
        return {"test": test, "segment_id": _team_row(Segment, automation.team, form.get("segment_id"),
                                                      "segment_id", "segment")}
    raise FlowError("Choose what the condition tests.", field="test")


def step_config(automation, step, form):
    """The checked config of `step` from its edit form, or FlowError with the field it is about."""
    kind = step.kind
    if kind == StepKind.EMAIL:
        return _email_config(automation, step, form)
    if kind == StepKind.WAIT:
        return _wait_config(form)
    if kind == StepKind.CONDITION:
        return _condition_config(automation, step, form)
    if kind in (StepKind.ADD_TO_LIST, StepKind.REMOVE_FROM_LIST):
        return {"list_id": _team_row(MailingList, automation.team, form.get("list_id"), "list_id", "list")}
    if kind == StepKind.SET_FIELD:
        value = (form.get("value") or "").strip()
        if len(value) > VALUE_MAX:
            raise FlowError(f"Keep the value under {VALUE_MAX:,} characters.", field="value")
        return {"field": _field_key(automation.team, form.get("field"), "field"), "value": value}
    if kind == StepKind.WEBHOOK:
        url = (form.get("url") or "").strip()
        try:
            scheme, _host, _port, _path = ssrf.parse(url)
        except ssrf.Refused as exc:
            raise FlowError(str(exc), field="url") from None
        if scheme != "https":
            raise FlowError("The URL must start with https://.", field="url")
        return {"url": url, "secret": _signing_secret(step)}
    return {}


def _signing_secret(step):
    """A webhook step's signing secret, encrypted as stored: the one it has (a receiver already checks with it), or a
    new one when it has none or it can no longer be read (the encryption key changed)."""
    stored = step.config.get("secret") if isinstance(step.config, dict) else None
    if isinstance(stored, str) and stored and security.decrypt(stored) is not None:
        return stored
    return security.encrypt(secrets.token_urlsafe(32))


def webhook_secret(step):
    """The plaintext signing secret of a webhook step, for its edit form (None before its first save)."""
    stored = step.config.get("secret") if isinstance(step.config, dict) else None
    return security.decrypt(stored) if isinstance(stored, str) and stored else None


def edit_step(automation, step, form):
    """Save a step's settings from its form; FlowError stores nothing."""
    if step.removed_at is not None:
        raise FlowError("That step was removed.")
    config = step_config(automation, step, form)
    AutomationStep.update(config=config, updated_at=utcnow()).where(AutomationStep.id == step.id).execute()
    step.config = config
    return step


# --- going live ----------------------------------------------------------------------------------------------------

def _trigger_problems(automation):
    trigger = automation.trigger if isinstance(automation.trigger, dict) else {}
    kind, team = trigger.get("kind"), automation.team
    if kind not in TRIGGER_LABELS:
        return ["Choose what starts the automation."]
    checks = {"list_join": (MailingList, "list_id", "list"), "confirmed": (MailingList, "list_id", "list"),
              "segment_entry": (Segment, "segment_id", "segment")}
    if kind in checks:
        model, key, label = checks[kind]
        if not model.select().where((model.id == trigger.get(key)) & (model.team == team)).exists():
            return [f"The trigger's {label} no longer exists: choose another one."]
    if kind == "date_field" and not CustomField.select().where(
            (CustomField.team == team) & (CustomField.key == trigger.get("field"))
            & (CustomField.type == "date")).exists():
        return [f"The trigger's date field “{trigger.get('field')}” no longer exists."]
    return []


def _step_problem(automation, step, number):
    config = step.config if isinstance(step.config, dict) else {}
    team, where = automation.team, f"Step {number} ({STEP_LABELS.get(step.kind, step.kind).lower()})"
    if step.kind == StepKind.EMAIL:
        if not config.get("subject"):
            return f"{where}: write a subject line."
        if not (config.get("body") or "").strip():
            return f"{where}: write the content of the email."
        sender = config.get("from_email") or automation.from_email
        if sender and not domains.is_verified_sender(team.id, sender):
            return (f"{where}: the sender domain {sender.rpartition('@')[2]} is not verified. Add and verify it "
                    "under Sender domains.")
    if step.kind in (StepKind.ADD_TO_LIST, StepKind.REMOVE_FROM_LIST) and not MailingList.select().where(
            (MailingList.id == config.get("list_id")) & (MailingList.team == team)).exists():
        return f"{where}: choose a list."
    if step.kind == StepKind.SET_FIELD and not config.get("field"):
        return f"{where}: choose a field."
    if step.kind == StepKind.WEBHOOK and not config.get("url"):
        return f"{where}: enter the URL to call."
    if step.kind == StepKind.CONDITION:
        if config.get("test") in ("opened", "clicked") and step_of(automation, config.get("step_id")) is None:
            return f"{where}: the email it tests was removed; choose another."
        if config.get("test") == "segment" and not Segment.select().where(
                (Segment.id == config.get("segment_id")) & (Segment.team == team)).exists():
            return f"{where}: its segment no longer exists."
    return None


def problems_for_live(automation):
    """Everything that stops this automation from going live, in words. Empty when ready."""
    problems = _trigger_problems(automation)
    steps = ordered_steps(automation)
    if not steps:
        problems.append("Add at least one step.")
    if any(s.kind == StepKind.EMAIL for s in steps):
        if not automation.from_email:
            problems.append("Enter the From address in the settings.")
        elif not domains.is_verified_sender(automation.team_id, automation.from_email):
            problems.append(f"The sender domain {automation.from_email.rpartition('@')[2]} is not verified. Add "
                            "and verify it under Sender domains.")
        if not automation.team.postal_address.strip():
            problems.append("Add your postal address in Team settings: the law (CAN-SPAM) requires it in every email.")
    for number, step in enumerate(steps, start=1):
        problem = _step_problem(automation, step, number)
        if problem:
            problems.append(problem)
    goal = automation.goal if isinstance(automation.goal, dict) else {}
    if goal.get("kind") == "segment" and not Segment.select().where(
            (Segment.id == goal.get("segment_id")) & (Segment.team == automation.team)).exists():
        problems.append("The goal's segment no longer exists: choose another goal.")
    return problems


ACTIONS = {"live": "Go live", "pause": "Pause", "resume": "Resume", "draft": "Back to draft"}


def change_state(automation, action):
    """Go live (from a draft), pause, resume, or go back to draft (only while no contact ever entered)."""
    state = automation.state
    if action in ("live", "resume"):
        wanted = AutomationState.DRAFT if action == "live" else AutomationState.PAUSED
        if state != wanted:
            raise FlowError(f"Only a {wanted} automation can {'go live' if action == 'live' else 'be resumed'}; "
                            f"this one is {state}.")
        problems = problems_for_live(automation)
        if problems:
            raise FlowError("Fix these first: " + " ".join(problems))
        new = AutomationState.LIVE
    elif action == "pause":
        if state != AutomationState.LIVE:
            raise FlowError(f"Only a live automation can be paused; this one is {state}.")
        new = AutomationState.PAUSED
    elif action == "draft":
        if state == AutomationState.DRAFT:
            raise FlowError("This automation is already a draft.")
        if has_runs(automation):
            raise FlowError("Contacts have already entered this automation, so it cannot go back to draft: pause "
                            "it instead (their runs stay where they are).")
        new = AutomationState.DRAFT
    else:
        raise FlowError("Unknown action.")
    Automation.update(state=new, updated_at=utcnow()).where(
        (Automation.id == automation.id) & (Automation.state == state)).execute()
    return Automation.get_by_id(automation.id)


