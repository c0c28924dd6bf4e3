"""Rate limits: per token (429 with Retry-After after the burst) and failed authentications per address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from notifyd.api.app import create_app
from notifyd.api.auth import STATE_KEY, Guard
from notifyd.api.ratelimit import RateLimiter
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from notifyd.tokens import Scope
from tests.api.security_support import FakeClock, bearer, create_token
from tests.conftest import make_settings


def test_bucket_allows_the_burst_then_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=3, rate=2.0, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") is None  # buckets are per key
    clock.advance(0.5)
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.advance(100)
    assert [limiter.acquire("a") for _ in range(4)][-1] is not None  # never more than the burst


def test_refund_gives_a_token_back() -> None:
    limiter = RateLimiter(burst=1, rate=1.0, clock=FakeClock())
    assert limiter.acquire("a") is None
    limiter.refund("a")
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None


@pytest.mark.parametrize(("burst", "rate"), [(0, 50.0), (200, 0.0)])
def test_zero_disables(burst: int, rate: float) -> None:
    limiter = RateLimiter(burst=burst, rate=rate, clock=FakeClock())
    assert not limiter.enabled
    assert all(limiter.acquire("a") is None for _ in range(1000))


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(burst=1, rate=1.0, clock=FakeClock(), max_keys=10)
    for n in range(100):
        limiter.acquire(str(n))
    assert len(limiter) == 10


# ---- through the API ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = make_settings(
        tmp_path / "home", token_cache_seconds=0, rate_limit_burst=5, rate_limit_per_second=1.0
    )
    engine = engine_for(settings)
    upgrade(engine)
    yield settings, engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(store: tuple[Settings, Engine], clock: FakeClock) -> Iterator[TestClient]:
    settings, _ = store
    app = create_app(settings)
    guard: Guard = getattr(app.state, STATE_KEY)
    # The same guard, on a clock that only the test moves.
    setattr(app.state, STATE_KEY, Guard(settings, guard.tokens, clock=clock))
    with TestClient(app) as test_client:
        yield test_client


def test_429_after_the_burst(
    store: tuple[Settings, Engine], client: TestClient, clock: FakeClock
) -> None:
    _, engine = store
    token = create_token(engine, "busy", Scope.read)
    other = create_token(engine, "calm", Scope.read)
    statuses = [client.get("/v1/tasks", headers=bearer(token)).status_code for _ in range(5)]
    assert statuses == [200] * 5
    response = client.get("/v1/tasks", headers=bearer(token))
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert client.get("/v1/tasks", headers=bearer(other)).status_code == 200
    clock.advance(1.0)
    assert client.get("/v1/tasks", headers=bearer(token)).status_code == 200


def test_failed_authentications_are_limited_per_address(
    store: tuple[Settings, Engine], client: TestClient, clock: FakeClock
) -> None:
    _, engine = store
    good = create_token(engine, "good", Scope.read)
    bad = bearer("ntd_" + "x" * 43)
    assert [client.get("/v1/tasks", headers=bad).status_code for _ in range(30)] == [401] * 30
    response = client.get("/v1/tasks", headers=bad)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) == 60
    # While the address is blocked even a good token is not looked at: guessing gains nothing.
    assert client.get("/v1/tasks", headers=bearer(good)).status_code == 429
    clock.advance(60)
    assert client.get("/v1/tasks", headers=bearer(good)).status_code == 200
    assert client.get("/v1/tasks", headers=bad).status_code == 401
    assert client.get("/v1/tasks", headers=bad).status_code == 429


def test_good_tokens_do_not_use_the_failure_budget(
    store: tuple[Settings, Engine], client: TestClient
) -> None:
    _, engine = store
    good = create_token(engine, "good", Scope.read)
    statuses = {client.get("/v1/tasks", headers=bearer(good)).status_code for _ in range(40)}
    assert statuses == {200, 429}
    # 40 good requests emptied the token's bucket, not the address's failure budget.
    assert client.get("/v1/tasks", headers=bearer("ntd_" + "y" * 43)).status_code == 401


def test_open_mode_is_not_limited(client: TestClient) -> None:
    assert all(client.get("/v1/tasks").status_code == 200 for _ in range(20))


def test_zero_burst_disables_the_token_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", token_cache_seconds=0, rate_limit_burst=0)
    engine = engine_for(settings)
    upgrade(engine)
    token = create_token(engine, "bulk", Scope.read)
    with TestClient(create_app(settings)) as client:
        statuses = {client.get("/v1/tasks", headers=bearer(token)).status_code for _ in range(300)}
    assert statuses == {200}
    engine.dispose()
