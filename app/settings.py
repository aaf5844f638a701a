"""Instance settings (Admin > Settings) and the one base_url() every link starts with.

Settings are stored as JSON rows in InstanceSetting; a key never saved has its default,
most of them from the environment (app.config). On a fresh install the outbound SMTP
server is the built-in mail catcher, so every email Loft sends is visible in the Outbox.
The form that edits them (validation, choices) is app/admin/services.py.

How they are cached, and why this way:
  All of them are read in one query (a dozen rows) and kept in flask.g, so a request or a
  task reads them once however many places ask (a MessageFactory used to read them three
  times). flask.g belongs to the app context, and a web request has its own, so every
  request of every gunicorn worker starts from what is stored: a value saved by another
  worker or process is seen by the next request, never a stale one. Long-lived contexts
  (a huey worker thread pushes one at start-up and keeps it; the engine's database
  thread too) read again once the copy is MAX_AGE seconds old, and the worker forgets
  it before each task (wsgi.py), so a task queued after a save sees the save.
  A process-wide cache checked against a version stamp would cost the same: checking
  the stamp is itself one query per request, as is reading the dozen rows.
  save_settings() forgets the copy of the context it runs in. A row written by other
  means (SQL by hand, a restored backup) is seen by the next request or task.
"""
import time

from flask import current_app
from flask import g
from flask import has_app_context

from app import security
from app.db import db
from app.models import InstanceSetting

DEFAULT_AI_MODEL = "gemini-2.5-flash"
# Settings whose blank stored value means "what LOFT_GEMINI_* says" rather than "none".
FALLS_BACK_TO_ENVIRONMENT = ("ai_api_key", "ai_base_url", "ai_model")

# Seconds a long-lived app context (huey worker thread, engine thread) keeps its copy.
MAX_AGE = 2.0
_clock = time.monotonic  # tests move it forward


def _defaults():
    config = current_app.config
    return {
        "base_url": config["BASE_URL"],
        "default_from_name": "Loft",
        "default_from_email": "loft@localhost",
        "postal_address": "",
        "smtp_host": config["CATCHER_HOST"],
        "smtp_port": config["CATCHER_PORT"],
        "smtp_tls": "none",
        "smtp_username": "",
        "smtp_password": "",  # stored encrypted
        "team_creation": "invited",
        # SMTP accounts and bounce mailboxes on this machine or a private network (app.netguard):
        # off by default, since "Test connection" would otherwise probe Loft's own network.
        "private_mail_hosts": bool(config.get("MAIL_ALLOW_PRIVATE", False)),
        # AI writing help (app/ai/generate.py, Admin > AI). The key is stored encrypted; a blank stored
        # key, base URL or model means the LOFT_GEMINI_* value (see _load).
        "ai_provider": "gemini",
        "ai_api_key": config.get("GEMINI_API_KEY", ""),
        "ai_base_url": config.get("GEMINI_BASE_URL", ""),  # "" = the provider's public endpoint
        "ai_model": config.get("GEMINI_MODEL") or DEFAULT_AI_MODEL,
        "ai_prices": {},  # {model: {"input_per_million": usd, "output_per_million": usd}}; {} = app.ai.costs defaults
        "ai_default_monthly_budget_usd": 10.0,  # per team, unless the team has its own; 0 = no limit
        "ai_user_requests_per_hour": 60,
        # DNS blocklists asked about the SMTP accounts' addresses and the sender domains
        # (app/deliverability/blocklists.py); an empty list turns that kind of check off.
        "blocklist_address_zones": ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"],
        "blocklist_domain_zones": ["dbl.spamhaus.org"],
        # spamd for the builder's SpamAssassin score (app/deliverability/spamassassin.py): host:port, "" = off.
        "spamd_address": config.get("SPAMD_ADDRESS", "127.0.0.1:783"),
        # GET /metrics (app/metrics/views.py): "" = this machine only, else the bearer token Prometheus sends.
        "metrics_token": config.get("METRICS_TOKEN", ""),
        # Billing (app/billing/plans.py, Admin > Billing): the plans teams are billed on, and the one a team
        # without its own is on. Prices are decimal strings, never floats.
        "billing_plans": [{"key": "standard", "name": "Free 10,000 emails a month, then $0.25 per 1,000",
                           "free_emails": 10000, "price_per_thousand": "0.25", "currency": "USD"}],
        "billing_default_plan": "standard",
    }


def _load():
    defaults = _defaults()
    values = dict(defaults)
    for row in InstanceSetting.select():
        if row.key in values:
            values[row.key] = row.value
            if row.key == "ai_api_key" and row.value:
                values["ai_api_key"] = security.decrypt(row.value) or ""
    if values["smtp_password"]:
        values["smtp_password"] = security.decrypt(values["smtp_password"]) or ""
    for key in FALLS_BACK_TO_ENVIRONMENT:
        # Removing the key (or clearing the model) in Admin > AI returns to what the environment sets.
        values[key] = values[key] or defaults[key]
    return values


def get_settings():
    """Every instance setting, stored values over defaults; the SMTP password decrypted.

    A copy: the caller may change it without changing what others read."""
    cached = g.get("_loft_settings")
    now = _clock()
    if cached is None or now - cached[1] > MAX_AGE:
        cached = g._loft_settings = (_load(), now)
    return dict(cached[0])


def get_setting(key):
    """One instance setting (stored value over default)."""
    return get_settings()[key]


def forget():
    """Drop this app context's copy: the next read goes to the database."""
    if has_app_context():
        g.pop("_loft_settings", None)


def save_settings(values):
    with db.atomic():
        for key, value in values.items():
            (InstanceSetting.insert(key=key, value=value)
             .on_conflict(conflict_target=[InstanceSetting.key], update={InstanceSetting.value: value})
             .execute())
    forget()


def base_url():
    """The instance's public address, without a trailing slash: Admin > Settings, else LOFT_BASE_URL.

    Every link Loft builds starts with it: previews, sent campaign mail, the web version, the
    preference centre and hosted forms, Loft's own mail and the bounce webhook URLs it shows."""
    return (get_setting("base_url") or current_app.config["BASE_URL"]).rstrip("/")
