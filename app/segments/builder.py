"""The visual rule builder: the form it posts, the tree it edits, and what its template shows.

The whole builder is one form. Each rule or group has a path ("0", "1.2")
and its inputs are named after it: rules.1.2.field, rules.1.2.operator,
rules.1.2.value, rules.1.op for a group, and rules.op for the top group.
Buttons post an action ("add_rule:1", "add_group:", "remove:1.2"), so with
or without JavaScript the server gets the whole state plus one change, and
renders the builder again (the fragment for HTMX, the page otherwise).
"""
import dataclasses
import re

from app.models import CONTACT_STATUSES
from app.segments.compiler import CUSTOM_PREFIX
from app.segments.compiler import FIELDS
from app.segments.compiler import GROUP_OPS
from app.segments.compiler import MAX_DEPTH
from app.segments.compiler import MAX_RULES
from app.segments.compiler import OPERATORS
from app.segments.compiler import check_rules
from app.segments.compiler import describe_path

_NAME = re.compile(r"^rules\.(?:(\d{1,3}(?:\.\d{1,3}){0,4})\.)?(op|field|operator|value|was|was_operator|kind)$")
NEW_RULE = {"field": "email", "operator": "contains", "value": ""}
# Value kinds a rule cannot be counted without.
_NEEDS_VALUE = {"text", "number", "date", "days", "status", "list", "campaign", "tag"}


def empty():
    return {"op": "and", "rules": []}


def from_form(form):
    """The tree the form describes; values stay as typed (the checker cleans them)."""
    nodes = {}
    for name in form.keys():
        match = _NAME.match(name)
        if not match:
            continue
        path, attribute = match.group(1) or "", match.group(2)
        nodes.setdefault(path, {})[attribute] = form.get(name, "")
    root = {"op": _op(nodes.get("", {}).get("op")), "rules": []}
    built = {"": root}
    for path in sorted((p for p in nodes if p), key=lambda p: [int(part) for part in p.split(".")]):
        parent = built.get(path.rpartition(".")[0])
        if parent is None or "rules" not in parent:
            continue  # an orphan (its group is gone): drop it
        data = nodes[path]
        if data.get("kind") == "group" or ("op" in data and "field" not in data):
            node = {"op": _op(data.get("op")), "rules": []}
        else:
            node = {"field": data.get("field", ""), "operator": data.get("operator", ""),
                    "value": data.get("value", ""), "was": data.get("was", data.get("field", "")),
                    "was_operator": data.get("was_operator", data.get("operator", ""))}
        parent["rules"].append(node)
        built[path] = node
    return root


def _op(value):
    return value if value in GROUP_OPS else "and"


def normalise(tree, catalogue):
    """After a field or operator changed: the new field gets its default operator and an empty value,
    and a new operator that takes another kind of value starts with an empty one.

    A rule whose field is unknown keeps what it has, so its error can be shown.
    """
    for node in tree["rules"]:
        if "rules" in node:
            normalise(node, catalogue)
            continue
        spec = catalogue.field(node.get("field"))
        was = node.pop("was", node.get("field"))
        was_operator = node.pop("was_operator", node.get("operator"))
        if spec is None:
            continue
        operators = OPERATORS[spec[1]]
        if was != node.get("field"):
            node["operator"], node["value"] = next(iter(operators)), ""
        elif node.get("operator") not in operators:
            node["operator"] = next(iter(operators))
        elif was_operator in operators and operators[was_operator][1] != operators[node["operator"]][1]:
            node["value"] = ""  # "in the last 30 days" -> "before": a number of days is not a date
        value_kind = operators[node["operator"]][1]
        if value_kind == "none":
            node["value"] = None
        elif value_kind == "status" and node.get("value") not in CONTACT_STATUSES:
            node["value"] = CONTACT_STATUSES[0]  # what the select shows first, so what is counted
        elif node.get("value") is None:
            node["value"] = ""
    return tree


