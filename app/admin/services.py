"""The instance settings form: its choices and its validation.

Reading and saving the settings, and the base URL, live in app/settings.py.
"""
from app import security
from app.addresses import one_address
from app.addresses import one_line
from app.deliverability import blocklists
from app.deliverability import spamassassin
from app.errors import Problem
from app.senders.mailservers import is_loopback

SMTP_TLS_MODES = {"none": "None (loopback only)", "starttls": "STARTTLS", "tls": "Implicit TLS"}
# Who may create a team. A new team's creator is its Administrator and can send
# mail in its name, so this is the instance administrator's call.
TEAM_CREATION = {
    "invited": "The instance administrator and people who administer a team",
    "admin": "Only the instance administrator",
    "anyone": "Anyone with an account (including a team's Guests)",
}


class SettingsError(Problem):
    pass


def validate(form):
    """Clean the settings form, or raise SettingsError with a message per field."""
    errors = {}
    values = {
        "base_url": form.get("base_url", "").strip().rstrip("/"),
        "default_from_name": form.get("default_from_name", "").strip(),
        "default_from_email": form.get("default_from_email", "").strip(),
        "postal_address": form.get("postal_address", "").strip(),
        "smtp_host": form.get("smtp_host", "").strip(),
        "smtp_tls": form.get("smtp_tls", "none"),
        "smtp_username": form.get("smtp_username", "").strip(),
    }
    if not values["base_url"].startswith(("http://", "https://")):
        errors["base_url"] = "Enter the full address, starting with https:// (or http:// for local use)."
    if not one_address(values["default_from_email"]):  # it becomes the From of Loft's own mail
        errors["default_from_email"] = "Enter one email address such as news@example.com."
    if not one_line(values["default_from_name"]):
        errors["default_from_name"] = "The From name must be one line of text."
    if not values["smtp_host"]:
        errors["smtp_host"] = "Enter the SMTP server's host name."
    try:
        values["smtp_port"] = int(form.get("smtp_port", ""))
        if not 0 < values["smtp_port"] < 65536:
            raise ValueError
    except ValueError:
        errors["smtp_port"] = "Enter a port number between 1 and 65535 (usually 587 or 465)."
    values["team_creation"] = form.get("team_creation", "invited")
    if values["team_creation"] not in TEAM_CREATION:
        errors["team_creation"] = "Choose who may create teams."
    values["private_mail_hosts"] = bool(form.get("private_mail_hosts"))
    for key in ("blocklist_address_zones", "blocklist_domain_zones"):
        if key in form:  # a form without the field keeps the stored lists
            try:
                values[key] = blocklists.parse_zones(form.get(key), key)
            except blocklists.BlocklistError as exc:
                errors.update(exc.errors)
    if "spamd_address" in form:  # a form without the field keeps the stored address
        try:
            values["spamd_address"] = spamassassin.validate_address(form.get("spamd_address"))
        except ValueError as exc:
            errors["spamd_address"] = str(exc)
    if values["smtp_tls"] not in SMTP_TLS_MODES:
        errors["smtp_tls"] = "Choose a TLS mode."
    elif values["smtp_tls"] == "none" and values["smtp_host"] and not is_loopback(values["smtp_host"]):
        errors["smtp_tls"] = "Without TLS, passwords and mail cross the network in clear: use STARTTLS or TLS for a remote server."
    if errors:
        raise SettingsError(errors=errors)
    password = form.get("smtp_password", "")
    if password:  # an empty field keeps the stored password
        values["smtp_password"] = security.encrypt(password)
    elif form.get("smtp_password_clear"):
        values["smtp_password"] = ""
    return values

