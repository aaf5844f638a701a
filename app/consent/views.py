"""Views of the consent area (issue 3)."""
from flask import Blueprint

bp = Blueprint("consent", __name__)
