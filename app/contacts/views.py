"""Views of the contacts area (issue 3)."""
from flask import Blueprint

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
