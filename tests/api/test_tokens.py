"""Tokens in the store (only hashes) and the in-memory token cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from notifyd import tokens as auth
from notifyd.api.tokencache import TokenCache
from notifyd.api.tokenprobe import TokenProbe
from notifyd.db import engine_for, read_session, upgrade, write_session
from notifyd.errors import InvalidInput, NotFound
from notifyd.tokens import Scope
from tests.api.security_support import FakeClock, create_token
from tests.conftest import make_settings


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = engine_for(make_settings(tmp_path / "home"))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_tokens_are_random_and_high_entropy() -> None:
    tokens = {auth.generate_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("ntd_") and len(t) >= 4 + 43 for t in tokens)


def test_the_store_holds_only_the_hash(engine: Engine, tmp_path: Path) -> None:
    token = create_token(engine, "ci", Scope.send)
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM api_token")]
    assert token not in repr(rows)
    assert auth.hash_token(token) in repr(rows)
    engine.dispose()  # checkpoint the WAL so that the file holds everything
    for path in (tmp_path / "home").iterdir():
        assert token.encode() not in path.read_bytes(), path
        assert token[4:].encode() not in path.read_bytes(), path


def test_create_list_revoke(engine: Engine) -> None:
    create_token(engine, "b-sender", Scope.send)
    create_token(engine, "a-admin", Scope.admin)
    with write_session(engine) as session:
        listed = auth.list_tokens(session=session)
        assert [(t.name, t.scope) for t in listed] == [("a-admin", "admin"), ("b-sender", "send")]
        assert "token" not in listed[0].model_dump()
        revoked = auth.revoke_token(session=session, name="b-sender")
        assert revoked.revoked_at is not None
        again = auth.revoke_token(session=session, name="b-sender")
        assert again.revoked_at == revoked.revoked_at
    with read_session(engine) as session:
        assert [t.name for t in auth.list_tokens(session=session)] == ["a-admin"]
        assert len(auth.list_tokens(session=session, include_revoked=True)) == 2
        assert auth.count_active_tokens(session) == 1


def test_names_are_unique_and_never_reused(engine: Engine) -> None:
    create_token(engine, "ci", Scope.send)
    with pytest.raises(InvalidInput, match="already exists"):
        create_token(engine, "ci", Scope.read)
    with write_session(engine) as session:
        auth.revoke_token(session=session, name="ci")
    with pytest.raises(InvalidInput, match="revoked"):
        create_token(engine, "ci", Scope.read)


@pytest.mark.parametrize("name", ["", " ", "-x", "a b", "x" * 101, "naïve"])
def test_bad_names(engine: Engine, name: str) -> None:
    with pytest.raises(InvalidInput, match="name"):
        create_token(engine, name, Scope.send)


def test_revoking_an_unknown_token(engine: Engine) -> None:
    with write_session(engine) as session, pytest.raises(NotFound):
        auth.revoke_token(session=session, name="ghost")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.org", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


def test_refusal_to_serve() -> None:
    assert auth.refusal_to_serve(host="127.0.0.1", insecure_no_auth=False, active_tokens=0) is None
    assert auth.refusal_to_serve(host="0.0.0.0", insecure_no_auth=False, active_tokens=1) is None
    assert auth.refusal_to_serve(host="0.0.0.0", insecure_no_auth=True, active_tokens=0) is None
    message = auth.refusal_to_serve(host="0.0.0.0", insecure_no_auth=False, active_tokens=0)
    assert message is not None
    assert "notifyd tokens create" in message and "--insecure-no-auth" in message


# ---- the cache ------------------------------------------------------------------------------


class RecordingWriter:
    """Stands in for the group-commit writer: runs nothing, counts the writes."""

    def __init__(self) -> None:
        self.writes: list[Callable[[Connection], Any]] = []

    def __call__(self, fn: Callable[[Connection], Any]) -> Future[Any]:
        self.writes.append(fn)
        future: Future[Any] = Future()
        future.set_result(None)
        return future


def test_cache_reloads_only_when_stale(engine: Engine) -> None:
    clock = FakeClock()
    cache = TokenCache(engine, ttl=2.0, clock=clock)
    assert cache.stale()
    cache.refresh()
    assert not cache.any_active
    token = create_token(engine, "late", Scope.read)
    cache.refresh()
    assert cache.lookup(token) is None  # still the old copy
    clock.advance(2.0)
    cache.refresh()
    info = cache.lookup(token)
    assert info is not None and info.name == "late" and info.scope == Scope.read
    with write_session(engine) as session:
        auth.revoke_token(session=session, name="late")
    clock.advance(2.0)
    cache.refresh()
    assert cache.lookup(token) is None
    assert not cache.any_active


def test_a_copy_near_its_ttl_is_reloaded_in_the_background(engine: Engine) -> None:
    clock = FakeClock()
    cache = TokenCache(engine, ttl=2.0, clock=clock)
    cache.refresh()
    token = create_token(engine, "ahead", Scope.send)

    async def requests() -> None:
        clock.advance(1.0)  # half the ttl: the copy is trusted as it is
        assert cache.reload_ahead() is None
        clock.advance(0.5)  # three quarters: reloaded without anyone waiting for it
        reloading = cache.reload_ahead()
        assert reloading is not None and cache.reload_ahead() is reloading  # once at a time
        assert not cache.stale()
        await reloading
        assert cache.reload_ahead() is None  # fresh again

    asyncio.run(requests())
    info = cache.lookup(token)
    assert info is not None and info.name == "ahead"
    clock.advance(1.9)
    assert not cache.stale()  # its age counts from the reload


def test_a_failed_background_reload_leaves_the_copy_until_its_ttl(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    cache = TokenCache(engine, ttl=2.0, clock=clock)
    cache.refresh()
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_token RENAME TO api_token_gone"))

    async def requests() -> None:
        clock.advance(1.5)
        reloading = cache.reload_ahead()
        assert reloading is not None
        with pytest.raises(OperationalError):
            await reloading

    asyncio.run(requests())
    assert "reloading the token table failed" in caplog.text
    assert not cache.stale()  # the old copy is still trusted until its ttl
    clock.advance(0.5)
    assert cache.stale()  # requests now reload it themselves (and fail with the store)


@pytest.mark.parametrize("candidate", ["", "ntd_", "ntd_" + "a" * 200, "x" * 47])
def test_cache_rejects_junk(engine: Engine, candidate: str) -> None:
    create_token(engine, "real", Scope.read)
    cache = TokenCache(engine, ttl=60)
    cache.refresh()
    assert cache.lookup(candidate) is None


def test_last_use_is_written_at_most_once_per_interval(engine: Engine) -> None:
    token = create_token(engine, "busy", Scope.send)
    clock, writer = FakeClock(), RecordingWriter()
    cache = TokenCache(engine, ttl=60, submit_write=writer, touch_interval=60, clock=clock)
    cache.refresh()
    info = cache.lookup(token)
    assert info is not None
    for _ in range(1000):
        cache.touch(info)
    assert len(writer.writes) == 1
    clock.advance(60)
    cache.touch(info)
    assert len(writer.writes) == 2
    with engine.begin() as conn:
        writer.writes[0](conn)
    with read_session(engine) as session:
        assert auth.list_tokens(session=session)[0].last_used_at is not None


def test_probe_sees_tokens_made_and_revoked_by_another_connection(engine: Engine) -> None:
    probe = TokenProbe(engine)
    cache = TokenCache(engine, ttl=3600)
    cache.refresh()
    try:
        assert asyncio.run(probe.counts()) == cache.counts == (0, 0)
        with write_session(engine) as session:  # a write that is not a token's
            session.connection().execute(text("DELETE FROM api_token WHERE id < 0"))
        assert asyncio.run(probe.counts()) == (0, 0)
        create_token(engine, "first", Scope.send)
        assert asyncio.run(probe.counts()) == (1, 0) != cache.counts
        with write_session(engine) as session:
            auth.revoke_token(session=session, name="first")
        assert asyncio.run(probe.counts()) == (1, 1)
        cache.refresh(force=True)
        assert cache.counts == (1, 1)
    finally:
        probe.close()


def test_probe_on_sqlite_reads_once_per_pass_of_the_loop(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = TokenProbe(engine)
    reads: list[tuple[int, int]] = []
    read = probe._sqlite_counts

    def counting(path: Path) -> tuple[int, int]:
        reads.append(read(path))
        return reads[-1]

    monkeypatch.setattr(probe, "_sqlite_counts", counting)

    async def ask_across_passes() -> list[tuple[int, int]]:
        first = [await probe.counts() for _ in range(10)]  # one pass: one read shared
        create_token(engine, "made-meanwhile", Scope.send)
        same_pass = await probe.counts()
        await asyncio.sleep(0)  # the next pass: a request received now is answered afresh
        return [*first, same_pass, await probe.counts()]

    try:
        answers = asyncio.run(ask_across_passes())
        assert answers == [(0, 0)] * 11 + [(1, 0)]
        assert reads == [(0, 0), (1, 0)]
    finally:
        probe.close()


@pytest.mark.postgres
def test_probe_on_postgresql_shares_counts_begun_after_each_caller_asked(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(make_settings(tmp_path / "home", postgres_url))
    upgrade(engine)
    probe = TokenProbe(engine)
    counted: list[tuple[int, int]] = []
    count = probe._count_through_engine

    def counting() -> tuple[int, int]:
        counted.append(count())
        return counted[-1]

    async def ask_while_a_count_runs() -> list[tuple[int, int]]:
        first = asyncio.ensure_future(probe.counts())
        await asyncio.sleep(0)  # the first count is under way
        create_token(engine, "made-meanwhile", Scope.send)  # after that count may have read
        later = [probe.counts() for _ in range(20)]
        return [await first, *await asyncio.gather(*later)]

    try:
        assert asyncio.run(probe.counts()) == (0, 0)
        monkeypatch.setattr(probe, "_count_through_engine", counting)
        answers = asyncio.run(ask_while_a_count_runs())
        # Everyone who asked after the token was made sees it, and they shared counts: the
        # first, and one or two begun after they asked (as the first ended among their asks).
        assert answers[1:] == [(1, 0)] * 20
        assert 2 <= len(counted) <= 3
    finally:
        probe.close()
        engine.dispose()
