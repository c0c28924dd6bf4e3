"""The webhook channel against a real HTTP receiver on loopback; signatures checked with standardwebhooks."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from notifyd.channels.base import PermanentDeliveryError, TransientDeliveryError
from notifyd.channels.webhook import MAX_RECORDED_BODY, WebhookChannel, parse_retry_after
from notifyd.config import WebhookSettings
from notifyd.timeutil import utcnow
from tests.channels.conftest import Serve
from tests.channels.helpers import every_view, outgoing, submit, wait_run
from tests.channels.peers import Receiver, Reply, server_tls_context
from tests.support import free_port

pytestmark = pytest.mark.anyio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK = ["127.0.0.0/8"]


@asynccontextmanager
async def webhook(**fields: Any) -> AsyncIterator[WebhookChannel]:
    values: dict[str, Any] = {"secret": SECRET, "allow_cidrs": LOOPBACK, **fields}
    channel = WebhookChannel(WebhookSettings(**values), **fields.pop("channel_kwargs", {}))
    try:
        yield channel
    finally:
        await channel.aclose()


async def test_delivery_is_signed_per_standard_webhooks(receiver: Receiver) -> None:
    async with webhook() as channel:
        result = await channel.send(outgoing(), f"{receiver.url}/hook")

    assert result is not None
    assert result["status"] == 200
    assert result["body"] == '{"ok":true}'
    assert result["duration_ms"] >= 0
    [request] = receiver.on("/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "run_test0001"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert json.loads(request.body) == {
        "id": "ntf_test0001",
        "subject": "Disk almost full",
        "message": "db-1 is at 91% disk.",
        "data": {"host": "db-1"},
        "created_at": "2026-01-02T03:04:05+00:00",
        "priority": 3,
    }
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified["id"] == "ntf_test0001"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"91%", b"19%"), request.headers)
    other = "whsec_" + "A" * 40
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


async def test_without_a_secret_nothing_is_signed(receiver: Receiver) -> None:
    async with webhook(secret=None) as channel:
        await channel.send(outgoing(), f"{receiver.url}/hook")
    [request] = receiver.on("/hook")
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "run_test0001"


async def test_gone_is_permanent(receiver: Receiver) -> None:
    receiver.replies["/gone"] = Reply(410, body=b"unsubscribed")
    async with webhook() as channel:
        with pytest.raises(PermanentDeliveryError) as caught:
            await channel.send(outgoing(), f"{receiver.url}/gone")
    assert caught.value.response is not None
    assert caught.value.response["status"] == 410
    assert caught.value.response["body"] == "unsubscribed"


@pytest.mark.parametrize("retry_after", ["7", "date"])
async def test_too_many_requests_passes_retry_after(receiver: Receiver, retry_after: str) -> None:
    header = (
        "7" if retry_after == "7" else format_datetime(utcnow().replace(microsecond=0), usegmt=True)
    )
    receiver.replies["/busy"] = Reply(429, headers={"Retry-After": header})
    async with webhook() as channel:
        with pytest.raises(TransientDeliveryError) as caught:
            await channel.send(outgoing(), f"{receiver.url}/busy")
    assert caught.value.response is not None
    assert caught.value.response["status"] == 429
    if retry_after == "7":
        assert caught.value.retry_after == 7.0
    else:
        assert caught.value.retry_after is not None
        assert 0 <= caught.value.retry_after <= 60


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient_and_recorded(receiver: Receiver, status: int) -> None:
    receiver.replies["/broken"] = Reply(status, body=b"x" * (MAX_RECORDED_BODY * 3))
    async with webhook() as channel:
        with pytest.raises(TransientDeliveryError) as caught:
            await channel.send(outgoing(), f"{receiver.url}/broken")
    response = caught.value.response
    assert response is not None
    assert response["status"] == status
    assert len(response["body"]) == MAX_RECORDED_BODY
    assert response["body_truncated"] is True


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.replies["/moved"] = Reply(302, headers={"Location": f"{receiver.url}/elsewhere"})
    async with webhook() as channel:
        with pytest.raises(TransientDeliveryError, match="redirects are not followed") as caught:
            await channel.send(outgoing(), f"{receiver.url}/moved")
    assert caught.value.response is not None
    assert caught.value.response["location"] == f"{receiver.url}/elsewhere"
    assert receiver.on("/elsewhere") == []


async def test_timeout_is_transient(receiver: Receiver) -> None:
    receiver.replies["/slow"] = Reply(hold=threading.Event())
    async with webhook(timeout=0.3) as channel:
        with pytest.raises(TransientDeliveryError, match="did not answer"):
            await channel.send(outgoing(), f"{receiver.url}/slow")


async def test_refused_connection_is_transient() -> None:
    async with webhook() as channel:
        with pytest.raises(TransientDeliveryError):
            await channel.send(outgoing(), f"http://127.0.0.1:{free_port()}/hook")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.1", "2130706433", "[::1]", "0.0.0.0"],
)
async def test_ssrf_guard_refuses_loopback_without_the_allow_list(
    receiver: Receiver, host: str
) -> None:
    async with webhook(allow_cidrs=[]) as channel:
        with pytest.raises(PermanentDeliveryError, match="SSRF guard"):
            await channel.send(outgoing(), f"http://{host}:{receiver.port}/hook")
    assert receiver.requests == []


async def test_ssrf_guard_refuses_the_metadata_address() -> None:
    async with webhook(allow_cidrs=[]) as channel:
        with pytest.raises(PermanentDeliveryError, match=re.escape("169.254.169.254")):
            await channel.send(outgoing(), "http://169.254.169.254/latest/meta-data/")


async def test_allow_list_opens_only_its_range(receiver: Receiver) -> None:
    async with webhook(allow_cidrs=["10.0.0.0/8"]) as channel:
        with pytest.raises(PermanentDeliveryError):
            await channel.send(outgoing(), f"{receiver.url}/hook")
    async with webhook(allow_cidrs=["127.0.0.1/32"]) as channel:
        await channel.send(outgoing(), f"{receiver.url}/hook")
    assert len(receiver.on("/hook")) == 1


async def test_connects_to_the_checked_address_keeping_the_host_name(receiver: Receiver) -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = f"http://hooks.example.test:{receiver.port}/hook"
    channel = WebhookChannel(
        WebhookSettings(secret=SECRET, allow_cidrs=["127.0.0.1/32"]), resolver=resolver
    )
    try:
        await channel.send(outgoing(), url)
    finally:
        await channel.aclose()
    # The name exists only in this resolver: the connection went to the address it checked.
    assert lookups == ["hooks.example.test"]
    [request] = receiver.on("/hook")
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_https_verifies_the_url_name_not_the_address(ca: trustme.CA, ca_file: Path) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    # The certificate names only hooks.example.test: TLS must check the name, not 127.0.0.1.
    tls = server_tls_context(ca.issue_cert("hooks.example.test"))
    with Receiver(tls=tls) as receiver:
        url = f"https://hooks.example.test:{receiver.port}/hook"
        trusted = WebhookSettings(allow_cidrs=["127.0.0.1/32"], ca_file=ca_file)
        channel = WebhookChannel(trusted, resolver=resolver)
        untrusting = WebhookChannel(
            WebhookSettings(allow_cidrs=["127.0.0.1/32"]), resolver=resolver
        )
        try:
            result = await channel.send(outgoing(), url)
            with pytest.raises(TransientDeliveryError):
                await untrusting.send(outgoing(), url)
        finally:
            await channel.aclose()
            await untrusting.aclose()
    assert result is not None and result["status"] == 200
    assert len(receiver.on("/hook")) == 1


async def test_one_forbidden_address_among_several_refuses_the_name(receiver: Receiver) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.1.2.3"]

    channel = WebhookChannel(WebhookSettings(allow_cidrs=["127.0.0.1/32"]), resolver=resolver)
    try:
        with pytest.raises(PermanentDeliveryError, match=re.escape("10.1.2.3")):
            await channel.send(outgoing(), f"http://multi.example.test:{receiver.port}/hook")
    finally:
        await channel.aclose()
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "/relative/path",
        "http://",
        "example.org/hook",
        "http://exa mple.org/",
    ],
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookChannel(WebhookSettings()).validate_recipient(url)


def test_shown_url_hides_path_query_and_credentials() -> None:
    channel = WebhookChannel(WebhookSettings())
    shown = channel.describe_recipient(
        "https://user:pw@hooks.example.org:8443/T0/B0/XXXX?token=abc"
    )
    assert shown == "https://hooks.example.org:8443/********"
    assert channel.describe_recipient("https://hooks.example.org") == "https://hooks.example.org"


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="]
)
def test_bad_secrets_are_refused_without_echoing_them(secret: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookSettings(secret=secret)
    assert secret not in str(caught.value)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retries_keep_the_webhook_id(serve: Serve, receiver: Receiver) -> None:
    receiver.replies["/flaky"] = [Reply(503), Reply(200)]
    client = serve(webhook={"secret": SECRET, "allow_cidrs": LOOPBACK})
    accepted = submit(client, channel="webhook", to=f"{receiver.url}/flaky", message="hello")
    run_id = accepted["tasks"][0]["id"]
    run = wait_run(client, run_id)

    assert run["status"] == "succeeded"
    first, second = receiver.on("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == run_id
    assert first.body == second.body
    for request in (first, second):
        Webhook(SECRET).verify(request.body, request.headers)
    outcomes = [(a["outcome"], a["response"]["status"]) for a in run["attempts_detail"]]
    assert outcomes == [("transient_error", 503), ("succeeded", 200)]


def test_refused_by_the_guard_fails_the_run_at_once(serve: Serve, receiver: Receiver) -> None:
    client = serve()
    accepted = submit(client, channel="webhook", to=f"{receiver.url}/hook", message="hello")
    run = wait_run(client, accepted["tasks"][0]["id"])
    assert run["status"] == "failed"
    assert run["attempts"] == 1
    assert "SSRF guard" in run["last_error"]
    assert receiver.requests == []


def test_invalid_url_is_422_at_submit(serve: Serve) -> None:
    client = serve()
    response = client.post(
        "/v1/notifications", json={"channel": "webhook", "to": "gopher://x", "message": "m"}
    )
    assert response.status_code == 422


def test_adhoc_url_is_masked_wherever_it_is_shown(serve: Serve, receiver: Receiver) -> None:
    client = serve(webhook={"allow_cidrs": LOOPBACK})
    url = f"{receiver.url}/hooks/T0123/s3cr3t-path-token?sig=abc"
    accepted = submit(client, channel="webhook", to=url, message="hello")
    run_id = accepted["tasks"][0]["id"]
    run = wait_run(client, run_id)
    assert run["status"] == "succeeded"
    assert receiver.on("/hooks/T0123/s3cr3t-path-token")

    shown = every_view(client, accepted, run)
    for text in shown:
        assert "s3cr3t-path-token" not in text
    assert run["recipient"] == f"{receiver.url}/********"
    assert run["args"]["secret_recipient"] == "********"


class RawPeer:
    """A TCP peer on 127.0.0.1 that answers every connection with ``script``: bytes, pauses, a close."""

    def __init__(self, script: list[bytes | float]) -> None:
        import socket

        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import time

        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                for step in self.script:
                    if self.stop.is_set():
                        break
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        conn.sendall(step)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _drip(chunk: bytes, times: int, pause: float = 0.2) -> list[bytes | float]:
    """``chunk``, a pause, ``times`` over."""
    return [part for _ in range(times) for part in (chunk, pause)]


async def test_an_accepted_delivery_whose_body_drips_or_breaks_is_still_delivered() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    dripping = RawPeer([head, *_drip(b"x", 50)])  # 10 s of body against a 0.5 s timeout
    broken = RawPeer([head, b"partial"])  # then the connection closes mid-body
    try:
        async with webhook(timeout=0.5) as channel:
            slow = await channel.send(outgoing(), dripping.url)
            cut = await channel.send(outgoing(), broken.url)
    finally:
        dripping.close()
        broken.close()
    assert slow is not None and slow["status"] == 200 and slow["body_error"] == "TimeoutError"
    assert cut is not None and cut["status"] == 200 and "body_error" in cut


async def test_a_peer_that_drips_its_headers_times_out_as_a_whole() -> None:
    peer = RawPeer(_drip(b"H", 50))
    try:
        async with webhook(timeout=0.5) as channel:
            with pytest.raises(TransientDeliveryError, match="did not answer within"):
                await channel.send(outgoing(), peer.url)
    finally:
        peer.close()
