"""Teams and roles: the role matrix on every route, team isolation, invitations, the last-admin rule."""
import pytest

from app.api.keys import create_key
from app.models import ApiKey
from app.models import Invite
from app.models import Membership
from app.models import Team
from app.models import User
from app.teams.permissions import PERMISSIONS
from app.teams.permissions import ROLE_PERMISSIONS
from app.teams.permissions import can
from tests.accounts_support import make_member
from tests.conftest import Browserish
from tests.conftest import link_in
from tests.conftest import soup

# Endpoints anyone may reach signed out, and those only the instance admin may use.
PUBLIC = {"static", "dashboard.index", "auth.setup", "auth.login", "auth.second_factor", "auth.logout",
          "auth.request_reset", "auth.reset_password", "teams.accept", "health.status"}
INSTANCE_ADMIN = {"admin.settings", "admin.ai", "admin.ai_test_connection", "admin.ai_team", "catcher.index", "catcher.show", "catcher.html", "catcher.raw", "catcher.clear"}
# Signed-in pages that belong to the person, not to a team.
PERSONAL = {"auth.account", "auth.change_password", "auth.sign_out_everywhere", "auth.setup_2fa",
            "auth.disable_2fa", "auth.new_recovery_codes", "teams.list_teams", "teams.new_team", "teams.switch",
            "teams.remove_member"}


def test_every_endpoint_declares_who_may_use_it(app):
    for endpoint, view in app.view_functions.items():
        if endpoint in PUBLIC or endpoint in INSTANCE_ADMIN or endpoint in PERSONAL:
            continue
        if getattr(view, "instance_admin", False):  # @instance_admin_required
            continue
        if getattr(view, "public", False):  # public pages of later areas (sign-up forms, tracking) say so
            continue
        if getattr(view, "api_permission", None):  # /api/v1 operations: the key's role, checked by @operation
            assert view.api_permission in PERMISSIONS, endpoint
            continue
        assert getattr(view, "permission", None), f"{endpoint} has no @require(permission)"


