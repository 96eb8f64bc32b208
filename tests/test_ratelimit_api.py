"""Rate limits as clients see them: /event and /events, failed auth, per-key limits, forms.

The storage's own exactness is tested in test_ratelimit_storage.py; here the whole wiring is
driven through the Flask test client. Time is a fake clock shared by the app's rate-limit
storage (its `clock` option) and the header arithmetic in datalook.ratelimit.rules, so boundary
cases are exact and nothing sleeps.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from limits import parse as parse_limit
from sqlalchemy import select

from datalook import erasure
from datalook.extensions import db, limiter
from datalook.ingest.app import Dispatcher
from datalook.ingest.usage import counter_for
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, Event, Site
from datalook.ratelimit import rules
from datalook.ratelimit.mapped import MappedWindowStorage
from datalook.ratelimit.standing import Standing
from tests.conftest import _make_app, add_site, csrf_from, sign_up

T0 = 1_800_000_000.0  # a whole second, so boundary arithmetic is exact
DEFAULT = 500
WINDOW = 10
EVENT = {"event_name": "pageview", "page_path": "/pricing"}
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class FakeClock:
    """A settable clock: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The fake clock, also used by the header arithmetic of datalook.ratelimit.rules."""
    fake = FakeClock()
    monkeypatch.setattr(rules, "time", SimpleNamespace(time=fake))
    return fake


@pytest.fixture
def make_app(tmp_path, migrated_db, clock) -> Iterator:
    """Build one app (with config overrides) whose rate-limit storage runs on `clock`."""
    made = []

    def factory(**overrides):
        assert not made, "the limiter is a module singleton: one app per test"
        instance = tmp_path / "instance"
        instance.mkdir()
        shutil.copy(migrated_db, instance / "datalook.db")
        application = _make_app(instance, **overrides)
        storage = limiter.storage
        assert isinstance(storage, MappedWindowStorage)  # the embedded default
        # The storage's documented `clock` hook, set on this app's storage only: passing it
        # through RATELIMIT_STORAGE_OPTIONS would stay in the module-level limiter's options
        # and leak the fake clock into every app created later in the session.
        storage.clock = clock
        made.append(application)
        return application

    yield factory
    for application in made:
        limiter.storage.close()
        with application.app_context():
            counter_for(application.extensions).flush(db.engine)
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The default app, on the fake clock."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def new_key(app, domain: str = "example.com", name: str = "Backend") -> tuple[str, str]:
    """Create a user, a site and a key through the CLI; return (token, key_id)."""
    runner = app.test_cli_runner()
    email = f"owner@{domain}"
    runner.invoke(args=["users", "create", email, "--password", "correct horse battery"])
    runner.invoke(args=["sites", "create", domain, "--owner", email])
    result = runner.invoke(args=["keys", "create", "--site", domain, "--name", name])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    return token, tokens.parse(token).key_id


def wrong_secret(token: str) -> str:
    """A well-formed token (valid checksum) for the same key_id with another secret."""
    key_id = tokens.parse(token).key_id
    forged = tokens.generate(key_id).token
    assert forged != token
    return forged


def post_event(client, token: str | None, body: object = EVENT, path: str = "/event", **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(path, json=body, headers=headers, **kw)


def spend(client, token: str, n: int, expect: int = 204, path: str = "/event") -> None:
    """Send n requests that must all get `expect`; ?validate=1 keeps it fast (no storing)."""
    url = f"{path}?validate=1" if path == "/event" and expect == 200 else path
    for i in range(n):
        response = post_event(client, token, path=url)
        assert response.status_code == expect, (i, response.status_code, response.get_json())


def remaining(response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


def assert_headers(response, *, limit: int, left: int, reset: float, now: float, window: int):
    """All five rate-limit headers, with exact values."""
    h = response.headers
    assert h["X-RateLimit-Limit"] == str(limit)
    assert h["X-RateLimit-Remaining"] == str(left)
    assert h["X-RateLimit-Reset"] == str(math.ceil(reset))
    assert h["RateLimit-Policy"] == f'"default";q={limit};w={window}'
    assert h["RateLimit"] == f'"default";r={left};t={math.ceil(reset - now)}'


def assert_same_limit(said: str, expected: str) -> None:
    """The envelope's limit, in whatever wording, means the expected amount and window."""
    got, want = parse_limit(said), parse_limit(expected)
    assert (got.amount, got.get_expiry()) == (want.amount, want.get_expiry()), said


