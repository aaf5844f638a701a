"""AI help in the campaign builder: suggestions, drafts and rewrites run as background jobs the page polls;
the team's AI usage page."""
from flask import Blueprint

bp = Blueprint("ai", __name__, url_prefix="/ai")

# --- Jobs and subject lines ---

# --- Drafts and rewrites ---

# --- Usage ---
