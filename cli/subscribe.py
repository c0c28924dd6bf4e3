"""``notifyd subscribe TOPIC``: print each message of a topic as it is published, like ``ntfy
subscribe``; it reconnects by itself, asking for what it missed (``since`` the last message)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import console, err_console, handle_errors, settings_from
from notifyd.errors import ClientError

if TYPE_CHECKING:
    from rich.text import Text

RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
_PRIORITY = {1: "min", 2: "low", 4: "high", 5: "urgent"}


def message_line(event: dict[str, Any]) -> Text:
    """``09:14:02 alerts [high] Title: message`` with every value shown literally."""
    from rich.text import Text

    when = datetime.fromtimestamp(int(event.get("time") or 0), UTC).astimezone()
    line = Text.assemble((when.strftime("%H:%M:%S"), "dim"), " ", (str(event.get("topic")), "cyan"))
    priority = _PRIORITY.get(int(event.get("priority") or 3))
    if priority:
        line.append(f" [{priority}]", style="red" if priority in ("high", "urgent") else "dim")
    if event.get("tags"):
        line.append(" " + ",".join(str(t) for t in event["tags"]), style="magenta")
    if event.get("title"):
        line.append(" " + str(event["title"]) + ":", style="bold")
    line.append(" " + str(event.get("message", "")))
    return line


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
        bool, typer.Option("--poll", help="Print the kept messages and stop (since all).")
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
                        console.print(message_line(event))
                if poll:
                    return
            except ClientError as exc:
                if exc.http_status is not None:  # refused, not cut off: trying again won't help
                    raise
                wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                err_console.print(f"{exc}; reconnecting in {wait:.0f} s", markup=False)
                time.sleep(wait)
