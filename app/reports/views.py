"""Views of reports: campaign reports and the team dashboard (issue 5)."""
from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")
