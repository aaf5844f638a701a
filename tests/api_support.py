"""The API for tests: clients that call /api/v1 with a real key of a chosen team and role."""
import pytest

from app.api import keys
from app.models import Team


class ApiClient:
    """A Flask test client that sends `Authorization: Bearer <key>` and JSON bodies, and no cookie."""

    def __init__(self, app, raw_key, key=None):
        self.client = app.test_client(use_cookies=False)
        self.raw_key = raw_key
        self.key = key

    def call(self, method, path, json=None, headers=None, **kwargs):
        sent = {"Authorization": f"Bearer {self.raw_key}"} if self.raw_key else {}
        sent.update(headers or {})
        return self.client.open(path, method=method, json=json, headers=sent, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.call("POST", path, json=json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.call("PATCH", path, json=json, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api_key_for(ctx, admin):
    """make(role="admin", team=Acme) -> an ApiClient with a new key of that role and team."""
    def make(role="admin", team=None):
        team = team or Team.get(Team.name == "Acme")
        key, raw = keys.create_key(team, name=f"{role} key", role=role)
        return ApiClient(ctx, raw, key)
    return make


@pytest.fixture
def api(api_key_for):
    """An Administrator key of Acme."""
    return api_key_for("admin")
