"""The Apprise channel, through a ``json://`` URL that posts to a local receiver."""

from __future__ import annotations

import json

import pytest

from notifyd.channels.apprise import AppriseChannel
from notifyd.channels.base import PermanentDeliveryError, TransientDeliveryError
from notifyd.config import WebhookSettings
from tests.channels.conftest import Serve
from tests.channels.helpers import every_view, outgoing, submit, wait_run
from tests.channels.peers import Receiver, Reply

pytestmark = pytest.mark.anyio
# The tests' receiver is on loopback, which the SSRF guard refuses unless allowed.
LOOPBACK = WebhookSettings(allow_cidrs=["127.0.0.0/8"])
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"


def json_url(receiver: Receiver, path: str) -> str:
    return f"json://127.0.0.1:{receiver.port}{path}"


async def test_delivers_through_apprise(receiver: Receiver) -> None:
    result = await AppriseChannel(LOOPBACK).send(outgoing(), json_url(receiver, "/apprise"))

    assert result == {"service": "JSON"}
    [request] = receiver.on("/apprise")
    document = json.loads(request.body)
    assert document["title"] == "Disk almost full"
    assert document["message"] == "db-1 is at 91% disk."


async def test_failed_send_is_transient(receiver: Receiver) -> None:
    receiver.replies["/down"] = Reply(500, body=b"nope")
    with pytest.raises(TransientDeliveryError, match="JSON notification failed"):
        await AppriseChannel(LOOPBACK).send(outgoing(), json_url(receiver, "/down"))


@pytest.mark.parametrize("url", ["nosuchservice://token", "not a url", "json://", ""])
def test_unparseable_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        AppriseChannel(LOOPBACK).validate_recipient(url)
    assert not url or url not in str(caught.value)


def test_shown_form_hides_tokens() -> None:
    channel = AppriseChannel(LOOPBACK)
    shown = channel.describe_recipient(TELEGRAM)
    assert shown.startswith("tgram://")
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in shown
    generic = channel.describe_recipient("json://hooks.example.org/hooks/t0ken?key=abc")
    assert generic == "json://hooks.example.org/********"


def test_unparseable_url_is_422_at_submit(serve: Serve) -> None:
    client = serve(webhook=LOOPBACK)
    response = client.post(
        "/v1/notifications",
        json={"channel": "apprise", "to": ["json://127.0.0.1/x", "bogus://abc"], "message": "m"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("to[1]:")
    assert "bogus://abc" not in response.text


def test_end_to_end_and_the_url_token_is_never_shown(serve: Serve, receiver: Receiver) -> None:
    client = serve(webhook=LOOPBACK)
    url = f"json://notifyd:tok3n-secret@127.0.0.1:{receiver.port}/apprise"
    accepted = submit(client, channel="apprise", to=url, subject="hi", message="there")
    run = wait_run(client, accepted["tasks"][0]["id"])

    assert run["status"] == "succeeded", run["last_error"]
    [request] = receiver.on("/apprise")
    assert json.loads(request.body)["message"] == "there"
    shown = every_view(client, accepted, run)
    for text in shown:
        assert "tok3n-secret" not in text
    assert run["args"]["secret_recipient"] == "********"


def test_the_ssrf_guard_covers_hosts_apprise_connects_to(receiver: Receiver) -> None:
    guarded = AppriseChannel()
    for url in (
        "json://127.0.0.1/x",
        "json://localhost/x",
        "json://[::1]/x",
        "jsons://169.254.169.254/x",
    ):
        with pytest.raises(ValueError, match="SSRF"):
            guarded.validate_recipient(url)
    assert guarded.validate_recipient(TELEGRAM) == TELEGRAM  # a token, not a host
    assert LOOPBACK.allow_cidrs and AppriseChannel(LOOPBACK).validate_recipient(
        "json://127.0.0.1/x"
    )


async def test_a_name_resolving_to_a_forbidden_address_is_refused_at_send(
    receiver: Receiver,
) -> None:
    with pytest.raises(PermanentDeliveryError, match="SSRF"):
        await AppriseChannel().send(outgoing(), f"json://localhost:{receiver.port}/x")
