"""The access log's request target: token-like parameters and anything shaped like a token are
masked, after percent-decoding, in query and path alike (issue 18, Low 5)."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from cli.logs import RedactQuery
from notifyd.redact import MASK, redact_target
from notifyd.tokens import generate_token

# A fixed token of the generated shape, so that the test ids stay the same from run to run.
TOKEN = "ntd_" + "Zq3-x_9L" * 5 + "k2P"
assert len(TOKEN) == len(generate_token())
ENCODED = "".join(f"%{b:02X}" for b in TOKEN.encode())  # every character percent-encoded


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (f"/v1/tasks?t={TOKEN}", f"/v1/tasks?t={MASK}"),
        (f"/v1/tasks?%74oken={TOKEN}", f"/v1/tasks?%74oken={MASK}"),
        ("/v1/tasks?%74oken=x", f"/v1/tasks?%74oken={MASK}"),  # a secret's name, encoded
        (f"/v1/tasks?q={ENCODED}", f"/v1/tasks?q={MASK}"),
        (f"/v1/tasks?q={quote(quote(TOKEN, safe=''), safe='')}", f"/v1/tasks?q={MASK}"),
        (f"/v1/tasks?q=Bearer+{TOKEN}", f"/v1/tasks?q={MASK}"),
        (f"/v1/tasks?{TOKEN}", f"/v1/tasks?{MASK}"),
        (f"/v1/tasks?{TOKEN}=1", f"/v1/tasks?{MASK}=1"),
        (f"/v1/tasks/{TOKEN}", f"/v1/tasks/{MASK}"),
        (f"/v1/tasks/{ENCODED}/retry", f"/v1/tasks/{MASK}/retry"),
        (f"/{TOKEN}/publish?m=hi", f"/{MASK}/publish?m=hi"),
        (f"/v1/tasks/x{TOKEN}y", f"/v1/tasks/{MASK}"),
        ("/alerts?auth=QmVhcmVy&title=t", f"/alerts?auth={MASK}&title=t"),
        # Nothing token-shaped: shown as it came.
        ("/v1/tasks?status=failed&limit=5", "/v1/tasks?status=failed&limit=5"),
        ("/v1/tasks/01JABCDEF/retry", "/v1/tasks/01JABCDEF/retry"),
        ("/ntd_/x?q=ntd_", "/ntd_/x?q=ntd_"),
        ("/", "/"),
    ],
)
def test_redact_target(target: str, shown: str) -> None:
    assert redact_target(target) == shown


def test_access_log_filter_masks_the_target() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "GET", f"/v1/tasks/{TOKEN}?t={TOKEN}", "1.1", 404)
    assert RedactQuery().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and TOKEN[4:] not in line
    assert line == f'127.0.0.1:5000 - "GET /v1/tasks/{MASK}?t={MASK} HTTP/1.1" 404'
