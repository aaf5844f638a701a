"""The automation webhook step's signing (app/automations/flow.py makes and keeps the secret, app/automations/steps.py
signs): through the builder's routes, the engine's real POST to a loopback receiver, and the documented check."""
import json

from app.automations import flow
from app.automations import runs
from app.automations import scheduler
from app.models import Automation
from app.models import AutomationStep
from app.models import Contact
from app.models import Team
from app.models import utcnow
from app.webhooks import delivery
from tests.conftest import soup


def test_a_webhook_step_gets_a_signing_secret_and_its_requests_are_signed_with_it(app, web, admin, receiver):
    """Saving a webhook step makes its signing secret (kept encrypted, shown in its edit form, kept on later saves);
    the engine's POST carries X-Loft-Timestamp and X-Loft-Signature that the documented check accepts."""
    with app.app_context():
        series = flow.create_automation(Team.get(Team.name == "Acme"), admin, "", starter="welcome")
    added = web.post(f"/automations/{series.id}/steps", {"position": "top", "kind": "webhook"}, htmx=True)
    assert added.status_code == 200
    hook = AutomationStep.get((AutomationStep.automation == series.id) & (AutomationStep.kind == "webhook"))
    form = soup(web.get(f"/automations/{series.id}/steps/{hook.id}/edit", headers={"HX-Request": "true"}))
    assert form.select_one(f"#s{hook.id}-secret").text.strip() == "Made when you save this step."
    saved = web.post(f"/automations/{series.id}/steps/{hook.id}", {"url": "https://hooks.example.com/loft"},
                     htmx=True)
    assert saved.status_code == 200
    stored = AutomationStep.get_by_id(hook.id).config["secret"]
    form = soup(web.get(f"/automations/{series.id}/steps/{hook.id}/edit", headers={"HX-Request": "true"}))
    shown = form.select_one(f"#s{hook.id}-secret")["value"]
    assert len(shown) >= 32 and shown not in stored  # stored encrypted, shown in plain text to the editor
    assert form.select_one("input[name=secret]") is None  # never a form field that a post could set
    web.post(f"/automations/{series.id}/steps/{hook.id}", {"url": "https://hooks.example.com/other"}, htmx=True)
    assert AutomationStep.get_by_id(hook.id).config["secret"] == stored  # a receiver's secret survives an edit

    # The engine posts (to the loopback receiver: the engine trusts a stored config, the form allows only https).
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    server = receiver(200)
    config = dict(AutomationStep.get_by_id(hook.id).config, url=server.url)
    AutomationStep.update(config=config, next_id=None).where(AutomationStep.id == hook.id).execute()
    Automation.update(state="live", first_step_id=hook.id).where(Automation.id == series.id).execute()
    team = Team.get(Team.name == "Acme")
    contact = Contact.create(team=team, email="ada@example.com", domain="example.com", status="active")
    with app.app_context():
        runs.enter(Automation.get_by_id(series.id), contact, {}, utcnow())
        scheduler.tick(utcnow())
    (request,) = server.requests
    headers = request["headers"]
    body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
    assert delivery.verify(shown, headers["X-Loft-Timestamp"], body, headers["X-Loft-Signature"])
    assert not delivery.verify("another secret", headers["X-Loft-Timestamp"], body, headers["X-Loft-Signature"])
    assert json.loads(body)["contact"]["email"] == "ada@example.com"