def assert_rate_limited(response, *, retry_after: int, limit: str) -> None:
    """A 429 in the JSON envelope, with the wait in the body and in Retry-After."""
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    assert response.headers["Retry-After"] == str(retry_after)
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert_same_limit(error["limit"], limit)
    assert error["retry_after"] == retry_after
    assert str(retry_after) in error["message"]


def stored_events(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Event.id)).all())


# -- the default limit: 500 per 10 seconds per key ---------------------------------------------


def test_501st_request_in_the_window_is_refused(app, client, clock):
    token, _ = new_key(app)
    spend(client, token, DEFAULT)
    assert stored_events(app) == DEFAULT
    refused = post_event(client, token)
    assert_rate_limited(refused, retry_after=WINDOW, limit="500 per 10 seconds")
    assert_headers(refused, limit=DEFAULT, left=0, reset=T0 + WINDOW, now=T0, window=WINDOW)
    assert stored_events(app) == DEFAULT  # nothing of a refused request is stored


def test_a_key_over_its_limit_gets_the_envelope_answer_byte_for_byte(app, client, clock):
    # The over-limit answer is built without werkzeug's Response (it is what a flooding key
    # gets, over and over); the client must see exactly what the envelope's 429 would be.
    token, _ = new_key(app)
    spend(client, token, DEFAULT)
    clock.advance(2.5)
    refused = post_event(client, token)
    state = rules.LimitState(parse_limit("500 per 10 seconds"), False, T0 + WINDOW, 0)
    expected = rules.too_many(state, "Rate limit of 500 per 10 seconds exceeded for this key")
    expected.headers.add("X-Content-Type-Options", "nosniff")
    assert refused.status == expected.status == "429 TOO MANY REQUESTS"
    assert list(refused.headers) == list(expected.headers)
    assert refused.get_data() == expected.get_data()
    assert refused.headers["Content-Length"] == str(len(refused.get_data()))
    assert refused.headers["Retry-After"] == "8"


def test_batches_share_the_bucket_and_count_once(app, client, clock):
    token, _ = new_key(app)
    batch = {"events": [EVENT] * 3}
    first = post_event(client, token, batch, path="/events")
    assert first.status_code == 200 and first.get_json()["accepted"] == 3
    assert remaining(first) == DEFAULT - 1
    spend(client, token, DEFAULT - 2, expect=200)
    last = post_event(client, token, batch, path="/events")
    assert last.status_code == 200 and remaining(last) == 0
    assert_rate_limited(post_event(client, token), retry_after=WINDOW, limit="500 per 10 seconds")
    assert_rate_limited(
        post_event(client, token, batch, path="/events"),
        retry_after=WINDOW,
        limit="500 per 10 seconds",
    )


def test_retry_after_is_rounded_up_and_never_early(app, client, clock):
    token, _ = new_key(app)
    clock.advance(0.3)  # the oldest hit at T0+0.3 leaves the window at exactly T0+10.3
    spend(client, token, 1)
    clock.advance(4.7)
    spend(client, token, DEFAULT - 1)
    clock.advance(4.0)  # T0+9: 1.3 s left, which must be announced as 2, not 1
    refused = post_event(client, token)
    assert_rate_limited(refused, retry_after=2, limit="500 per 10 seconds")
    wait = int(refused.headers["Retry-After"])

    clock.advance(wait - 1)  # one second early: still refused, with an honest wait
    assert_rate_limited(post_event(client, token), retry_after=1, limit="500 per 10 seconds")
    clock.advance(1)  # exactly Retry-After after the refusal: accepted
    assert post_event(client, token).status_code == 204
    # T0+11: the next oldest hits (T0+5) leave the window at T0+15.
    assert_rate_limited(post_event(client, token), retry_after=4, limit="500 per 10 seconds")


