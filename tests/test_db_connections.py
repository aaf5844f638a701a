"""A web request's thread keeps its database connection for its next request (app.db.release_db), clean:
a transaction left open is rolled back, and a broken or old connection is replaced. Any other app context
closes its connection. On both stacks."""
import threading

import pytest

from app import db as db_module
from app.api import keys
from app.db import db
from app.db import release_db
from app.models import Contact
from app.models import Team
from tests.api_support import ApiClient


@pytest.fixture
def api_outside(app, admin):
    """An API client used with no app context pushed, so every request ends its own context."""
    with app.app_context():
        key, raw = keys.create_key(Team.get(Team.name == "Acme"), name="script", role="admin")
    db.close()
    return ApiClient(app, raw, key)


def contacts_answer(api):
    response = api.get("/api/v1/contacts")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_request_keeps_its_threads_connection_for_the_next_one(api_outside):
    contacts_answer(api_outside)
    assert not db.is_closed()
    kept = db.connection()
    contacts_answer(api_outside)
    assert db.connection() is kept


def test_other_threads_keep_their_own(api_outside):
    contacts_answer(api_outside)
    mine = db.connection()
    seen = []

    def other():
        contacts_answer(api_outside)
        seen.append(db.connection())
        db.close()
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine
    assert db.connection() is mine


def test_an_app_context_outside_a_request_closes_its_connection(app, api_outside):
    with app.app_context():
        Contact.select().count()
        assert not db.is_closed()
    assert db.is_closed()


def test_a_transaction_left_open_is_rolled_back_and_the_connection_kept(app, api_outside):
    contacts_answer(api_outside)
    kept = db.connection()
    db.execute_sql("BEGIN")  # behind peewee's back, as a bug might
    team_id = Team.get(Team.name == "Acme").id
    Contact.insert(team=team_id, email="left@example.com", domain="example.com").execute()
    release_db()
    assert db.connection() is kept
    assert Contact.select().where(Contact.email == "left@example.com").count() == 0
    contacts_answer(api_outside)  # the next request finds the connection clean and usable
    assert db.connection() is kept


def test_a_broken_connection_is_closed_and_the_next_request_opens_another(api_outside):
    contacts_answer(api_outside)
    broken = db.connection()
    broken.close()  # the server went away, or a driver error closed it
    release_db()
    assert db.is_closed()
    assert contacts_answer(api_outside)["data"] == []
    assert db.connection() is not broken


def test_a_connection_older_than_the_limit_is_replaced(api_outside, monkeypatch):
    contacts_answer(api_outside)
    old = db.connection()
    monkeypatch.setattr(db_module, "KEEP_CONNECTION_SECONDS", -1)
    contacts_answer(api_outside)
    assert db.is_closed()
    contacts_answer(api_outside)
    assert db.connection() is not old


def test_a_connection_inside_a_peewee_transaction_is_not_kept(api_outside):
    contacts_answer(api_outside)
    transaction = db.atomic()
    transaction.__enter__()
    try:
        with pytest.raises(Exception, match="transaction is open"):
            release_db()  # a request that ends inside db.atomic() is a bug: it fails loudly, as before
    finally:
        transaction.__exit__(None, None, None)
    release_db()
    assert not db.is_closed()


def test_a_request_that_failed_closes_its_connection(api_outside):
    """Its traceback may keep a partly read cursor, and with it the request's read snapshot."""
    contacts_answer(api_outside)
    release_db(RuntimeError("the view failed"))
    assert db.is_closed()
