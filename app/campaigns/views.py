"""Views of the campaigns area (issue 4)."""
from flask import Blueprint

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