def test_waiting_exactly_retry_after_on_a_whole_second_boundary(app, client, clock):
    token, _ = new_key(app)
    spend(client, token, DEFAULT)
    clock.advance(9)
    refused = post_event(client, token)
    assert_rate_limited(refused, retry_after=1, limit="500 per 10 seconds")
    # Retry-After - 1 = 0 s later is the same instant: still refused.
    assert post_event(client, token).status_code == 429
    clock.advance(int(refused.headers["Retry-After"]))  # now T0+10: the whole burst expired
    spend(client, token, DEFAULT)
    assert post_event(client, token).status_code == 429


def test_every_event_response_carries_exact_headers(app, client, clock):
    token, _ = new_key(app)
    accepted = post_event(client, token)
    assert accepted.status_code == 204
    assert_headers(accepted, limit=DEFAULT, left=499, reset=T0 + 10, now=T0, window=WINDOW)

    clock.advance(2.5)
    invalid = post_event(client, token, {"event_name": "nope"})
    assert invalid.status_code == 400
    assert invalid.get_json()["error"]["code"] == "invalid_request"
    # Authenticated requests spend the budget whatever their outcome; the reset still
    # follows the oldest hit (T0), and the wait counts from the fake now.
    assert_headers(invalid, limit=DEFAULT, left=498, reset=T0 + 10, now=T0 + 2.5, window=WINDOW)

    seen = [remaining(invalid)]
    for _ in range(5):
        seen.append(remaining(post_event(client, token)))
    assert seen == [498, 497, 496, 495, 494, 493]

    spend(client, token, 493)
    refused = post_event(client, token)
    assert refused.status_code == 429
    assert_headers(refused, limit=DEFAULT, left=0, reset=T0 + 10, now=T0 + 2.5, window=WINDOW)
    assert refused.headers["Retry-After"] == "8"  # ceil(10 - 2.5)


def test_headers_on_the_batch_endpoint_and_validation_errors(app, client, clock):
    token, _ = new_key(app)
    ok = post_event(client, token, {"events": [EVENT]}, path="/events")
    bad = post_event(client, token, {"events": []}, path="/events")
    assert (ok.status_code, bad.status_code) == (200, 400)
    assert_headers(ok, limit=DEFAULT, left=499, reset=T0 + 10, now=T0, window=WINDOW)
    assert_headers(bad, limit=DEFAULT, left=498, reset=T0 + 10, now=T0, window=WINDOW)
    auth = {"Authorization": f"Bearer {token}"}
    wrong_type = client.post("/event", data="x", headers={**auth, "Content-Type": "text/plain"})
    too_big = client.post("/event", json={"page_path": "/" + "x" * 70_000}, headers=auth)
    assert (wrong_type.status_code, too_big.status_code) == (415, 413)
    assert_headers(wrong_type, limit=DEFAULT, left=497, reset=T0 + 10, now=T0, window=WINDOW)
    assert_headers(too_big, limit=DEFAULT, left=496, reset=T0 + 10, now=T0, window=WINDOW)


def test_refused_requests_do_not_count(app, client, clock):
    token, _ = new_key(app)
    spend(client, token, 250)
    clock.advance(5)
    spend(client, token, 250)
    clock.advance(1)
    for _ in range(50):  # a client that keeps hammering while refused
        assert post_event(client, token).status_code == 429
    clock.advance(4)  # T0+10: the first 250 leave the window, and only they
    spend(client, token, 250)
    refused = post_event(client, token)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"  # the T0+5 hits leave at T0+15


def test_a_burst_across_a_fixed_window_boundary_is_still_limited(app, client, clock):
    token, _ = new_key(app)
    clock.advance(9.9)
    spend(client, token, DEFAULT)
    clock.advance(0.2)  # T0+10.1: a fixed 10-second window would have started afresh
    assert_rate_limited(post_event(client, token), retry_after=10, limit="500 per 10 seconds")