def apply(tree, action):
    """(tree, message, focus): the tree after one builder action.

    message explains a refused action; focus names the control that should
    have the keyboard focus afterwards (the new rule's field, or the group's
    "Add rule" button after a removal), as "field-<id>" or "add-<id>".
    """
    verb, _, path = (action or "").partition(":")
    if verb not in ("add_rule", "add_group", "remove"):
        return tree, None, None
    target, parent, index = _find(tree, path)
    if target is None:
        return tree, None, None  # a stale button (the node is gone): nothing to do
    if verb == "remove":
        if parent is None:
            return tree, None, None
        del parent["rules"][index]
        parent_path = path.rpartition(".")[0]
        return tree, None, "add-" + (parent_path.replace(".", "-") or "top")
    if "rules" not in target:
        return tree, None, None
    if _count(tree) >= MAX_RULES:
        return tree, f"A segment can have at most {MAX_RULES} rules and groups.", None
    new_path = f"{path}.{len(target['rules'])}" if path else str(len(target["rules"]))
    if verb == "add_rule":
        target["rules"].append(dict(NEW_RULE))
        return tree, None, "field-" + new_path.replace(".", "-")
    if _depth(path) + 1 > MAX_DEPTH:
        return tree, f"Groups can be nested at most {MAX_DEPTH - 1} levels deep.", None
    target["rules"].append({"op": "or" if target["op"] == "and" else "and", "rules": [dict(NEW_RULE)]})
    return tree, None, "field-" + (new_path + ".0").replace(".", "-")


def _depth(path):
    """The level of the group at `path`: the top group is 1."""
    return 1 + (len(path.split(".")) if path else 0)


def _find(tree, path):
    """(node, parent, index in parent) for a path, or (None, None, None)."""
    if path == "":
        return tree, None, None
    node, parent, index = tree, None, None
    for part in path.split("."):
        if not part.isdigit() or "rules" not in node or int(part) >= len(node["rules"]):
            return None, None, None
        parent, index = node, int(part)
        node = node["rules"][index]
    return node, parent, index


def _count(group):
    return sum(1 + (_count(child) if "rules" in child else 0) for child in group["rules"])


def to_rules(tree):
    """The tree as rules JSON (builder-only keys dropped)."""
    if "rules" in tree:
        return {"op": tree["op"], "rules": [to_rules(child) for child in tree["rules"]]}
    return {"field": tree.get("field", ""), "operator": tree.get("operator", ""), "value": tree.get("value")}


def is_incomplete(rule, catalogue):
    """A rule still waiting for its value (just added, or its field just changed)."""
    spec = catalogue.field(rule.get("field"))
    if spec is None or rule.get("operator") not in OPERATORS[spec[1]]:
        return False
    needs = OPERATORS[spec[1]][rule["operator"]][1] in _NEEDS_VALUE
    return needs and str(rule.get("value") if rule.get("value") is not None else "").strip() == ""


def without_incomplete(tree, catalogue):
    """The rules with incomplete ones left out: what the live count counts."""
    kept = {"op": tree["op"], "rules": []}
    for child in tree["rules"]:
        if "rules" in child:
            kept["rules"].append(without_incomplete(child, catalogue))
        elif not is_incomplete(child, catalogue):
            kept["rules"].append(child)
    return kept


# --- What the template shows ------------------------------------------------------------

@dataclasses.dataclass
class Node:
    path: str
    number: str  # the path as people count: "2.3"
    is_group: bool
    depth: int = 1
    op: str = "and"
    children: list = dataclasses.field(default_factory=list)
    field: str = ""
    operator: str = ""
    value: str = ""
    value_kind: str = "none"
    operators: list = dataclasses.field(default_factory=list)
    unknown_field: bool = False
    error: str = ""

    @property
    def dom_id(self):
        return self.path.replace(".", "-") if self.path else "top"

    @property
    def can_add_group(self):
        return self.depth < MAX_DEPTH


def view(tree, catalogue, errors, show_incomplete=False):
    """The Node tree the builder template renders, with each error next to its rule.

    Errors of rules still waiting for a value are only shown when
    show_incomplete is set (after Save), so adding a rule is not an error.
    """
    return _view_group(tree, "", 1, catalogue, errors, show_incomplete)


