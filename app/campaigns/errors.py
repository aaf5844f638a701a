"""The refusals of the campaign services, in words for the person who asked."""
from app.errors import Problem


class CampaignError(Problem):
    pass


class StateError(CampaignError):
    """A refusal because of the state the campaign is in (the API answers it with 409 Conflict)."""
    status = 409
