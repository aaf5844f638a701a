"""Public tracking, web-view and unsubscribe endpoints (issue 4)."""
from flask import Blueprint

bp = Blueprint("tracking", __name__)