def test_keys_are_independent(app, client, clock):
    token_a, _ = new_key(app, "a.example.com")
    token_b, _ = new_key(app, "b.example.com")
    spend(client, token_a, DEFAULT)
    assert post_event(client, token_a).status_code == 429
    first_b = post_event(client, token_b)
    assert first_b.status_code == 204 and remaining(first_b) == DEFAULT - 1
    spend(client, token_b, DEFAULT - 1)
    assert post_event(client, token_b).status_code == 429


def test_two_keys_of_one_site_have_their_own_budgets(app, client, clock):
    token_a, _ = new_key(app, name="First")
    token_b, _ = new_key(app, name="Second")
    spend(client, token_a, DEFAULT)
    assert post_event(client, token_a).status_code == 429
    assert remaining(post_event(client, token_b)) == DEFAULT - 1


# -- authentication failures -------------------------------------------------------------------


def test_wrong_secret_never_spends_the_keys_budget(app, client, clock):
    token, _ = new_key(app)
    forged = wrong_secret(token)
    statuses = [post_event(client, forged).status_code for _ in range(100)]
    # Failed attempts are limited per address (60 per minute), never charged to the key.
    assert statuses == [401] * 60 + [429] * 40
    first = post_event(client, token)
    assert first.status_code == 204
    assert remaining(first) == DEFAULT - 1
    spend(client, token, DEFAULT - 1)
    assert post_event(client, token).status_code == 429


def test_failed_auth_is_limited_per_address(app, client, clock):
    token, _ = new_key(app)
    forged = wrong_secret(token)
    bad_requests = [
        lambda: post_event(client, forged),
        lambda: post_event(client, None),  # no Authorization header
        lambda: post_event(client, "dl_live_not-a-token"),  # malformed
    ]
    for i in range(60):
        response = bad_requests[i % 3]()
        assert response.status_code == 401, i
        assert "X-RateLimit-Limit" not in response.headers  # no key, no key budget shown
    clock.advance(30)
    refused = post_event(client, forged)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert_same_limit(error["limit"], "60 per 60 seconds")
    assert error["retry_after"] == 30
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["X-RateLimit-Limit"] == "60"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Policy"] == '"default";q=60;w=60'

    # Another address is not affected, and neither is the real key from this one.
    other = post_event(client, forged, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 401
    assert post_event(client, token).status_code == 204

    clock.advance(30)  # a minute after the first failures: this address may try again
    assert post_event(client, forged).status_code == 401


# -- refusals that stand: remembered by the process until their reset time ------------------


def _standing_limits(app) -> rules.ApiLimits:
    """The ingestion app's limits, whose memory of standing refusals the tests look at."""
    dispatcher = app.wsgi_app
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher.ingestion.context.limits


def _set_limit(app, key_id: str, limit: str) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", key_id, limit])
    assert result.exit_code == 0, result.output


def _revoke(app, key_id: str) -> None:
    with app.app_context():
        apikeys.revoke_key(db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id)))


def _delete_site(app, key_id: str) -> None:
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        erasure.delete_site(key.site, None)


# What happens after a key's refusal is remembered, and what its next request must get: the
# same answer as a fresh look at the window and the key's row, whatever changed meanwhile.
STANDING_CHANGES = [
    ("a second later", lambda app, key_id, clock: clock.advance(1), 429, None),
    ("its oldest entry leaves the window", lambda app, key_id, clock: clock.advance(10), 204, None),
    (
        "its limit is raised",
        lambda app, key_id, clock: _set_limit(app, key_id, "5 per 10 seconds"),
        204,
        None,
    ),
    ("it is revoked", lambda app, key_id, clock: _revoke(app, key_id), 401, "revoked_token"),
    (
        "its site is deleted",
        lambda app, key_id, clock: _delete_site(app, key_id),
        401,
        "invalid_token",
    ),
]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [case[1:] for case in STANDING_CHANGES],
    ids=[case[0] for case in STANDING_CHANGES],
)
def test_a_remembered_refusal_answers_as_a_fresh_one_would(
    app, client, clock, change, status, code
):
    token, key_id = new_key(app)
    _set_limit(app, key_id, "3 per 10 seconds")
    spend(client, token, 3)
    assert post_event(client, token).status_code == 429
    assert len(_standing_limits(app).keys_refused) == 1  # remembered until T0 + 10
    change(app, key_id, clock)
    answer = post_event(client, token)
    assert answer.status_code == status, answer.get_json()
    if code is not None:
        assert answer.get_json()["error"]["code"] == code
    if status == 429:  # the wait counts down; every header as the window says
        assert_rate_limited(answer, retry_after=9, limit="3 per 10 seconds")
        assert_headers(answer, limit=3, left=0, reset=T0 + WINDOW, now=T0 + 1, window=WINDOW)


