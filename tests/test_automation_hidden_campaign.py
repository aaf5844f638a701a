"""An automation email step's hidden campaign is the automation's: no campaign page, report, AI helper or API call
finds it (404), so nobody edits, sends, pauses or cancels it behind the automation's back; the team's own campaigns
are found as before."""
from app.automations import mail
from app.models import Automation
from app.models import AutomationStep
from app.models import Campaign
from app.models import Team


def hidden_and_own(admin):
    team = Team.get(Team.name == "Acme")
    automation = Automation.create(team=team, name="Welcome", state="live", trigger={"kind": "manual"}, goal={},
                                   from_name="Acme", from_email="news@acme.example")
    step = AutomationStep.create(automation=automation, kind="email", config={
        "subject": "Welcome", "preheader": "", "kind": "html", "body": "<p>Hi</p>", "template_id": None,
        "from_name": "", "from_email": ""})
    hidden = mail.campaign_for(step, automation)
    own = Campaign.create(team=team, name="Spring news", from_email="news@acme.example", subject="Hi",
                          body="<p>Hi</p>", audience={"lists": []})
    return team, hidden, own


def test_the_hidden_campaign_is_not_found_by_pages_or_the_api(app, web, admin, api):
    _team, hidden, own = hidden_and_own(admin)
    for path in ("/campaigns/{}", "/campaigns/{}/preview", "/reports/campaigns/{}"):
        assert web.get(path.format(own.id)).status_code == 200, path
        assert web.get(path.format(hidden.id)).status_code == 404, path
    cancelled = web.post(f"/campaigns/{hidden.id}/cancel", {})
    assert cancelled.status_code == 404
    assert Campaign.get_by_id(hidden.id).state == hidden.state  # nothing changed
    assert api.get(f"/api/v1/campaigns/{own.id}").status_code == 200
    assert api.get(f"/api/v1/campaigns/{hidden.id}").status_code == 404
    assert api.post(f"/api/v1/campaigns/{hidden.id}/pause").status_code == 404
