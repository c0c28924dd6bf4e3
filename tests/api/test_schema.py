"""Schemathesis against the app's own OpenAPI schema, with its default checks: 0 failures.

It generates valid and invalid requests for every operation and checks, among others, that no
answer is a 5xx, that every status, header and body is the one the schema documents, that bad
input is refused and that a missing or bad token is refused. Examples are kept few so the suite
stays fast; ``NOTIFYD_SCHEMATHESIS_EXAMPLES`` raises them for a deeper run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans

from notifyd.api.app import create_app
from notifyd.db import engine_for, upgrade
from notifyd.tokens import Scope
from tests.api.security_support import create_token
from tests.conftest import make_settings

MAX_EXAMPLES = int(os.environ.get("NOTIFYD_SCHEMATHESIS_EXAMPLES", "30"))
# Schemathesis's own expectations, widened where the schema cannot say everything.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def schemathesis_config(token: str) -> SchemathesisConfig:
    """The default checks, authenticating as ``token`` (Schemathesis also tries without it)."""
    return SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "checks": {
                # 413 (the 64 KiB body limit, which JSON Schema cannot express) is a refusal too.
                "negative_data_rejection": {"expected-statuses": [*REJECTED, "413"]}
            },
            "operations": [
                {
                    # Whether a recipient is valid depends on the channel (an email address, a
                    # URL) and on the server's channels and destinations: a schema-valid
                    # notification can still be refused with 422.
                    "include-name": "POST /v1/notifications",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}
                    },
                }
            ],
        }
    )


@pytest.fixture
def api_schema(tmp_path: Path, db_url: str) -> Iterator[Any]:
    """The app on a fresh store, SQLite and PostgreSQL (which refuses more input), and an admin token."""
    # Limits off: Schemathesis sends many requests, and many with bad tokens on purpose.
    app_settings = make_settings(
        tmp_path / "home", db_url, rate_limit_burst=0, auth_failure_burst=0, token_cache_seconds=60
    )
    engine = engine_for(app_settings)
    upgrade(engine)
    token = create_token(engine, "schemathesis", Scope.admin)
    app = create_app(app_settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis_config(token))
    shutdown_lifespans()
    engine.dispose()


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # Schemathesis 4.32's lazy schemas read a private attribute that pytest 9 no longer sets.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any) -> None:
    response = case.call_and_validate()
    if case.meta is not None and case.meta.generation.mode.is_positive:
        # The token is applied: without it every check could pass on 401s alone.
        assert response.status_code != 401, response.text
