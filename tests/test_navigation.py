"""The main navigation is drawn from one list (app/navigation.py): each role is offered exactly the sections
whose pages let it in, the bar and the More menu together hold every section once, and the current section is
found by the longest matching endpoint prefix. The phone layout itself is checked in a real browser in
tests/test_accessibility_browser.py."""
import pytest

from app.navigation import BAR
from app.navigation import SECTIONS
from app.navigation import current_section
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup


def nav_links(page):
    """(label, href) of the bar's links and of the More menu's links, as two lists."""
    nav = page.select_one("nav.mainnav")
    bar = [(a.get_text(strip=True), a["href"]) for a in nav.select(":scope > ul > li > a")]
    more = [(a.get_text(strip=True), a["href"]) for a in nav.select(".more-menu .menu-list a")]
    return bar, more


def test_every_section_names_a_real_page_and_one_place(app):
    assert len({section.endpoint for section in SECTIONS}) == len(SECTIONS)
    for section in SECTIONS:
        assert section.endpoint in app.view_functions, section
        assert section.place in ("bar", "wide", "more")
    assert [s.label for s in SECTIONS if s.place == BAR] == ["Dashboard", "Campaigns", "Contacts", "Templates"]


def test_the_current_section_is_the_longest_matching_prefix():
    assert current_section("teams.settings").label == "Settings"
    assert current_section("teams.members").label == "Team"
    assert current_section("consent.forms").label == "Sign-up forms"
    assert current_section("consent.suppression").label == "Contacts"
    assert current_section("campaigns.calendar_page").label == "Calendar"
    assert current_section("campaigns.edit").label == "Campaigns"
    assert current_section("static") is None


def test_the_instance_admin_is_offered_every_section_once(web, admin):
    bar, more = nav_links(soup(web.get("/dashboard")))
    labels = [label for label, _ in bar] + [label for label, _ in more if label not in dict(bar)]
    assert sorted(labels) == sorted(section.label for section in SECTIONS)
    assert dict(bar)["Dashboard"] == "/dashboard"
    # The "wide" sections sit in both (the CSS shows each where it belongs); no other section repeats.
    assert {label for label, _ in bar} & {label for label, _ in more} == {"Automations", "Reports", "Team"}


@pytest.mark.parametrize("role", ["admin", "manager", "author", "guest"])
def test_each_role_is_offered_only_pages_it_may_open(app, admin, role):
    _, member = make_member(app, Team.get(Team.name == "Acme"), role)
    bar, more = nav_links(soup(member.get("/dashboard")))
    offered = dict(bar + more)
    for label, href in offered.items():
        assert member.get(href).status_code == 200, (role, label, href)
    assert "Outbox" not in offered and "Instance" not in offered  # only the instance's administrators
    assert ("Sending" in offered) == (role == "admin")  # manage_domains
    assert ("Imports" in offered) == (role != "guest")  # edit_content
    assert {"Dashboard", "Campaigns", "Contacts", "Templates", "Reports", "Account"} <= set(offered)


def test_the_header_has_the_team_switcher_and_an_account_menu(web, admin):
    page = soup(web.get("/contacts/"))
    header = page.select_one("header.topbar")
    switcher = header.select_one("form#team-switcher")
    assert switcher.has_attr("data-autosubmit") and switcher.select_one("label[for=team-switch]")
    assert switcher.select_one("input[name=next]")["value"] == "/contacts/"
    menu = header.select_one("details.account-menu")
    assert admin.email in menu.select_one("summary")["aria-label"]
    links = {a.get_text(strip=True): a["href"] for a in menu.select("a")}
    assert links == {"Your account": "/account", "Notifications": "/notices/preferences", "Your teams": "/teams/",
                     "New team": "/teams/new"}
    sign_out = menu.select_one("form")
    assert sign_out["action"] == "/logout" and sign_out.select_one("input[name=csrf_token]")
