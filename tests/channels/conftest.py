"""Fixtures for the channel tests: real peers on loopback, messages, and an app to run deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi.testclient import TestClient

from notifyd.api.app import create_app
from notifyd.db import engine_for, upgrade
from tests.channels.helpers import FAST_RETRY
from tests.channels.peers import Receiver
from tests.conftest import make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver on 127.0.0.1."""
    with Receiver() as running:
        yield running


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority only the tests trust."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA's certificate as a PEM file."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


Serve = Callable[..., TestClient]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start an app (dispatcher included) with settings overrides; returns its TestClient."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> TestClient:
            overrides.setdefault("retry", FAST_RETRY)
            settings = make_settings(tmp_path / "home", **overrides)
            settings.home.mkdir(parents=True, exist_ok=True)
            engine = engine_for(settings)
            upgrade(engine)
            engine.dispose()
            return stack.enter_context(TestClient(create_app(settings)))

        yield start
