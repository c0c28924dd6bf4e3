"""Where a submission goes, as runs store it, and back again at delivery time.

A run stores what may be shown. An ad-hoc recipient whose channel masks it when shown (an Apprise
URL with its token, a webhook URL) is stored in full, encrypted (notifyd.notifications.secretbox),
under ``secret_recipient``, which every view of a run's arguments masks, and is decrypted only
to deliver; a destination's run stores only the destination's name and a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notifyd.channels.base import Channel
from notifyd.config import DestinationSettings
from notifyd.errors import InvalidInput
from notifyd.models import NotificationCreate
from notifyd.notifications.destinations import Destinations, recipient_key
from notifyd.notifications.secretbox import SecretBox, SecretKeyError

INBOX = "inbox"


# Target, Route and Submission are made for every request: not frozen, which made building
# them three times as slow.
@dataclass(slots=True)
class Target:
    """One run to stage: the recipient as shown, and the delivery task's recipient arguments;
    its own channel when not the route's, and the inbox topic it stores a message in."""

    shown: str
    args: dict[str, Any]
    channel: str | None = None
    topic: str | None = None


@dataclass(slots=True)
class Route:
    """The channel, the destination (if named) and one target per run."""

    channel: str
    destination: str | None
    targets: list[Target]


def adhoc_route(channel: Channel, recipients: list[str], secrets: SecretBox | None = None) -> Route:
    """The route to recipients given in ``to`` (already validated and canonical); a recipient
    shown masked is stored encrypted with ``secrets`` (in clear only without a box: tests)."""
    targets = []
    for recipient in recipients:
        shown = channel.describe_recipient(recipient)
        args: dict[str, Any] = {"recipient": shown}
        if shown != recipient:
            args["secret_recipient"] = secrets.encrypt(recipient) if secrets else recipient
        topic = recipient if channel.name == INBOX else None
        targets.append(Target(shown, args, topic=topic))
    return Route(channel.name, None, targets)


def destination_route(body: NotificationCreate, destinations: Destinations) -> Route:
    """The route to the destination ``body`` names."""
    assert body.destination is not None
    destination = destinations.get(body.destination)
    if "channel" in body.model_fields_set and body.channel != destination.channel:
        raise InvalidInput(
            f"channel: destination {destination.name!r} delivers through "
            f"{destination.channel!r}; leave channel out"
        )
    to_inbox = destination.channel == INBOX
    targets = [
        Target(
            destination.label(index),
            {
                "recipient": destination.label(index),
                "destination": destination.name,
                "recipient_key": recipient_key(recipient),
            },
            topic=recipient if to_inbox else None,
        )
        for index, recipient in enumerate(destination.recipients)
    ]
    also = destination.inbox_topic
    if also is not None and not (to_inbox and also in destination.recipients):
        targets.append(Target(also, {"recipient": also}, channel=INBOX, topic=also))
    return Route(destination.channel, destination.name, targets)


def delivery_target(
    destinations: Destinations,
    *,
    channel: str,
    recipient: str,
    destination: str | None,
    recipient_key: str | None,
    secret_recipient: str | None,
    secrets: SecretBox | None = None,
) -> tuple[str, DestinationSettings | None]:
    """The recipient to deliver to and its destination's settings, from a run's arguments; a
    stored secret recipient is decrypted here, and only here (SecretKeyError: the wrong key)."""
    if destination is not None:
        settings, resolved = destinations.resolve(destination, recipient_key or "", channel)
        return resolved, settings
    if secret_recipient is None:
        return recipient, None
    if SecretBox.is_encrypted(secret_recipient) and secrets is None:
        raise SecretKeyError("cannot decrypt the stored recipient: this process has no secret key")
    return (secrets.decrypt(secret_recipient) if secrets else secret_recipient), None
