"""Which events reach whom: the registry of notification events and each person's choices per team.

    EVENTS                          the events (key -> NotificationEvent: label, description, role defaults)
    event_of(kind)                  the event a Notice kind belongs to (kinds older than the registry are mapped)
    defaults(role)                  {event: {"email": bool, "app": bool}} for a role
    choices(user, team)             the same for one person in one team: their role's defaults with their changes
    save(user, team, form)          store a person's choices from the preferences form (one POST, every event)
    in_app_condition(user, team)    a condition on Notice.kind: the notices this person wants to see in the app
    email_recipients(team, kind)    addresses of the team's members who want this kind of notice by email
    wants_email_anywhere(user, event)  for mail about the whole instance (the worker is down): does this person
                                    want `event` by email in any of their teams (or belong to none)?

Only the choices that differ from the role's defaults are stored (notification_preference), so changing a
default here changes it for everyone who has not chosen otherwise. A kind nobody registered ("alert", a bounce
mailbox that cannot be read, a restore from a backup) belongs to "other": everyone sees it in the app and the
Administrators get it by email, as before the registry existed.
"""
from dataclasses import dataclass

from app.db import db
from app.models import Membership
from app.models import Notice
from app.models import NotificationPreference
from app.models import ROLES
from app.models import Team
from app.models import User
from app.models import utcnow

EMAIL, APP = "email", "app"


@dataclass(frozen=True)
class NotificationEvent:
    key: str
    label: str
    description: str
    email_roles: frozenset  # roles that get it by email unless they opt out
    app_roles: frozenset  # roles that see it in the app unless they opt out
    channels: tuple = (EMAIL, APP)


def _roles(*names):
    return frozenset(names)


ALL = _roles(*ROLES)
ADMIN = _roles("admin")
SENDERS = _roles("admin", "manager")

_EVENTS = (
    NotificationEvent("campaign_finished", "Campaign finished", "A campaign has sent its last message.",
                      ADMIN, ALL),
    NotificationEvent("import_finished", "Import finished", "A contact import has finished, or stopped on an error.",
                      ADMIN, _roles("admin", "manager", "author")),
    NotificationEvent("campaign_paused", "Campaign paused by Loft",
                      "Loft paused a campaign on its own: too many bounces or complaints, or failed authentication.",
                      SENDERS, _roles("admin", "manager", "author")),
    NotificationEvent("domain_failing", "Sender domain failing",
                      "A sender domain fails its DNS checks or is listed on a blocklist, so its campaigns wait.",
                      ADMIN, SENDERS),
    NotificationEvent("worker_down", "Worker not running", "No background worker has been seen for a minute: "
                      "sending and imports are paused until it runs again.", ADMIN, SENDERS),
    NotificationEvent("usage_80", "80 % of the monthly limit", "The team has used 80 % of its monthly email limit.",
                      ADMIN, SENDERS),
    NotificationEvent("usage_100", "Monthly limit reached",
                      "The team has reached its monthly email limit: sends are refused.",
                      ADMIN, SENDERS),
    NotificationEvent("dmarc_digest", "Weekly DMARC digest", "Once a week: how the team's mail fared in DMARC reports.",
                      ADMIN, frozenset(), channels=(EMAIL,)),
    NotificationEvent("other", "Other alerts", "Anything else Loft had to act on: a bounce mailbox it cannot read, "
                      "sign-up confirmations it cannot send, a restore from a backup.", ADMIN, ALL),
)
EVENTS = {event.key: event for event in _EVENTS}
OTHER = "other"

# Kinds written before the registry existed, kept by their writers (their own rows are looked up by kind):
# bounces/autopause.py KIND and FINISHED_KIND, deliverability/gate.py KIND, deliverability/blocklists.py.
LEGACY_KINDS = {
    "autopause": "campaign_paused",
    "rates": "campaign_finished",  # the warning about a campaign that finished above a rate threshold
    "domain_health": "domain_failing",
    "blocklist": "domain_failing",
}


def event_of(kind):
    if kind in EVENTS:
        return kind
    return LEGACY_KINDS.get(kind, OTHER)


def kinds_of(event):
    """The Notice kinds that belong to `event` (its own key and the legacy kinds mapped to it)."""
    return [event] + [kind for kind, target in LEGACY_KINDS.items() if target == event]


