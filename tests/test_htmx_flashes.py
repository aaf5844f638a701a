"""Messages flashed by HTMX requests show in the response that htmx swaps in (issue 9, point 16).

A fragment does not extend base.html, so a flash made before one was left in the
session and appeared later on an unrelated page. app/htmx.py now appends the
messages out of band (into #flashes) to every HTMX fragment.
"""
import pytest
from flask import flash
from flask import redirect
from flask import render_template_string

from app.htmx import hx_redirect
from app.models import Team
from app import security
from app.models import SmtpAccount
from tests.conftest import free_port
from tests.conftest import soup


@pytest.fixture
def admin(admin, web):
    """The instance admin, with /setup's welcome message already shown (it would ride along otherwise)."""
    web.get("/teams/members")
    return admin


def oob_flashes(response):
    box = soup(response).select_one("#flashes")
    assert box is not None, response.get_data(as_text=True)[:2000]
    assert box.get("hx-swap-oob") == "innerHTML"
    return box.get_text(" ", strip=True)


def page_flashes(response):
    box = soup(response).select_one("main #flashes")
    return box.get_text(" ", strip=True) if box is not None else ""


def test_team_settings_saved_by_htmx_says_so_in_the_fragment_and_renames_the_header(app, admin, web):
    response = web.post("/teams/settings", {"name": "Acme Renamed", "time_zone": "Europe/Berlin"}, htmx=True)
    assert response.status_code == 200
    assert soup(response).select_one("#team-settings") is not None
    assert "Team settings saved." in oob_flashes(response)
    switcher = soup(response).select_one("#team-switcher")
    assert switcher.get("hx-swap-oob") == "true"
    assert switcher.select_one("option[selected]").get_text() == "Acme Renamed"
    assert Team.get(Team.name == "Acme Renamed").time_zone == "Europe/Berlin"
    # The message was delivered: the next full page does not show it again.
    assert "Team settings saved." not in page_flashes(web.get("/teams/members"))


def test_team_settings_without_htmx_still_post_redirect_get(app, admin, web):
    response = web.post("/teams/settings", {"name": "Acme", "time_zone": "UTC"})
    assert response.status_code == 302
    assert "Team settings saved." in page_flashes(web.get(response.headers["Location"]))


def test_a_refused_team_settings_form_shows_no_switcher_and_keeps_the_input(app, admin, web):
    response = web.post("/teams/settings", {"name": "", "time_zone": "UTC"}, htmx=True)
    assert response.status_code == 422
    assert soup(response).select_one("#team-switcher") is None
    assert soup(response).select_one("#flashes") is None


def admin_form(**overrides):
    form = {"base_url": "http://loft.test", "default_from_name": "Loft", "default_from_email": "loft@example.com",
            "postal_address": "1 Main St", "smtp_host": "127.0.0.1", "smtp_port": "1025", "smtp_tls": "none",
            "smtp_username": ""}
    form.update(overrides)
    return form


def test_instance_settings_saved_by_htmx_say_so_in_the_fragment(app, admin, web):
    response = web.post("/admin/settings", admin_form(default_from_name="Loft Mail"), htmx=True)
    assert response.status_code == 200
    assert soup(response).select_one("form#instance-settings") is not None
    assert soup(response).select_one("#f-default_from_name")["value"] == "Loft Mail"
    assert "Instance settings saved." in oob_flashes(response)
    assert "Instance settings saved." not in page_flashes(web.get("/teams/members"))


@pytest.fixture
def test_routes(app):
    """Views of each kind, registered before the app's first request."""
    def fragment():
        flash("Saved by a fragment view.", "success")
        return render_template_string('<section id="thing">thing</section>')

    def redirected():
        flash("Saved, then redirected.", "success")
        return redirect("/_test/plain")

    def plain():
        return render_template_string('<section id="thing">plain</section>')

    def navigating():
        flash("Shown on the next page.", "info")
        return hx_redirect("/teams/members")

    for name, view in (("fragment", fragment), ("redirected", redirected), ("plain", plain),
                       ("navigating", navigating)):
        app.add_url_rule(f"/_test/{name}", name, view, methods=["GET", "POST"])


def test_every_view_that_flashes_before_a_fragment_gets_its_message_shown(test_routes, admin, web):
    """The pattern at its cause: flash, then a fragment (directly or after a redirect) or an HX-Redirect."""
    assert "Saved by a fragment view." in oob_flashes(web.post("/_test/fragment", htmx=True))
    followed = web.post("/_test/redirected", htmx=True, follow_redirects=True)
    assert "Saved, then redirected." in oob_flashes(followed)
    # Nothing flashed: the fragment is left exactly as the view made it.
    assert web.client.get("/_test/plain", headers={"HX-Request": "true"}).get_data(as_text=True) == \
        '<section id="thing">plain</section>'
    # htmx loads another page: the message waits for that page instead.
    response = web.post("/_test/navigating", htmx=True)
    assert "flashes" not in response.get_data(as_text=True)
    assert "Shown on the next page." in page_flashes(web.get("/teams/members"))


def test_a_connection_test_updates_the_cards_last_test_line_at_once(app, admin, web):
    with app.app_context():
        password = security.encrypt("secret")
    account = SmtpAccount.create(team=Team.get(Team.name == "Acme"), name="Relay", host="127.0.0.1",
                                 port=free_port(), tls_mode="starttls", username="ada@example.com",
                                 password=password, per_day=1000, max_connections=2)
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id} .last-test")
    assert "Never tested" in card.get_text()
    response = web.post(f"/sending/accounts/{account.id}/test", htmx=True)
    line = soup(response).select_one(f"#last-test-{account.id}")
    assert line is not None and line.get("hx-swap-oob") == "true"
    assert "Failed" in line.get_text() and "Never tested" not in line.get_text()
    assert "Connection refused" in line.get_text()
    # The full page (no htmx) shows the result once, without an out-of-band copy.
    page = soup(web.post(f"/sending/accounts/{account.id}/test"))
    assert page.select_one(f"#last-test-{account.id}") is None