def test_a_remembered_refusal_is_byte_for_byte_a_fresh_one(app, client, clock):
    token, _ = new_key(app)
    spend(client, token, DEFAULT)
    assert post_event(client, token).status_code == 429
    clock.advance(2.5)
    remembered = post_event(client, token)
    _standing_limits(app).keys_refused.forget(
        (rules.parsed(f"{DEFAULT} per {WINDOW} seconds"), tokens.parse(token).key_id)
    )
    fresh = post_event(client, token)  # from the window itself
    assert remembered.status_code == fresh.status_code == 429
    assert list(remembered.headers) == list(fresh.headers)
    assert remembered.get_data() == fresh.get_data()


def test_a_remembered_failing_address_refuses_only_failed_attempts(app, client, clock):
    token, _ = new_key(app)
    forged = wrong_secret(token)
    assert [post_event(client, forged).status_code for _ in range(61)] == [401] * 60 + [429]
    assert len(_standing_limits(app).addresses_refused) == 1
    clock.advance(59)
    refused = post_event(client, forged)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    # A valid token from that address never fails its authentication: it goes through.
    assert post_event(client, token).status_code == 204
    clock.advance(1)  # the first failures leave the window: this address may try again
    assert post_event(client, forged).status_code == 401


def test_the_memory_of_standing_refusals_forgets_at_the_deadline_and_stays_bounded():
    standing: Standing[str] = Standing(max_entries=3)
    for n in range(3):
        standing.remember(n, f"v{n}", until=10.0 + n, now=0.0)
    assert [standing.get(n, 11.0) for n in range(3)] == [None, None, "v2"]
    standing.remember("past", "x", until=5.0, now=5.0)  # already over: nothing to keep
    assert standing.get("past", 4.0) is None
    for n in range(3, 10):  # more senders than it holds: it never grows past its bound
        standing.remember(n, f"v{n}", until=100.0, now=11.0)
        assert len(standing) <= 3
    assert standing.get(9, 11.0) == "v9"


# -- per-key limits and the configurable default -----------------------------------------------


def test_set_limit_takes_effect_on_the_next_request(app, client, clock):
    token, key_id = new_key(app)
    spend(client, token, DEFAULT)
    assert post_event(client, token).status_code == 429

    result = app.test_cli_runner().invoke(args=["keys", "set-limit", key_id, "2000 per 10 seconds"])
    assert result.exit_code == 0, result.output
    assert "2000 per 10 seconds" in result.output

    response = post_event(client, token)
    assert response.status_code == 204
    assert response.headers["X-RateLimit-Limit"] == "2000"
    assert response.headers["RateLimit-Policy"] == '"default";q=2000;w=10'
    # The new limit has its own bucket (limits keys on amount and window).
    assert remaining(response) == 1999
    spend(client, token, 1999, expect=200)
    assert_rate_limited(post_event(client, token), retry_after=10, limit="2000 per 10 seconds")

    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        assert key.rate_limit == "2000 per 10 seconds"


