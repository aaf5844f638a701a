"""The API's hot path without a database write per request: each process's copy of the keys it found
(revocation within KEY_CACHE_SECONDS), the per-key counts added to the shared window in batches (and in
Redis when the queue is Redis), and the limit on unknown keys per client address."""
import datetime

import pytest
import redis

from app.api import keys
from app.api import ratelimit
from app.contacts.tags import add_tags
from app.models import Contact
from app.models import ApiKey
from app.models import ApiRateWindow
from app.models import RateLimitHit
from app.models import Team
from app.models import utcnow
from tests import stack_support
from tests.api_support import ApiClient
from tests.conftest import free_port

WINDOW_START = 6_000_000.0  # a minute boundary (100,000 minutes after the epoch)


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json()


def stored_hits(key):
    return sum(w.hits for w in ApiRateWindow.select().where(ApiRateWindow.api_key == key.id))


# --- The process's copy of a key ------------------------------------------------------------------

def test_a_key_revoked_here_is_refused_at_once(app, api):
    assert api.get("/api/v1/contacts").status_code == 200  # now known to this process
    keys.revoke_key(api.key.team, api.key.id)
    assert_problem(api.get("/api/v1/contacts"), 401)


def test_a_key_revoked_by_another_process_is_refused_once_the_copy_expires(ctx, api):
    now = utcnow()
    assert keys.authenticate(api.raw_key, now=now) is not None
    # Another web process revokes it: this one's copy still stands, for at most KEY_CACHE_SECONDS.
    ApiKey.update(revoked_at=now).where(ApiKey.id == api.key.id).execute()
    assert keys.authenticate(api.raw_key, now=now + datetime.timedelta(seconds=1)) is not None
    later = now + datetime.timedelta(seconds=keys.KEY_CACHE_SECONDS + 1)
    assert keys.authenticate(api.raw_key, now=later) is None
    assert keys.known_key(api.raw_key, now=later) is None


def test_each_request_gets_its_own_key_and_team(ctx, api):
    first = keys.authenticate(api.raw_key)
    first.team.name = "Changed by one request"
    first.role = "admin" if first.role != "admin" else "guest"
    second = keys.authenticate(api.raw_key)
    assert second is not first and second.team is not first.team
    assert second.team.name == "Acme" and second.role == api.key.role
    assert second.team.id == api.key.team_id


def test_an_unknown_key_is_never_remembered(ctx, api):
    stranger = keys.new_raw_key()
    assert keys.authenticate(stranger) is None
    assert keys.known_key(stranger) is None
    assert keys.known_key(api.raw_key) is None  # not used yet
    assert keys.authenticate(api.raw_key) is not None
    assert keys.known_key(api.raw_key) is not None


# --- Per key: counted in batches -------------------------------------------------------------------

def test_far_from_the_limit_a_process_writes_its_count_every_ten_requests(ctx, api):
    for i in range(25):
        assert ratelimit.hit(api.key, 1000, now=WINDOW_START + i * 0.01) == 0
    assert stored_hits(api.key) == 2 * ratelimit.FLUSH_EVERY
    # A second later the rest is written with the next request.
    assert ratelimit.hit(api.key, 1000, now=WINDOW_START + 0.25 + ratelimit.FLUSH_SECONDS) == 0
    assert stored_hits(api.key) == 26


def test_near_the_limit_every_request_is_written_and_the_limit_is_exact(ctx, api):
    answers = [ratelimit.hit(api.key, 30, now=WINDOW_START + i * 0.01) for i in range(35)]
    assert answers[:30] == [0] * 30
    assert all(1 <= wait <= 60 for wait in answers[30:])
    assert stored_hits(api.key) == 35


def test_several_processes_admit_at_most_flush_every_past_the_limit_each(ctx, api):
    """Each KeyWindows is one process's memory; they share the database's row."""
    processes = [ratelimit.KeyWindows() for _ in range(3)]
    limit, admitted = 100, 0
    for i in range(300):
        hits = processes[i % 3].add(api.key.id, api.key.key_hash, 100_000, limit, WINDOW_START + i * 0.001)
        admitted += hits <= limit
    assert limit <= admitted <= limit + (len(processes) - 1) * (ratelimit.FLUSH_EVERY - 1)
    assert stored_hits(api.key) <= 300


def test_a_new_minute_counts_from_zero_and_drops_the_older_rows(ctx, api):
    for i in range(40):
        ratelimit.hit(api.key, 30, now=WINDOW_START + i * 0.01)
    assert [ratelimit.hit(api.key, 30, now=WINDOW_START + 60.5 + i * 0.01) for i in range(10)] == [0] * 10
    assert [w.window for w in ApiRateWindow.select().where(ApiRateWindow.api_key == api.key.id)] == [100_001]


# --- Unknown keys per client address ----------------------------------------------------------------

