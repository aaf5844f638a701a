"""The main navigation, defined once: the desktop bar, the phone's bottom bar and its "More" menu are all drawn
from SECTIONS by templates/base.html, so the two never list different places.

A section is shown to a person whose role passes the @require of the page it links to (read from the view
itself, so a link is never offered to someone the page would refuse); `instance_admin` sections only to the
instance's administrators. `areas` are endpoint prefixes: the section whose prefix matches the current
endpoint longest is the current one (aria-current="page"), so "teams.settings" belongs to Settings while every
other "teams." page belongs to Team.
"""
from dataclasses import dataclass

from flask import current_app
from flask import g
from flask import request
from flask import url_for
from flask_login import current_user

from app.teams.permissions import can

BAR = "bar"  # in the bottom bar on phones and the top bar on wider screens
WIDE = "wide"  # in the top bar on wider screens, under More on phones
MORE = "more"  # under More everywhere


@dataclass(frozen=True)
class Section:
    label: str
    endpoint: str
    icon: str  # a symbol of static/icons-lucide-*.svg
    areas: tuple
    place: str = MORE
    instance_admin: bool = False


SECTIONS = (
    Section("Dashboard", "dashboard.dashboard", "layout-dashboard", ("dashboard.",), BAR),
    Section("Campaigns", "campaigns.index", "send", ("campaigns.",), BAR),
    Section("Automations", "automations.index", "split", ("automations.",), WIDE),
    Section("Contacts", "contacts.index", "users", ("contacts.", "consent."), BAR),
    Section("Templates", "email_templates.index", "layout-template", ("email_templates.",), BAR),
    Section("Reports", "reports.dashboard", "chart-column", ("reports.",), WIDE),
    Section("Calendar", "campaigns.calendar_page", "calendar-days", ("campaigns.calendar",)),
    Section("Segments", "segments.index", "filter", ("segments.",)),
    Section("Imports", "imports.index", "upload", ("imports.",)),
    Section("Images", "media.index", "image", ("media.",)),
    Section("Sign-up forms", "consent.forms", "clipboard-list", ("consent.form",)),
    Section("Brand", "brand.page", "palette", ("brand.",)),
    Section("Transactional", "transactional.index", "mail", ("transactional.",)),
    Section("Sending", "sending.accounts", "server", ("sending.",)),
    Section("Bounces", "bounces.index", "mail-warning", ("bounces.",)),
    Section("DMARC", "dmarc.index", "shield-check", ("dmarc.",)),
    Section("Webhooks", "webhooks.index", "webhook", ("webhooks.",)),
    Section("API keys", "api_keys.index", "code", ("api_keys.",)),
    Section("Notices", "notices.index", "bell", ("notices.",)),
    Section("Team", "teams.members", "users-round", ("teams.",), WIDE),
    Section("Settings", "teams.settings", "settings", ("teams.settings",)),
    Section("AI usage", "ai.usage", "chart-column", ("ai.usage",)),
    Section("Usage and billing", "billing.meter", "chart-column", ("billing.meter", "billing.statement")),
    Section("Account", "auth.account", "circle-user", ("auth.",)),
    Section("Outbox", "catcher.index", "inbox", ("catcher.",), instance_admin=True),
    Section("Instance", "admin.settings", "shield", ("admin.", "operations."), instance_admin=True),
)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    icon: str
    place: str
    current: bool


def current_section(endpoint, sections=SECTIONS):
    """The section an endpoint belongs to (longest matching prefix), or None."""
    best, length = None, 0
    for section in sections:
        for area in section.areas:
            if endpoint.startswith(area) and len(area) > length:
                best, length = section, len(area)
    return best


def allowed(section, role, is_instance_admin):
    if section.instance_admin:
        return is_instance_admin
    permission = getattr(current_app.view_functions[section.endpoint], "permission", None)
    return permission is None or (role is not None and can(role, permission))


def links():
    """The sections the signed-in person may open, in order, the current one marked."""
    if not current_user.is_authenticated:
        return []
    membership = g.get("membership")
    role = membership.role if membership else None
    here = current_section(request.endpoint or "")
    return [NavLink(section.label, url_for(section.endpoint), section.icon, section.place, section is here)
            for section in SECTIONS if allowed(section, role, current_user.is_instance_admin)]


def init_app(app):
    @app.context_processor
    def navigation():
        return {"nav_links": links}
