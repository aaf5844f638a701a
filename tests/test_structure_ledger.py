"""Send rows have one writer: app/sending/ledger.py, through named moves. Checked like behaviour, so a
second writer cannot come back.

- Nothing outside the ledger calls Send.update / insert / insert_many / insert_from / create /
  bulk_create / bulk_update / replace / get_or_create / delete, builds a Send(...) to save it, or
  calls .save() / .delete_instance() on a Send it loaded.
- Nothing outside the ledger hands Send columns to app.db's executemany builders (update_many,
  insert_many).
- No SQL text outside the ledger writes the send table (by name or through Send._meta.table_name).
- Campaign.state is changed only by app/campaigns/states.py (transition() checks each move), never by
  a Campaign.update(state=...) or an assignment to `.state` elsewhere.
- The statuses are the stored strings (SendStatus, CampaignState, ContactStatus), so no data
  migration was needed.
"""
import ast
import re

from app.config import ROOT
from app.models import CampaignState
from app.models import ContactStatus
from app.models import SendStatus

CODE_DIRS = ("app", "tasks", "migrations")
WRITER = ROOT / "app" / "sending" / "ledger.py"
STATE_WRITER = ROOT / "app" / "campaigns" / "states.py"
WRITING = {"update", "insert", "insert_many", "insert_from", "create", "bulk_create", "bulk_update", "replace",
           "replace_many", "get_or_create", "delete"}
LOADING = {"get", "get_or_none", "get_by_id", "first", "select"}  # a Send instance comes from these
BUILDERS = {"update_many", "insert_many"}
WRITE_SQL = re.compile(
    r"""(?:UPDATE|INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|DELETE\s+FROM)\s+"""
    r"""(?:["'`]?send["'`]?(?![\w.])|\{[^}]*\bSend\._meta)""", re.I)


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def is_send_model(node):
    """`Send` or `models.Send`."""
    if isinstance(node, ast.Name):
        return node.id == "Send"
    return isinstance(node, ast.Attribute) and node.attr == "Send" and isinstance(node.value, ast.Name) \
        and node.value.id == "models"


def starts_at_send(node):
    """Whether an expression is a chain of calls and attributes that begins at the Send model
    (Send.get(...), Send.select(...).where(...).first(), Send(...))."""
    while True:
        if is_send_model(node):
            return True
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def mentions_send_column(node):
    return any(isinstance(n, ast.Attribute) and is_send_model(n.value) for n in ast.walk(node))


def send_writes(source):
    """(line, what) for every Send write in `source`."""
    tree = ast.parse(source)
    loaded = set()  # names bound to a Send loaded or built here
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and starts_at_send(node.value):
            loaded.update(t.id for t in node.targets if isinstance(t, ast.Name))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITING and is_send_model(func.value):
            found.append((node.lineno, f"Send.{func.attr}"))
        elif isinstance(func, ast.Attribute) and func.attr in ("save", "delete_instance") and (
                (isinstance(func.value, ast.Name) and func.value.id in loaded) or starts_at_send(func.value)):
            found.append((node.lineno, f"Send .{func.attr}()"))
        elif isinstance(func, (ast.Name, ast.Attribute)) and getattr(func, "id", getattr(func, "attr", "")) \
                in BUILDERS and any(mentions_send_column(arg) for arg in node.args + [k.value for k in node.keywords]):
            found.append((node.lineno, f"{getattr(func, 'id', getattr(func, 'attr', ''))}(Send columns)"))
    return found