def _view_group(group, path, depth, catalogue, errors, show_incomplete):
    node = Node(path=path, number=describe_path(path), is_group=True, depth=depth, op=group["op"],
                error=errors.get(path, ""))
    for index, child in enumerate(group["rules"]):
        child_path = f"{path}.{index}" if path else str(index)
        if "rules" in child:
            node.children.append(_view_group(child, child_path, depth + 1, catalogue, errors, show_incomplete))
        else:
            node.children.append(_view_rule(child, child_path, catalogue, errors, show_incomplete))
    return node


def _view_rule(rule, path, catalogue, errors, show_incomplete):
    field = rule.get("field") if isinstance(rule.get("field"), str) else ""
    node = Node(path=path, number=describe_path(path), is_group=False, field=field,
                operator=rule.get("operator") or "")
    value = rule.get("value")
    node.value = "" if value is None else str(value)
    spec = catalogue.field(field)
    if spec is None:
        node.unknown_field = True
    else:
        operators = OPERATORS[spec[1]]
        node.operators = [(name, label) for name, (label, _) in operators.items()]
        if node.operator in operators:
            node.value_kind = operators[node.operator][1]
    if path in errors and (show_incomplete or not is_incomplete(rule, catalogue)):
        node.error = errors[path]
    return node


def field_groups(catalogue):
    """The field select's option groups: [(label, [(name, label)])]."""
    contact = [(name, FIELDS[name][0]) for name in ("email", "domain", "name", "status", "created_at")]
    activity = [("last_activity_at", "Last activity"), ("list", "List membership"), ("tag", "Tags"),
                ("campaign", "Campaign activity")]
    custom = [(CUSTOM_PREFIX + key, f.label) for key, f in catalogue.custom_fields.items()
              if f.type in ("text", "number", "date", "boolean")]
    groups = [("Contact", contact), ("Lists and activity", activity)]
    if custom:
        groups.append(("Custom fields", custom))
    return groups


def state(team_id, tree, catalogue, show_incomplete=False):
    """Everything the builder needs after an edit: (root Node, errors, rules to count or None)."""
    rules = to_rules(tree)
    _, errors = check_rules(team_id, rules, catalogue)
    root = view(tree, catalogue, errors, show_incomplete)
    countable = to_rules(without_incomplete(tree, catalogue))
    _, count_errors = check_rules(team_id, countable, catalogue)
    return root, errors, (None if count_errors else countable)


def from_rules(rules):
    """The builder's tree for stored rules (a copy; anything malformed becomes an empty group)."""
    if not isinstance(rules, dict) or not isinstance(rules.get("rules"), list):
        return empty()
    tree = {"op": _op(rules.get("op")), "rules": []}
    for child in rules["rules"]:
        if isinstance(child, dict) and "rules" in child:
            tree["rules"].append(from_rules(child))
        elif isinstance(child, dict):
            tree["rules"].append({"field": child.get("field") if isinstance(child.get("field"), str) else "",
                                  "operator": child.get("operator") if isinstance(child.get("operator"), str) else "",
                                  "value": child.get("value")})
        else:
            tree["rules"].append({"field": "", "operator": "", "value": None})
    return tree


def has_incomplete(tree, catalogue):
    for child in tree["rules"]:
        if ("rules" in child and has_incomplete(child, catalogue)) or ("rules" not in child
                                                                         and is_incomplete(child, catalogue)):
            return True
    return False


def campaign_ids(tree):
    """Campaign ids the rules name (so the select can show an old campaign too)."""
    found = set()
    for child in tree["rules"]:
        if "rules" in child:
            found |= campaign_ids(child)
        elif child.get("field") == "campaign" and str(child.get("value") or "").isdigit():
            found.add(int(child["value"]))
    return found


def rule_nodes(node):
    """Every rule Node under a group Node, in order (for the out-of-band error updates)."""
    for child in node.children:
        if child.is_group:
            yield from rule_nodes(child)
        else:
            yield child


def with_errors(node):
    """Every Node (rule or group) under and including `node` that shows an error."""
    if node.error:
        yield node
    for child in node.children:
        yield from with_errors(child)
