"""Views of the template library (issue 4)."""
from flask import Blueprint

bp = Blueprint("email_templates", __name__, url_prefix="/templates")