def defaults(role):
    return {key: {EMAIL: EMAIL in event.channels and role in event.email_roles,
                  APP: APP in event.channels and role in event.app_roles}
            for key, event in EVENTS.items()}


def _user_id(user):
    return user.id if isinstance(user, User) else int(user)


def _team_id(team):
    return team.id if isinstance(team, Team) else int(team)


def _role(user, team):
    return (Membership.select(Membership.role)
            .where((Membership.user == _user_id(user)) & (Membership.team == _team_id(team))).scalar())


def choices(user, team, role=None):
    """{event: {"email": bool, "app": bool}} for this person in this team (a non-member: nothing)."""
    role = role or _role(user, team)
    current = defaults(role)
    for row in NotificationPreference.select().where((NotificationPreference.user == _user_id(user))
                                                     & (NotificationPreference.team == _team_id(team))):
        if row.event in current:
            event = EVENTS[row.event]
            current[row.event] = {EMAIL: row.by_email and EMAIL in event.channels,
                                  APP: row.in_app and APP in event.channels}
    return current


def field_name(event, channel):
    return f"{event}.{channel}"


def save(user, team, form, role=None):
    """Store the form's choices: a ticked box is on, a missing one off. Returns the choices now in force."""
    role = role or _role(user, team)
    base = defaults(role)
    user_id, team_id = _user_id(user), _team_id(team)
    wanted = {key: {channel: channel in event.channels and bool(form.get(field_name(key, channel)))
                    for channel in (EMAIL, APP)} for key, event in EVENTS.items()}
    with db.atomic():
        # Delete and write again inside one transaction: the same on SQLite and PostgreSQL, no upsert needed.
        (NotificationPreference.delete()
         .where((NotificationPreference.user == user_id) & (NotificationPreference.team == team_id)).execute())
        rows = [{"user": user_id, "team": team_id, "event": key, "by_email": choice[EMAIL], "in_app": choice[APP],
                 "updated_at": utcnow()} for key, choice in wanted.items() if choice != base[key]]
        if rows:
            NotificationPreference.insert_many(rows).execute()
    return wanted


def in_app_condition(user, team, role=None):
    """A peewee condition on Notice.kind matching the notices this person wants in the app."""
    wanted = [key for key, choice in choices(user, team, role).items() if choice[APP]]
    kinds = [kind for key in wanted if key != OTHER for kind in kinds_of(key)]
    condition = Notice.kind.in_(kinds) if kinds else None
    if OTHER in wanted:
        known = list(EVENTS) + list(LEGACY_KINDS)
        other = Notice.kind.not_in([kind for kind in known if event_of(kind) != OTHER])
        condition = other if condition is None else (condition | other)
    return condition if condition is not None else Notice.id.is_null()  # nothing wanted: matches no row


def members_who_want(team, event, channel):
    """[(user id, email)] of the team's members who want `event` on `channel`."""
    team_id = _team_id(team)
    members = (Membership.select(User.id, Membership.role, User.email).join(User)
               .where(Membership.team == team_id).order_by(User.id).tuples())
    stored = {row.user_id: (row.by_email if channel == EMAIL else row.in_app)
              for row in NotificationPreference.select().where((NotificationPreference.team == team_id)
                                                               & (NotificationPreference.event == event))}
    found = []
    for user_id, role, address in members:
        want = stored.get(user_id, defaults(role)[event][channel])
        if want and channel in EVENTS[event].channels:
            found.append((user_id, address))
    return found


def email_recipients(team, kind):
    """Addresses of the team's members who want a notice of this kind by email."""
    return [address for _, address in members_who_want(team, event_of(kind), EMAIL)]


def wants_email_anywhere(user, event):
    """For mail about the whole instance rather than one team (e.g. the worker is down, mailed to the instance
    administrators directly because the notices' own email job needs the worker): True when any of the person's
    teams has `event` on by email for them, or they belong to no team (then the defaults speak: they are told)."""
    roles = dict(Membership.select(Membership.team, Membership.role).where(Membership.user == _user_id(user)).tuples())
    if not roles:
        return True
    return any(choices(user, team_id, role)[event][EMAIL] for team_id, role in roles.items())