def test_set_limit_to_a_smaller_window_and_back_to_default(app, client, clock):
    token, key_id = new_key(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "set-limit", key_id, "3/minute"])
    assert result.exit_code == 0, result.output
    assert "3 per 60 seconds" in result.output  # stored normalised
    spend(client, token, 3)
    refused = post_event(client, token)
    assert_rate_limited(refused, retry_after=60, limit="3 per 60 seconds")
    assert refused.headers["RateLimit-Policy"] == '"default";q=3;w=60'

    result = runner.invoke(args=["keys", "set-limit", key_id, "default"])
    assert result.exit_code == 0, result.output
    response = post_event(client, token)
    assert response.status_code == 204
    assert response.headers["X-RateLimit-Limit"] == str(DEFAULT)


@pytest.mark.parametrize(
    "nonsense",
    ["lots", "0 per second", "0/minute", "", "2000 per fortnight", "per 10 seconds", "-5/second"],
)
def test_set_limit_refuses_nonsense(app, client, clock, nonsense):
    token, key_id = new_key(app)
    # "--" so that a limit starting with "-" reaches the command as the LIMIT argument.
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", key_id, "--", nonsense])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    assert "rate limit" in lines[0]
    with app.app_context():
        assert db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id)).rate_limit is None
    assert post_event(client, token).headers["X-RateLimit-Limit"] == str(DEFAULT)


@pytest.mark.parametrize(
    "absurd", ["10 per 0 seconds", "99999999999999999999 per second", "10 per 100 days"]
)
def test_set_limit_refuses_absurd_limits(app, clock, absurd):
    _, key_id = new_key(app)
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", key_id, absurd])
    assert result.exit_code != 0, result.output
    assert result.stderr.strip().startswith("Error: ") and "rate limit" in result.stderr


@pytest.mark.parametrize("several", ["10/second;100/minute", "10 per second, 100 per minute"])
def test_set_limit_does_not_silently_drop_limits(app, clock, several):
    _, key_id = new_key(app)
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", key_id, several])
    # Either refused clearly, or every limit kept; never one of them kept silently.
    if result.exit_code == 0:
        with app.app_context():
            stored = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id)).rate_limit
        assert "100" in stored, stored
    else:
        assert result.stderr.strip().startswith("Error: ")


def test_set_limit_for_an_unknown_key_is_refused(app, clock):
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", "A" * 12, "10/second"])
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("Error: no key")


def test_keys_page_shows_each_keys_limit(app, client, clock):
    sign_up(client)
    site_id = add_site(client, "shop.example.com")
    with app.app_context():
        site = db.session.get(Site, site_id)
        custom = apikeys.create_key(site, "Checkout", None).key.key_id
        apikeys.create_key(site, "Backend", None)
    result = app.test_cli_runner().invoke(args=["keys", "set-limit", custom, "2000 per 10 seconds"])
    assert result.exit_code == 0, result.output

    page = client.get(f"/sites/{site_id}/keys/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = {
        name: row
        for row in re.findall(r"<tr\b.*?</tr>", html, re.S)
        for name in ("Checkout", "Backend")
        if name in row
    }
    assert "2000 per 10 seconds" in rows["Checkout"]
    assert "500 per 10 seconds" in rows["Backend"]
    assert "2000 per 10 seconds" not in rows["Backend"]


def test_event_default_is_configurable(make_app, clock):
    app = make_app(RATELIMIT_EVENT_DEFAULT="3 per 5 seconds")
    client = app.test_client()
    token, _ = new_key(app)
    first = post_event(client, token)
    assert_headers(first, limit=3, left=2, reset=T0 + 5, now=T0, window=5)
    spend(client, token, 2)
    assert_rate_limited(post_event(client, token), retry_after=5, limit="3 per 5 seconds")
    clock.advance(5)
    assert post_event(client, token).status_code == 204


