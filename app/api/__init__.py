"""The JSON API under /api/v1 and the API keys it is called with (app/api/keys.py)."""
