"""What the automation builder shows: each step in a few words, and the stored settings as form values (the reverse
of app/automations/flow.py's parsing, kept apart so flow.py stays the writer and this the reader)."""
from app.automations.flow import FIELD_OPS
from app.automations.flow import UNITS
from app.automations.flow import WEEKDAYS
from app.models import StepKind


def _minutes_words(minutes):
    for unit, size in (("day", 24 * 60), ("hour", 60)):
        if minutes and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def describe(step, names, numbers=None):
    """A step in a few words. `names` maps ("list"|"segment"|"field", id or key) to a name; `numbers` step ids to
    their number in the flow."""
    config = step.config if isinstance(step.config, dict) else {}
    kind = step.kind
    if kind == StepKind.EMAIL:
        return f"Send “{config.get('subject')}”" if config.get("subject") else "Send an email (no subject yet)"
    if kind == StepKind.WAIT:
        mode = config.get("mode")
        if mode == "duration":
            return f"Wait {_minutes_words(int(config.get('minutes') or 0))}"
        if mode == "until":
            days = ", ".join(WEEKDAYS[d][:3] for d in config.get("weekdays") or [] if 0 <= d <= 6)
            zone = "the contact's time" if config.get("zone") == "contact" else "the team's time"
            return f"Wait until {days or 'a chosen day'} at {config.get('time')} ({zone})"
        if mode == "event":
            return (f"Wait for the event “{config.get('event')}” (at most "
                    f"{_minutes_words(int(config.get('timeout_minutes') or 0))})")
        return "Wait (not set up)"
    if kind == StepKind.CONDITION:
        test = config.get("test")
        if test in ("opened", "clicked"):
            number = (numbers or {}).get(config.get("step_id"))
            return f"If they {test} the email of step {number}" if number else f"If they {test} an email (removed)"
        if test == "field":
            label = names.get(("field", config.get("field")), config.get("field"))
            value = "" if config.get("op") in ("is_set", "is_not_set") else f" “{config.get('value')}”"
            return f"If {label} {FIELD_OPS.get(config.get('op'), config.get('op'))}{value}"
        if test == "segment":
            return f"If they are in the segment “{names.get(('segment', config.get('segment_id')), '?')}”"
        return "If … (not set up)"
    if kind in (StepKind.ADD_TO_LIST, StepKind.REMOVE_FROM_LIST):
        verb = "Add to" if kind == StepKind.ADD_TO_LIST else "Remove from"
        name = names.get(("list", config.get("list_id")))
        return f"{verb} the list “{name}”" if name else f"{verb} a list (choose one)"
    if kind == StepKind.SET_FIELD:
        if not config.get("field"):
            return "Set a field (choose one)"
        return f"Set {names.get(('field', config.get('field')), config.get('field'))} to “{config.get('value')}”"
    if kind == StepKind.WEBHOOK:
        return f"Call {config.get('url')}" if config.get("url") else "Call a webhook (enter its URL)"
    return "Exit the automation"


def step_form(step):
    """The edit form's values for a stored step (the reverse of step_config)."""
    config = dict(step.config) if isinstance(step.config, dict) else {}
    if step.kind == StepKind.EMAIL:
        config["body_kind"] = config.get("kind", "html")
        config["template_id"] = config.get("template_id") or ""
    if step.kind == StepKind.WAIT:
        minutes = int(config.get("minutes") or 0)
        unit = next((u for u in ("days", "hours") if minutes and minutes % UNITS[u] == 0), "minutes")
        config.update(amount=str(minutes // UNITS[unit]) if minutes else "1", unit=unit,
                      timeout_days=str(max(1, int(config.get("timeout_minutes") or 0) // UNITS["days"])))
    if step.kind == StepKind.CONDITION:
        config["email_step_id"] = config.get("step_id") or ""
    config.pop("secret", None)  # a webhook step's, encrypted: shown by its own box, never sent back as a field
    return config


def settings_form(automation):
    """The settings form's values for a stored automation."""
    trigger = automation.trigger if isinstance(automation.trigger, dict) else {}
    goal = automation.goal if isinstance(automation.goal, dict) else {}
    values = {"name": automation.name, "trigger_kind": trigger.get("kind", ""), "reentry": automation.reentry,
              "goal_kind": goal.get("kind", ""), "from_name": automation.from_name,
              "from_email": automation.from_email, "reply_to": automation.reply_to}
    values.update({"trigger_list_id": trigger.get("list_id", ""), "trigger_segment_id": trigger.get("segment_id", ""),
                   "trigger_field": trigger.get("field", ""), "trigger_offset_days": trigger.get("offset_days", 0),
                   "trigger_time": trigger.get("time", "09:00"), "trigger_yearly": trigger.get("yearly", False),
                   "trigger_event": trigger.get("name", "") if trigger.get("kind") == "event" else "",
                   "goal_event": goal.get("name", ""), "goal_segment_id": goal.get("segment_id", "")})
    return values
