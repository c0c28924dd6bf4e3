"""``notifyd subscribe TOPIC``: print each message of a topic as it is published, like ``ntfy
subscribe``; it reconnects by itself, asking for what it missed (``since`` the last message)."""

import json
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import console, err_console, handle_errors, settings_from
from notifyd.errors import ClientError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
_PRIORITY = {1: "min", 2: "low", 4: "high", 5: "urgent"}
# A publisher's line breaks (every kind a terminal or Rich honours) and other control characters:
# shown so that no message can print what looks like another message's line or move the cursor.
_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _literal(value: object, *, breaks: str = " ") -> str:
    """``value`` as text with its line breaks replaced by ``breaks`` and control characters
    spelled out (``\\x1b``)."""
    text = _BREAKS.sub(breaks, str(value))
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def message_line(event: dict[str, Any], console: "Console") -> "Text":
    """``09:14:02 alerts [high] Title: message`` with every value shown literally; the
    message's own lines, and what does not fit the console's width, continue indented under
    it, so every line that starts with a time is a message of its own."""
    from rich.text import Text

    when = datetime.fromtimestamp(int(event.get("time") or 0), UTC).astimezone()
    stamp = when.strftime("%H:%M:%S") + " "
    body = Text(_literal(event.get("topic")), style="cyan")
    priority = _PRIORITY.get(int(event.get("priority") or 3))
    if priority:
        body.append(f" [{priority}]", style="red" if priority in ("high", "urgent") else "dim")
    if event.get("tags"):
        body.append(" " + ",".join(_literal(t) for t in event["tags"]), style="magenta")
    if event.get("title"):
        body.append(" " + _literal(event["title"]) + ":", style="bold")
    body.append(" " + _literal(event.get("message", ""), breaks="\n"))
    room = max(console.width - len(stamp), 20)
    lines = body.wrap(console, room)
    for line in lines:
        line.rstrip()  # a wrapped line keeps the space it broke at
    return Text("\n" + " " * len(stamp)).join([Text(stamp, style="dim") + lines[0], *lines[1:]])


@handle_errors
def subscribe(
    ctx: typer.Context,
    topics: Annotated[list[str], typer.Argument(metavar="TOPIC", help="One or more inbox topics.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Also print kept messages: all, latest, a duration (1h), a Unix time, "
            "or a message id.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each message as ntfy's JSON, one per line.")
    ] = False,
    poll: Annotated[
        bool,
        typer.Option(
            "--poll",
            help="Print the kept messages and stop (since all); a server that cannot be "
            "reached is an error, not retried.",
        ),
    ] = False,
) -> None:
    """Print each message of TOPIC as it is published (Ctrl-C stops)."""
    from notifyd.client import NotifydClient

    settings = settings_from(ctx)
    token = settings.token.get_secret_value() if settings.token else None
    last: str | None = since
    failures = 0
    with NotifydClient(settings.base_url, token=token) as client:
        while True:
            try:
                for event in client.subscribe(topics, since=last, poll=poll):
                    if event.get("event") != "message":
                        failures = 0
                        if last is None or last in ("none", ""):
                            last = str(event.get("time"))  # reconnect: what came since now
                        continue
                    last = str(event["id"])  # reconnect: what came after this one
                    if as_json:
                        print(json.dumps(event, ensure_ascii=False), flush=True)
                    else:
                        console.print(message_line(event, console), soft_wrap=True)
                if poll:
                    return
            except ClientError as exc:
                # Refused, not cut off: trying again won't help. A poll is one look: a server
                # that cannot be reached is its answer (a script should not hang on it).
                if exc.http_status is not None or poll:
                    raise
                wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                err_console.print(
                    f"{exc}; reconnecting in {wait:.0f} s", markup=False, soft_wrap=True
                )
                time.sleep(wait)
