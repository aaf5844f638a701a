"""Views of the sending area: SMTP accounts and sender domains (issue 4)."""
from flask import Blueprint

bp = Blueprint("sending", __name__, url_prefix="/sending")
