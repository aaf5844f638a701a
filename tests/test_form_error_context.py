"""Error paths render their page with the same context as the GET (issue 9, point 14's sweep).

The campaign editor's 500 came from an error path that rendered the template without one
of the GET's variables. A sweep of `except ...Error` in app/*/views.py found three more that
left something out: these tests post input that fails and check the page is the whole page.
"""
import datetime

from app import security
from app.auth.services import create_user
from app.models import Campaign
from app.models import Invite
from app.models import Segment
from app.models import Team
from app.models import utcnow
from tests.conftest import Browserish
from tests.conftest import soup


def test_refused_segment_delete_still_lists_the_campaigns_using_it(web, admin):
    team = Team.get(Team.name == "Acme")
    segment = Segment.create(team=team, name="VIP", rules={})
    Campaign.create(team=team, name="Spring sale", audience={"lists": [], "segments": [segment.id]})
    response = web.post(f"/segments/{segment.id}/delete")
    assert response.status_code == 422
    page = soup(response)
    assert "Spring sale" in page.select_one("main ul").get_text()
    assert "No contact is changed" not in page.text  # it used to say the delete would go ahead


def test_refused_instance_settings_still_say_the_password_is_kept(web, admin):
    good = {"base_url": "https://mail.example.com", "default_from_name": "Loft", "default_from_email": "loft@example.com",
            "smtp_host": "smtp.example.com", "smtp_port": "587", "smtp_tls": "starttls", "smtp_username": "me",
            "smtp_password": "app-specific-password"}
    assert web.post("/admin/settings", good).status_code == 302
    refused = web.post("/admin/settings", dict(good, smtp_port="99999", smtp_password=""))
    assert refused.status_code == 422
    assert "Leave empty to keep the current one" in soup(refused).select_one("#h-smtp_password").text


def test_refused_invite_acceptance_tells_an_existing_account_to_sign_in(app, admin):
    team = Team.get(Team.name == "Acme")
    token = "a-test-invitation-token"
    Invite.create(team=team, email="late@example.com", role="author", token_hash=security.hash_token(token),
                  expires_at=utcnow() + datetime.timedelta(days=1))
    create_user("late@example.com", "an existing password")  # made an account meanwhile
    visitor = Browserish(app.test_client())
    response = visitor.post(f"/teams/join/{token}", {"name": "Late", "password": "another password 1",
                                                     "password_confirm": "another password 1"})
    assert response.status_code == 422
    page = soup(response)
    assert "You already have an account" in page.text and page.select_one("#f-password") is None