# -- sign-up and log-in --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/signup"])
def test_form_posts_are_limited_per_address(app, client, clock, path):
    form = client.get(path)
    token = csrf_from(form.get_data(as_text=True))
    # A different email each time: this is about the address (accounts have their own limit).
    emails = (f"someone{n}@example.com" for n in range(100))
    data = {"email": "someone@example.com", "password": "not the password", "csrf_token": token}
    statuses = [
        client.post(path, data={**data, "email": next(emails)}).status_code for _ in range(10)
    ]
    assert 429 not in statuses and 500 not in statuses
    refused = client.post(path, data=data)
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == "60"
    # GET is not limited: the form still shows.
    assert client.get(path).status_code == 200
    # Another address has its own budget.
    other = {**data, "email": next(emails)}
    assert (
        client.post(path, data=other, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code != 429
    )
    clock.advance(60)
    assert client.post(path, data={**data, "email": next(emails)}).status_code != 429


def test_form_limits_use_the_configured_storage(app, client, clock):
    storage = limiter.storage
    assert isinstance(storage, MappedWindowStorage)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data = {"email": "x@example.com", "password": "not the password", "csrf_token": token}
    assert storage.active_keys() == 0
    assert client.post("/login", data=data).status_code == 400
    assert storage.active_keys() == 2  # the address's window and the account's failures


def test_an_app_with_limits_off_leaves_the_next_app_limited(tmp_path, migrated_db, make_app):
    """RATELIMIT_ENABLED=False is one app's choice: the limiter is a process-wide object,
    and an app created after it must still be limited, on its own storage."""
    off = tmp_path / "limits-off"
    off.mkdir()
    shutil.copy(migrated_db, off / "datalook.db")
    unlimited = _make_app(off, RATELIMIT_ENABLED=False)
    with unlimited.app_context():
        db.engine.dispose()
    app = make_app()
    assert limiter.enabled
    storage = limiter.storage
    assert isinstance(storage, MappedWindowStorage)
    assert storage.path == str(tmp_path / "instance" / "ratelimit.window")
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data = {"email": "x@example.com", "password": "not the password", "csrf_token": token}
    statuses = [client.post("/login", data=data).status_code for _ in range(11)]
    assert statuses == [400] * 10 + [429]


def test_a_flood_of_client_addresses_cannot_leave_a_key_unlimited(tmp_path, make_app):
    """Per-address limits take a slot per address, which anyone can multiply; the keys'
    windows have a table of their own, so a full address table leaves them limited."""
    small = tmp_path / "addresses.window"
    MappedWindowStorage(f"datalook+mmap:///{small}", slots=4).check()  # keeps 4 slots
    app = make_app(
        RATELIMIT_STORAGE_URI=f"datalook+mmap:///{small}",
        RATELIMIT_EVENT_DEFAULT="3 per 10 seconds",
    )
    client = app.test_client()
    token, _ = new_key(app)
    for n in range(8):  # failed authentication from 8 addresses: more than the table holds
        forged = post_event(client, "dl_live_x", environ_base={"REMOTE_ADDR": f"192.0.2.{n}"})
        assert forged.status_code == 401
    assert limiter.storage.active_keys() == 4  # the address table is full
    assert limiter.storage.evictions == 4  # newcomers took the oldest slots, limits kept
    spend(client, token, 3)
    refused = post_event(client, token)
    assert refused.status_code == 429
    assert (tmp_path / "addresses-keys.window").exists()


def test_a_flood_of_addresses_never_switches_the_per_address_limit_off(tmp_path, make_app, caplog):
    """6,000 addresses on a 64-slot table: the limit of failed authentication still holds
    for the address that keeps trying, and nothing says RATE LIMITING DISABLED."""
    small = tmp_path / "addresses.window"
    MappedWindowStorage(f"datalook+mmap:///{small}", slots=64).check()
    app = make_app(RATELIMIT_STORAGE_URI=f"datalook+mmap:///{small}")
    client = app.test_client()
    for n in range(6000):
        address = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        forged = post_event(client, "dl_live_x", environ_base={"REMOTE_ADDR": address})
        assert forged.status_code == 401
    attacker = {"REMOTE_ADDR": "198.51.100.7"}
    answers = [post_event(client, "dl_live_x", environ_base=attacker) for _ in range(61)]
    assert [a.status_code for a in answers] == [401] * 60 + [429]
    assert "RATE LIMITING DISABLED" not in caplog.text