def _team_routes(app):
    """Every team-scoped route without URL parameters, with its methods and permission."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "permission", None)
        if permission and not rule.arguments:
            yield rule, permission


@pytest.mark.parametrize("role", ["admin", "manager", "author", "guest"])
def test_role_matrix_on_every_team_route(app, admin, role):
    team = Team.get(Team.name == "Acme")
    _, member = make_member(app, team, role)
    checked = 0
    for rule, permission in _team_routes(app):
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method == "GET":
                response = member.get(rule.rule)
            else:
                response = member.post(rule.rule, {})
            allowed = can(role, permission)
            assert (response.status_code == 403) != allowed, (role, method, rule.rule, response.status_code)
            checked += 1
    assert checked >= 4


def test_the_matrix_itself():
    assert ROLE_PERMISSIONS["admin"] >= {"manage_billing", "manage_domains", "export_data", "manage_members"}
    assert not ({"manage_billing", "manage_domains", "export_data", "manage_api_keys"} & ROLE_PERMISSIONS["manager"])
    assert "manage_api_keys" in ROLE_PERMISSIONS["admin"]
    assert {"edit_content"} <= ROLE_PERMISSIONS["author"] and "send" not in ROLE_PERMISSIONS["author"]
    assert ROLE_PERMISSIONS["guest"] == {"view"}


def test_guest_sees_members_but_no_management_controls(app, admin):
    team = Team.get(Team.name == "Acme")
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get("/teams/members"))
    assert page.select("table tbody tr")
    assert page.select_one("#f-invite-email") is None
    assert not page.select("select[name=role]")


def test_forbidden_is_a_clear_page(app, admin):
    team = Team.get(Team.name == "Acme")
    _, author = make_member(app, team, "author")
    response = author.get("/teams/settings")
    assert response.status_code == 403
    assert "Your role (Author) does not allow this" in soup(response).select_one(".error-page").text


def test_instance_pages_are_for_the_instance_admin_only(app, admin):
    team = Team.get(Team.name == "Acme")
    _, team_admin = make_member(app, team, "admin", "teamadmin@example.com")
    for path in ("/admin/settings", "/outbox/"):
        assert team_admin.get(path).status_code == 403
    # Every page marked @instance_admin_required, whatever area it belongs to.
    marked = 0
    for rule in app.url_map.iter_rules():
        if getattr(app.view_functions[rule.endpoint], "instance_admin", False) and not rule.arguments:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                response = team_admin.get(rule.rule) if method == "GET" else team_admin.post(rule.rule, {})
                assert response.status_code == 403, (method, rule.rule, response.status_code)
                marked += 1
    assert marked >= 4


# --- Isolation ------------------------------------------------------------------

def test_another_teams_ids_are_not_found(app, web, admin):
    acme = Team.get(Team.name == "Acme")
    other = Team.create(name="Other")
    outsider, _ = make_member(app, other, "guest", "outsider@example.com")
    other_member = Membership.get(Membership.user == outsider)
    invite = Invite.create(team=other, email="x@example.com", role="guest", token_hash="h",
                           expires_at="2999-01-01 00:00:00")
    assert web.post(f"/teams/members/{other_member.id}/role", {"role": "admin"}).status_code == 404
    assert web.post(f"/teams/members/{other_member.id}/remove").status_code == 404
    assert web.post(f"/teams/invites/{invite.id}/revoke").status_code == 404
    other_key, _ = create_key(other, name="theirs", role="admin")
    assert web.post(f"/api-keys/{other_key.id}/revoke").status_code == 404
    assert ApiKey.get_by_id(other_key.id).revoked_at is None
    assert Membership.get_by_id(other_member.id).role == "guest"
    assert Invite.get_or_none(Invite.id == invite.id) is not None
    # An id past what a row can hold is not found either, rather than an error from the database.
    for path in ("/contacts/2147483648", f"/contacts/{2**70}", f"/campaigns/{2**70}"):
        assert web.get(path).status_code == 404, path
    assert web.post(f"/teams/members/{2**70}/remove").status_code == 404
    # Also with a method only a sibling route of the same path has (it read as 405 before).
    assert web.post("/segments/2147483648").status_code == 404
    assert web.client.put("/segments/1").status_code == 405  # a method the path has no route for still is
    # Switching to a team you do not belong to is refused the same way.
    assert web.post("/teams/switch", {"team_id": other.id}).status_code == 404
    assert User.get_by_id(admin.id).current_team_id == acme.id


def test_team_switcher_and_new_team(web, admin):
    response = web.post("/teams/new", {"name": "Side project"})
    assert response.status_code == 302
    side = Team.get(Team.name == "Side project")
    assert Membership.get(Membership.team == side).role == "admin"
    page = soup(web.get("/dashboard"))
    assert page.select_one("h1").text == "Side project"
    options = [o.text for o in page.select("#team-switch option")]
    assert options == ["Acme", "Side project"]
    acme = Team.get(Team.name == "Acme")
    web.post("/teams/switch", {"team_id": acme.id, "next": "/teams/members"})
    assert soup(web.get("/dashboard")).select_one("h1").text == "Acme"


def test_new_team_needs_a_name(web, admin):
    response = web.post("/teams/new", {"name": "  "})
    assert response.status_code == 422
    assert "Give the team a name" in soup(response).select_one("#e-name").text


# --- Invitations ------------------------------------------------------------------

def _invite(web, email, role="author"):
    response = web.post("/teams/members/invite", {"email": email, "role": role}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def _accept_link(email):
    from app.models import CaughtMessage
    from app.catcher.services import parse
    message = CaughtMessage.select().order_by(CaughtMessage.id.desc()).first()
    assert message is not None and email in message.recipients
    return link_in(parse(message)["text"], "/teams/join/").split("http://loft.test", 1)[1]


def test_invite_by_email_and_accept_as_a_new_user(app, web, admin, catcher):
    response = _invite(web, "New.Person@Example.com", "manager")
    fragment = soup(response)
    assert fragment.select_one("#members") is not None
    assert fragment.select_one("body") is None  # a fragment, not a page
    assert "Invitation sent to new.person@example.com" in fragment.text
    path = _accept_link("new.person@example.com")
    newcomer = Browserish(app.test_client())
    page = soup(newcomer.get(path))
    assert "Join Acme" in page.select_one("h1").text
    response = newcomer.post(path, {"name": "Nia", "password": "newcomer password", "password_confirm": "newcomer password"})
    assert response.status_code == 302
    user = User.get(User.email == "new.person@example.com")
    assert Membership.get(Membership.user == user).role == "manager"
    assert newcomer.get("/teams/settings").status_code == 200  # managers manage settings
    # The link is single-use.
    assert Browserish(app.test_client()).get(path).status_code == 410


def test_existing_user_accepts_after_signing_in(app, web, admin, catcher):
    other = Team.create(name="Elsewhere")
    existing, existing_client = make_member(app, other, "admin", "existing@example.com")
    _invite(web, "existing@example.com", "guest")
    path = _accept_link("existing@example.com")
    assert existing_client.post(path).status_code == 302
    acme = Team.get(Team.name == "Acme")
    assert Membership.get(Membership.user == existing, Membership.team == acme).role == "guest"


def test_invite_must_be_accepted_by_the_invited_address(app, web, admin, catcher):
    other = Team.create(name="Elsewhere")
    _, stranger = make_member(app, other, "admin", "stranger@example.com")
    _invite(web, "intended@example.com")
    path = _accept_link("intended@example.com")
    response = stranger.post(path)
    assert response.status_code == 422
    assert "for intended@example.com" in soup(response).text


def test_invite_errors(web, admin):
    bad = web.post("/teams/members/invite", {"email": "nope", "role": "author"}, htmx=True)
    assert bad.status_code == 422
    assert "not valid" in soup(bad).select_one(".flash-error").text
    self_invite = web.post("/teams/members/invite", {"email": admin.email, "role": "author"}, htmx=True)
    assert self_invite.status_code == 422
    assert "already a member" in soup(self_invite).text
    bad_role = web.post("/teams/members/invite", {"email": "x@example.com", "role": "owner"}, htmx=True)
    assert bad_role.status_code == 422


def test_manager_cannot_create_or_demote_administrators(app, admin):
    team = Team.get(Team.name == "Acme")
    _, manager = make_member(app, team, "manager")
    assert manager.post("/teams/members/invite", {"email": "boss@example.com", "role": "admin"}).status_code == 422
    admin_membership = Membership.get(Membership.user == admin)
    response = manager.post(f"/teams/members/{admin_membership.id}/role", {"role": "guest"}, htmx=True)
    assert response.status_code == 422
    assert Membership.get_by_id(admin_membership.id).role == "admin"


def test_revoke_invite(web, admin, catcher):
    _invite(web, "maybe@example.com")
    invite = Invite.get(Invite.email == "maybe@example.com")
    response = web.post(f"/teams/invites/{invite.id}/revoke", htmx=True)
    assert "Invitation withdrawn" in soup(response).text
    assert Invite.get_or_none(Invite.id == invite.id) is None


# --- The last Administrator ------------------------------------------------------

def test_the_last_administrator_cannot_be_demoted_or_removed_or_leave(app, web, admin):
    membership = Membership.get(Membership.user == admin)
    team = membership.team
    _, other_admin_client = make_member(app, team, "manager", "second@example.com")
    response = other_admin_client.post(f"/teams/members/{membership.id}/role", {"role": "guest"}, htmx=True)
    assert response.status_code == 422
    assert "Only an Administrator" in soup(response).select_one("#members-error").text
    assert Membership.get_by_id(membership.id).role == "admin"


def test_the_sole_administrator_leaving_is_told_why_on_the_members_page(app, web, admin):
    """Issue 9: "Leave team" (a plain form) ended on a 422 page at its POST URL."""
    membership = Membership.get(Membership.user == admin)
    leave = web.post(f"/teams/members/{membership.id}/remove")
    assert leave.status_code == 303 and leave.headers["Location"].endswith("/teams/members")
    page = soup(web.get("/teams/members"))
    assert "only Administrator, so you cannot leave it yet" in page.select_one(".flash-error").text
    assert page.select_one("#members") is not None
    assert Membership.get_by_id(membership.id).role == "admin"
    # The same for the other member actions posted without htmx (no JavaScript).
    second, _ = make_member(app, membership.team, "author", "second@example.com")
    changed = web.post(f"/teams/members/{Membership.get(Membership.user == second).id}/role", {"role": "guest"})
    assert changed.status_code == 303
    assert "second@example.com is now Guest" in soup(web.get("/teams/members")).select_one(".flash-success").text


def test_re_inviting_says_when_the_offered_role_changes(web, admin, catcher):
    """Issue 9: re-inviting an address silently changed the role of its pending invitation."""
    first = soup(_invite(web, "pat@example.com", "guest")).select_one(".flash-success").text
    assert first == "Invitation sent to pat@example.com as Guest."
    again = soup(_invite(web, "pat@example.com", "guest")).select_one(".flash-success").text
    assert "Invitation sent again to pat@example.com as Guest (the earlier link no longer works)" in again
    changed = soup(_invite(web, "pat@example.com", "manager")).select_one(".flash-success").text
    assert ("pat@example.com already had a pending invitation as Guest: it is replaced by this one as Manager"
            in changed)
    assert [(i.email, i.role) for i in Invite.select()] == [("pat@example.com", "manager")]


def test_invitations_per_team_and_hour_are_capped(app, web, admin, catcher):
    """Invitations leave through the instance's server with the team's name in them: not a mass mailer."""
    app.config["INVITES_PER_HOUR"] = 2
    _invite(web, "a@example.com")
    _invite(web, "b@example.com")
    refused = web.post("/teams/members/invite", {"email": "c@example.com", "role": "author"}, htmx=True)
    assert refused.status_code == 422
    assert "2 invitations in the last hour" in soup(refused).select_one(".flash-error").text
    assert not Invite.select().where(Invite.email == "c@example.com").exists()


def test_admin_can_hand_over_then_leave(app, web, admin):
    membership = Membership.get(Membership.user == admin)
    second, _ = make_member(app, membership.team, "author", "heir@example.com")
    second_membership = Membership.get(Membership.user == second)
    assert web.post(f"/teams/members/{second_membership.id}/role", {"role": "admin"}, htmx=True).status_code == 200
    assert web.post(f"/teams/members/{membership.id}/remove").status_code == 302
    assert Membership.get_or_none(Membership.id == membership.id) is None
    # With no team left, the person is sent to create one.
    assert web.get("/dashboard").headers["Location"].startswith("/teams/new")


def test_role_change_fragment_and_full_page(web, app, admin):
    team = Team.get(Team.name == "Acme")
    user, _ = make_member(app, team, "guest")
    member = Membership.get(Membership.user == user)
    fragment = web.post(f"/teams/members/{member.id}/role", {"role": "author"}, htmx=True)
    assert fragment.headers["Vary"] == "HX-Request" or "HX-Request" in fragment.headers["Vary"]
    assert soup(fragment).select_one("body") is None
    assert Membership.get_by_id(member.id).role == "author"
    page = web.post(f"/teams/members/{member.id}/role", {"role": "guest"})  # no htmx: back to the members page
    assert page.status_code == 303 and page.headers["Location"].endswith("/teams/members")
    assert soup(web.get("/teams/members")).select_one("body") is not None


# --- Team settings -----------------------------------------------------------

def test_team_settings_save_and_validate(web, admin):
    response = web.post("/teams/settings", {"name": "Acme Inc", "default_from_name": "Acme",
                                            "default_from_email": "News@Acme.example", "postal_address": "1 Main St",
                                            "time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    team = Team.get_by_id(Membership.get(Membership.user == admin).team_id)
    assert (team.name, team.default_from_email, team.time_zone) == ("Acme Inc", "news@acme.example", "Europe/Berlin")
    bad = web.post("/teams/settings", {"name": "Acme Inc", "time_zone": "Mars/Olympus"}, htmx=True)
    assert bad.status_code == 422
    assert "time zone" in soup(bad).select_one("#e-time_zone").text
    assert soup(bad).select_one("#team-settings") is not None
    assert Team.get_by_id(team.id).time_zone == "Europe/Berlin"


# --- Who may create teams (issue 9) -------------------------------------------------------

def _set_team_creation(app, rule):
    from app import settings as instance_settings
    with app.app_context():
        instance_settings.save_settings({"team_creation": rule})


def test_a_guest_cannot_make_a_team_of_their_own_by_default(app, admin):
    """Issue 9: a Guest created a team (becoming its Administrator) to send mail in its name."""
    team = Team.get(Team.name == "Acme")
    _, guest = make_member(app, team, "guest")
    page = guest.get("/teams/new")
    assert page.status_code == 403
    assert "teams are created by the instance administrator" in soup(page).select_one("#team-creation-refused").text
    assert soup(page).select_one("form[action='/teams/new']") is None
    response = guest.post("/teams/new", {"name": "My relay"})
    assert response.status_code == 403
    assert not Team.select().where(Team.name == "My relay").exists()


def test_who_may_create_teams_is_the_instance_admins_call(app, web, admin):
    team = Team.get(Team.name == "Acme")
    _, team_admin = make_member(app, team, "admin", "teamadmin@example.com")
    _, guest = make_member(app, team, "guest")
    # Default ("invited"): people who administer a team may, Guests may not.
    assert team_admin.post("/teams/new", {"name": "Side"}).status_code == 302
    _set_team_creation(app, "anyone")
    assert guest.post("/teams/new", {"name": "Guest's own"}).status_code == 302
    _set_team_creation(app, "admin")
    refused = team_admin.post("/teams/new", {"name": "Another"})
    assert refused.status_code == 403
    assert "only the instance administrator creates teams" in soup(refused).text
    assert web.post("/teams/new", {"name": "By the instance admin"}).status_code == 302
    assert {t.name for t in Team.select()} == {"Acme", "Side", "Guest's own", "By the instance admin"}


def test_the_team_creation_setting_is_on_the_instance_settings_page(app, web, admin):
    form = {"base_url": "https://mail.example.com", "default_from_email": "loft@example.com",
            "smtp_host": "127.0.0.1", "smtp_port": "1025", "smtp_tls": "none"}
    bad = web.post("/admin/settings", dict(form, team_creation="everybody"), htmx=True)
    assert bad.status_code == 422
    assert "Choose who may create teams" in soup(bad).select_one("#e-team_creation").text
    web.post("/admin/settings", dict(form, team_creation="admin"))
    page = soup(web.get("/admin/settings"))
    assert page.select_one("input[name=team_creation][value=admin]").has_attr("checked")
    from app import settings as instance_settings
    with app.app_context():
        assert instance_settings.get_settings()["team_creation"] == "admin"


def test_team_settings_say_when_the_from_address_cannot_send_yet(app, web, admin):
    """Any From address may be saved, but the page says that mail from it waits for a verified domain."""
    from app.models import SenderDomain
    from app.models import utcnow
    form = {"name": "Acme", "default_from_name": "Acme", "default_from_email": "news@acme.example",
            "postal_address": "1 Main St", "time_zone": "UTC"}
    web.post("/teams/settings", form)
    warning = soup(web.get("/teams/settings")).select_one(".flash-warning")
    assert warning is not None and "until acme.example is verified under Sender domains" in warning.text
    team = Team.get(Team.name == "Acme")
    SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
    web.post("/teams/settings", form)
    assert soup(web.get("/teams/settings")).select_one(".flash-warning") is None
