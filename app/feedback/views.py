"""Views of the feedback loop: bounce mailboxes and provider webhooks (issue 5)."""
from flask import Blueprint

bp = Blueprint("feedback", __name__, url_prefix="/feedback")
