"""The role matrix: what each team role may do. One table, one check.

Administrator: everything. Manager: everything except billing, domains,
data export and API keys (and cannot make or unmake administrators). Author: writes
content but cannot launch or send. Guest: reads reports and campaigns.
"""
PERMISSIONS = {
    "view": "See the team's campaigns, reports and contacts",
    "edit_content": "Create, edit and delete contacts, lists, templates and campaigns",
    "send": "Launch, schedule, pause and send campaigns",
    "manage_members": "Invite members, change their roles, remove them",
    "manage_settings": "Change team settings",
    "manage_domains": "Add and verify sender domains and SMTP accounts",
    "manage_billing": "See and change billing",
    "export_data": "Export the team's data",
    "manage_api_keys": "Create and revoke the team's API keys",
}

ROLE_PERMISSIONS = {
    "admin": set(PERMISSIONS),
    "manager": {"view", "edit_content", "send", "manage_members", "manage_settings"},
    "author": {"view", "edit_content"},
    "guest": {"view"},
}


def can(role, permission):
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role, set())