def test_an_address_that_presents_unknown_keys_gets_429_before_any_lookup(app, api, api_key_for):
    app.config["API_AUTH_FAILURES_PER_MINUTE"] = 3
    assert api.get("/api/v1/contacts").status_code == 200  # a key this process already knows
    fresh = api_key_for("guest")
    guesser = ApiClient(app, keys.new_raw_key())
    for _ in range(3):
        assert_problem(guesser.get("/api/v1/contacts"), 401)
    refused = assert_problem(guesser.get("/api/v1/contacts"), 429)
    assert "unknown or revoked" in refused["detail"]
    assert 1 <= int(guesser.get("/api/v1/contacts").headers["Retry-After"]) <= 60
    # The right key guessed now is refused too: the address may not try another key this minute.
    assert_problem(fresh.get("/api/v1/contacts"), 429)
    # A key already known here is not checked against its address; another address is not limited.
    assert api.get("/api/v1/contacts").status_code == 200
    assert_problem(guesser.get("/api/v1/contacts", environ_base={"REMOTE_ADDR": "127.0.0.2"}), 401)
    assert fresh.get("/api/v1/contacts", environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 200


def test_a_missing_or_malformed_key_header_is_counted_only_when_a_key_was_presented(app, api):
    app.config["API_AUTH_FAILURES_PER_MINUTE"] = 2
    anonymous = ApiClient(app, None)
    for _ in range(5):
        assert_problem(anonymous.get("/api/v1/contacts"), 401)  # no key: nothing guessed
    assert RateLimitHit.select().where(RateLimitHit.bucket == ratelimit.SIGN_IN_BUCKET).count() == 0
    mistyped = ApiClient(app, "loft_short")
    assert_problem(mistyped.get("/api/v1/contacts"), 401)
    assert_problem(mistyped.get("/api/v1/contacts"), 401)
    assert_problem(mistyped.get("/api/v1/contacts"), 429)


# --- With Redis -------------------------------------------------------------------------------------

on_redis = pytest.mark.skipif(not stack_support.ON_REDIS, reason="Redis only (make test-pg): the Redis counters")


@pytest.fixture
def redis_app(app):
    app.config["QUEUE_URL"] = stack_support.redis_queue_url()
    yield app
    ratelimit._clients.pop(app.config["QUEUE_URL"], None).close()


@on_redis
def test_with_redis_each_request_is_counted_in_redis_exactly(redis_app, api, api_key_for):
    redis_app.config["API_RATE_PER_MINUTE"] = 3
    other = api_key_for("guest")
    assert [api.get("/api/v1/contacts").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/api/v1/contacts")
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert other.get("/api/v1/contacts").status_code == 200
    assert ApiRateWindow.select().count() == 0  # nothing written to the database
    client = redis.Redis.from_url(redis_app.config["QUEUE_URL"])
    names = [name.decode() for name in client.keys("loft:api-rate:*")]
    assert len(names) == 2
    mine = next(name for name in names if api.key.key_hash[:32] in name)
    assert int(client.get(mine)) == 4 and 0 < client.ttl(mine) <= 2 * ratelimit.WINDOW_SECONDS
    client.close()


@on_redis
def test_with_redis_unknown_keys_are_counted_per_address_in_redis(redis_app, api):
    redis_app.config["API_AUTH_FAILURES_PER_MINUTE"] = 2
    guesser = ApiClient(redis_app, keys.new_raw_key())
    assert_problem(guesser.get("/api/v1/contacts"), 401)
    assert_problem(guesser.get("/api/v1/contacts"), 401)
    assert_problem(guesser.get("/api/v1/contacts"), 429)
    assert RateLimitHit.select().count() == 0
    client = redis.Redis.from_url(redis_app.config["QUEUE_URL"])
    assert len(client.keys("loft:api-key-failures:*")) == 1
    client.close()


def test_while_redis_does_not_answer_the_database_counts(app, api):
    """A Redis URL where nothing listens: the API goes on answering, its counts in the database."""
    app.config["QUEUE_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    app.config["API_RATE_PER_MINUTE"] = 3
    app.config["API_AUTH_FAILURES_PER_MINUTE"] = 1
    try:
        assert [api.get("/api/v1/contacts").status_code for _ in range(3)] == [200, 200, 200]
        assert_problem(api.get("/api/v1/contacts"), 429)
        assert stored_hits(api.key) == 4
        guesser = ApiClient(app, keys.new_raw_key())
        assert_problem(guesser.get("/api/v1/contacts"), 401)
        assert_problem(guesser.get("/api/v1/contacts"), 429)
        assert RateLimitHit.select().where(RateLimitHit.bucket == ratelimit.SIGN_IN_BUCKET).count() == 1
    finally:
        ratelimit._clients.pop(app.config["QUEUE_URL"]).close()


def test_the_team_of_a_known_key_is_the_keys_team(ctx, api):
    other = Team.create(name="Other")
    theirs, raw = keys.create_key(other, name="theirs", role="admin")
    assert keys.authenticate(raw).team.id == other.id
    assert keys.authenticate(raw).team.id == other.id  # from the copy
    assert keys.authenticate(api.raw_key).team.name == "Acme"


# --- The read of one contact (SQL built once) --------------------------------------------------------

def test_one_contact_reads_as_the_list_shows_it(ctx, api):
    assert api.post("/api/v1/fields", json={"label": "Plan"}).status_code == 201
    created = api.post("/api/v1/contacts", json={"email": "ann@example.com", "name": "Ann",
                                                 "fields": {"plan": "pro"}}).get_json()
    add_tags(api.key.team, Contact.get_by_id(created["id"]), "zeta, Alpha")
    one = api.get(f"/api/v1/contacts/{created['id']}").get_json()
    listed = api.get("/api/v1/contacts").get_json()["data"][0]
    assert one == listed
    assert one["tags"] == ["Alpha", "zeta"] and one["fields"] == {"plan": "pro"}
    assert one["created_at"].endswith("Z")


def test_another_teams_contact_is_not_found(ctx, api):
    other = Team.create(name="Other")
    theirs = Contact.create(team=other, email="theirs@example.com", domain="example.com")
    assert_problem(api.get(f"/api/v1/contacts/{theirs.id}"), 404)
    assert_problem(api.get(f"/api/v1/contacts/{theirs.id + 1000}"), 404)
