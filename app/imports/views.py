"""Views of the imports area (issue 3)."""
from flask import Blueprint

bp = Blueprint("imports", __name__, url_prefix="/imports")
