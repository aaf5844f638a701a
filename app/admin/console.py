"""The instance console: every team with its members, this month's usage, contacts and health, for the instance
administrator (the pages under /admin/teams; suspending and resuming go through app/teams/standing.py).

    team_page(query="", show="all", page=1)   {"rows": [TeamRow], "page", "pages", "total", "query", "show"}
    team_row(team)                            one team's TeamRow (the detail page)
    campaigns_paused_by_loft(team)            [Campaign]: paused with a reason (a person's own pause has none)
    suspend(team, reason, by_user) / resume(team, by_user)   through app/teams/standing.py, each kept in the team's
                                              audit log (who, when, why): the abuse lever leaves a trail
    standing_history(team)                    the newest suspensions and resumptions, for the team's page

Usage is read through app/usage.py (the one writer and reader of the counts), contacts from the minute
roll-up (app/reports/rollup.py's ContactCount, so a page of teams never counts a million contacts each),
falling back to a count for a team the roll-up has not reached yet.
"""
import math
from dataclasses import dataclass
from dataclasses import field

from peewee import JOIN

from app import usage
from app.models import AuditLog
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactCount
from app.models import DomainHealth
from app.models import Membership
from app.models import SenderDomain
from app.models import Team
from app.models import User
from app.teams import standing

PER_PAGE = 25
SHOW = {"all": "All teams", "suspended": "Suspended", "attention": "Needing attention", "active": "Not suspended"}
MAX_QUERY = 100
STANDING_ACTIONS = ("team.suspend", "team.resume")
_RANK = {"fail": 0, "warn": 1, "unknown": 2, "pass": 3}


@dataclass
class TeamRow:
    team: Team
    members: list = field(default_factory=list)  # [(name, email, role label)]
    sent: int = 0
    contacts: int = 0
    domains: list = field(default_factory=list)  # [(domain, status, gate_reason)]
    paused: list = field(default_factory=list)  # [Campaign] paused by Loft
    suspension: str = ""
    cap: int | None = None

    @property
    def failing_domains(self):
        return [row for row in self.domains if row[1] == "fail" or row[2]]

    @property
    def health(self):
        """"suspended", "attention" or "ok": the word the console's light shows."""
        if self.suspension:
            return "suspended"
        return "attention" if self.failing_domains or self.paused else "ok"


def _attention_ids():
    """Ids of teams with a failing domain or a campaign Loft paused (a subquery each)."""
    failing = DomainHealth.select(DomainHealth.team).where((DomainHealth.status == "fail")
                                                           | (DomainHealth.gate_reason != ""))
    paused = Campaign.select(Campaign.team).where((Campaign.state == CampaignState.PAUSED)
                                                  & (Campaign.state_reason != ""))
    return failing, paused


def _filtered(query, show):
    select = Team.select()
    query = " ".join(str(query or "").split())[:MAX_QUERY]
    if query:
        # A team's name or a member's address, case-insensitive; peewee's contains() escapes % and _.
        members = Membership.select(Membership.team).join(User).where(User.email.contains(query))
        select = select.where(Team.name.contains(query) | Team.id.in_(members))
    if show == "suspended":
        select = select.where(Team.suspended_at.is_null(False))
    elif show == "active":
        select = select.where(Team.suspended_at.is_null())
    elif show == "attention":
        failing, paused = _attention_ids()
        select = select.where(Team.id.in_(failing) | Team.id.in_(paused) | Team.suspended_at.is_null(False))
    return select, query


def team_page(query="", show="all", page=1):
    show = show if show in SHOW else "all"
    select, query = _filtered(query, show)
    total = select.count()
    pages = max(math.ceil(total / PER_PAGE), 1)
    try:
        page = min(max(int(page), 1), pages)
    except (TypeError, ValueError):
        page = 1
    teams = list(select.order_by(Team.name, Team.id).paginate(page, PER_PAGE))
    return {"rows": rows_for(teams), "page": page, "pages": pages, "total": total, "query": query, "show": show}


def rows_for(teams):
    """TeamRows for these teams, with a few queries for the whole page (not a few per team)."""
    ids = [team.id for team in teams]
    rows = {team.id: TeamRow(team=team, suspension=standing.suspension_reason(team), cap=team.monthly_email_cap)
            for team in teams}
    if not ids:
        return []
    for team_id, name, address, role in (Membership.select(Membership.team, User.name, User.email, Membership.role)
                                         .join(User).where(Membership.team.in_(ids))
                                         .order_by(Membership.team, User.email).tuples()):
        rows[team_id].members.append((name, address, role))
    counted = dict(ContactCount.select(ContactCount.team, ContactCount.total)
                   .where(ContactCount.team.in_(ids)).tuples())
    for team in teams:
        row = rows[team.id]
        row.sent = usage.sent_this_month(team)
        row.contacts = (counted[team.id] if team.id in counted
                        else Contact.select().where(Contact.team == team.id).count())
    for team_id, domain, status, reason in (DomainHealth.select(DomainHealth.team, SenderDomain.domain,
                                                                DomainHealth.status, DomainHealth.gate_reason)
                                            .join(SenderDomain).where(DomainHealth.team.in_(ids)).tuples()):
        rows[team_id].domains.append((domain, status, reason))
    for row in rows.values():
        row.domains.sort(key=lambda item: (_RANK.get(item[1], 2) if not item[2] else -1, item[0]))
    for campaign in (Campaign.select(Campaign.id, Campaign.team, Campaign.name, Campaign.state_reason)
                     .where(Campaign.team.in_(ids) & (Campaign.state == CampaignState.PAUSED)
                            & (Campaign.state_reason != "")).order_by(Campaign.id)):
        rows[campaign.team_id].paused.append(campaign)
    return [rows[team_id] for team_id in ids]


def team_row(team):
    return rows_for([team])[0]


def suspend(team, reason, by_user):
    """Suspend through the one gate's module, and note it; the campaign ids paused. StandingError as it raises."""
    paused = standing.suspend(team, reason, by_user=by_user)
    AuditLog.create(team=team.id, user=by_user.id, action="team.suspend", target=f"team:{team.id}",
                    data={"reason": team.suspended_reason, "paused_campaigns": paused})
    return paused


def resume(team, by_user):
    was = team.suspended_reason
    standing.resume(team)
    AuditLog.create(team=team.id, user=by_user.id, action="team.resume", target=f"team:{team.id}",
                    data={"reason_was": was})


def standing_history(team, limit=10):
    """[(AuditLog with .user)] of the team's suspensions and resumptions, newest first."""
    return list(AuditLog.select(AuditLog, User).join(User, join_type=JOIN.LEFT_OUTER)
                .where((AuditLog.team == team.id) & AuditLog.action.in_(STANDING_ACTIONS))
                .order_by(AuditLog.id.desc()).limit(limit))
