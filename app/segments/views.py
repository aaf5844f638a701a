"""Views of the segments area (issue 3)."""
from flask import Blueprint

bp = Blueprint("segments", __name__, url_prefix="/segments")