def state_writes(source):
    """(line, what) for every write of Campaign.state in `source` (Campaign is the one model with a
    `state` column, so any `x.state = ...` is one)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [(node.lineno, ".state =") for t in targets if isinstance(t, ast.Attribute) and t.attr == "state"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITING \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "Campaign" \
                and "state" in [k.arg for k in node.keywords]:
            found.append((node.lineno, f"Campaign.{node.func.attr}(state=...)"))
        elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Attribute) and k.attr == "state" and isinstance(k.value, ast.Name)
                and k.value.id == "Campaign" for k in node.keys):
            found.append((node.lineno, "{Campaign.state: ...}"))  # the values of an update
    return found


def write_statements(source):
    return [(source.count("\n", 0, match.start()) + 1, match.group(0)) for match in WRITE_SQL.finditer(source)]


def test_only_the_ledger_writes_send_rows():
    found = []
    for path in python_files():
        if path == WRITER:
            continue
        source = path.read_text(encoding="utf-8")
        found += [f"{rel(path)}:{line} {what}" for line, what in send_writes(source) + write_statements(source)]
    assert found == [], "write Send rows through app.sending.ledger (claim, record, skip_claimed, ...)"


def test_only_campaigns_states_changes_a_campaigns_state():
    found = []
    for path in python_files():
        if path == STATE_WRITER or rel(path).startswith("migrations"):
            continue
        found += [f"{rel(path)}:{line} {what}" for line, what in state_writes(path.read_text(encoding="utf-8"))]
    assert found == [], "change a campaign's state with app.campaigns.states.transition"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the check cannot pass by finding nothing."""
    def whats(source):
        return [what for _, what in send_writes(source)]

    assert whats("Send.update(status='sent').where(Send.id == 1).execute()\n") == ["Send.update"]
    assert whats("models.Send.insert_many(rows).execute()\n") == ["Send.insert_many"]
    assert whats("Send.create(campaign=1, email='a@example.com')\n") == ["Send.create"]
    assert whats("s = Send.get_by_id(4)\ns.status = 'sent'\ns.save()\n") == ["Send .save()"]
    assert whats("row = Send.select().where(Send.id == 1).first()\nrow.delete_instance()\n") == \
        ["Send .delete_instance()"]
    assert whats("Send(campaign=1).save()\n") == ["Send .save()"]
    assert whats("update_many([Send.status, Send.error], Send.id).run(rows)\n") == ["update_many(Send columns)"]
    assert whats("db.insert_many([Send.email])\n") == ["insert_many(Send columns)"]
    assert whats("Send.select().where(Send.status == 'sent').count()\nuser.save()\n"
                 "update_many([Contact.name], Contact.id)\nasyncio.Event()\n") == []
    assert write_statements('sql = "UPDATE send SET status = ? WHERE id = ?"\n')
    assert write_statements("sql = 'update \"send\" set \"status\" = %s'\n")
    assert write_statements('sql = f"UPDATE {Send._meta.table_name} SET status = \'sent\' WHERE id = {p}"\n')
    assert write_statements('sql = "INSERT OR IGNORE INTO send (campaign_id) VALUES (?)"\n')
    assert write_statements('sql = "DELETE FROM `send` WHERE id = ?"\n')
    assert not write_statements('sql = "UPDATE send_mark SET x = 1"\n')
    assert not write_statements('sql = "SELECT s.id FROM send s JOIN campaign c ON c.id = s.campaign_id"\n')
    assert not write_statements('text = "Update sending accounts"\n')
    assert any(path == WRITER for path in python_files())
    assert send_writes(WRITER.read_text(encoding="utf-8")), "app/sending/ledger.py itself is seen writing"

    def states(source):
        return [what for _, what in state_writes(source)]

    assert states("Campaign.update(state='paused').where(Campaign.id == 1).execute()\n") == ["Campaign.update(state=...)"]
    assert states("values = {Campaign.state: 'sending'}\nCampaign.update(values).execute()\n") == \
        ["{Campaign.state: ...}"]
    assert states("campaign.state = 'draft'\ncampaign.save()\n") == [".state ="]
    assert states("Campaign.update(state_reason='x', updated_at=now).execute()\nSmtpAccount.update(connection_state='ok')\n"
                  "if campaign.state == 'sending':\n    pass\n") == []
    assert states(STATE_WRITER.read_text(encoding="utf-8")), "app/campaigns/states.py itself is seen writing"


def test_the_statuses_are_the_stored_strings():
    # The values are what existing databases hold: changing one needs a data migration.
    assert {s.value for s in SendStatus} == {"queued", "sending", "deferred", "held", "sent", "failed", "bounced",
                                             "skipped"}
    assert SendStatus.CLAIMED == "sending" == CampaignState.SENDING  # the same word, two meanings
    assert {s.value for s in CampaignState} == {"draft", "scheduled", "sending", "paused", "completed", "failed",
                                                "cancelled"}
    assert {s.value for s in ContactStatus} == {"active", "unsubscribed", "bounced", "complained", "suppressed"}
