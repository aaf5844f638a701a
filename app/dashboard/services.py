"""What the dashboard shows: a few counts and the next steps a new team has left."""
from app import usage
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactStatus
from app.models import MailingList
from app.models import SenderDomain
from app.models import SmtpAccount


def overview(team):
    return {
        "contacts": Contact.select().where((Contact.team == team) & (Contact.status == ContactStatus.ACTIVE)).count(),
        "lists": MailingList.select().where(MailingList.team == team).count(),
        "sending": Campaign.select().where((Campaign.team == team) & (Campaign.state == CampaignState.SENDING)).count(),
        "scheduled": Campaign.select().where((Campaign.team == team) & (Campaign.state == CampaignState.SCHEDULED)).count(),
        "sent_this_month": usage.sent_this_month(team),
    }


def next_steps(team):
    """The setup steps, each with whether it is done, in the order a new team meets them."""
    return [
        ("postal_address", "Add your postal address and default sender", bool(team.postal_address.strip())),
        ("smtp", "Add an SMTP account to send through",
         SmtpAccount.select().where(SmtpAccount.team == team).exists()),
        ("domain", "Verify your sender domain",
         SenderDomain.select().where((SenderDomain.team == team) & SenderDomain.verified_at.is_null(False)).exists()),
        ("contacts", "Import or add contacts", Contact.select().where(Contact.team == team).exists()),
        ("campaign", "Send your first campaign",
         Campaign.select().where((Campaign.team == team) & Campaign.started_at.is_null(False)).exists()),
    ]
