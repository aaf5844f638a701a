"""Views of outgoing webhooks (issue 5)."""
from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
