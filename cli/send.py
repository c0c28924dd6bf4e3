"""``notifyd send``: post a notification through the API and, with ``--wait``, follow its runs."""

import contextlib
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import console, err_console, handle_errors, settings_from
from notifyd.errors import ClientError, InvalidInput

if TYPE_CHECKING:
    from rich.text import Text

    from notifyd.client import NotifydClient

# Exit codes of `send --wait` (also in the command's --help and the CLI page of the docs).
EXIT_DELIVERED = 0  # every run succeeded (without --wait: the server accepted the notification)
EXIT_ERROR = 1  # nothing was sent: bad input, unreachable or refusing server
EXIT_UNDELIVERED = 4  # every run ended, but at least one failed or was cancelled
EXIT_TIMED_OUT = 5  # --timeout passed with runs still queued, running or retrying

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
POLL_SECONDS = 0.2


def _parse_data(data: str | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("--data must be a JSON object")
    return value


def _run_line(run: dict[str, Any]) -> "Text":
    """``  task run_…  bob@example.com  failed  the error`` with every value shown literally."""
    from rich.text import Text

    line = Text.assemble("  task ", str(run["id"]), "  ", str(run.get("to") or "-"), "  ")
    line.append(str(run["status"]), style=_STATUS_STYLE.get(str(run["status"]), ""))
    if run.get("error"):
        line.append("  ")
        line.append(str(run["error"]).strip().splitlines()[0], style="red")
    return line


_STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "dim", "retrying": "yellow"}


def _unauthorized_hint(exc: ClientError, token_set: bool) -> ClientError:
    if exc.http_status != 401:
        return exc
    hint = "401 Unauthorized: " + (
        "the server refused the token in NOTIFYD_TOKEN (or `token` in the config file): "
        "check it, or create another with `notifyd tokens create NAME`"
        if token_set
        else "this server needs a token: create one with `notifyd tokens create NAME`, "
        "then `export NOTIFYD_TOKEN=<token>` (or set `token` in the config file)"
    )
    return ClientError(hint, status=401)


@handle_errors
def send(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="The message body.")],
    to: Annotated[
        list[str] | None,
        typer.Option("--to", "-t", metavar="RECIPIENT", help="A recipient; repeat for more."),
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option(
            "--destination", "-d", metavar="NAME", help="A destination configured on the server."
        ),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="The subject.")] = None,
    channel: Annotated[str | None, typer.Option(help="log, email, webhook, apprise, …")] = None,
    data: Annotated[
        str | None, typer.Option(metavar="JSON", help="Extra data: a JSON object.")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Server URL.", show_default="the configured server"),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(metavar="KEY", help="Send at most once per key (kept 24 h).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", metavar="TIME", help="Deliver at this RFC 3339 time (at most 30 days ahead)."
        ),
    ] = None,
    in_: Annotated[
        str | None,
        typer.Option(
            "--in", metavar="DELAY", help="Deliver after this long: 30m, 2h, 1d or seconds."
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(min=1, max=5, help="1 (min) to 5 (urgent); 3 is normal.", show_default="3"),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Follow the runs until they end (see the exit codes above)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="With --wait: give up after this many seconds."),
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Send a notification through the API (a quick way to test a server).

    With --wait the exit code says how it ended: 0 every run delivered, 1 not sent (an error),
    4 some run failed or was cancelled, 5 timed out with runs still pending.
    """
    from datetime import datetime

    from rich.text import Text

    from cli.render import when
    from notifyd.client import NotifydClient

    if not to and destination is None:
        raise InvalidInput("give --to (recipients) or --destination (a configured name)")
    if at is not None and in_ is not None:
        raise InvalidInput("give --at or --in, not both")
    settings = settings_from(ctx, server_url=server)
    token = settings.token.get_secret_value() if settings.token else None
    with NotifydClient(settings.base_url, token=token) as client:
        try:
            accepted = client.send(
                to=to,
                message=message,
                subject=subject,
                channel=channel,
                destination=destination,
                data=_parse_data(data),
                idempotency_key=idempotency_key,
                send_at=at,
                delay=in_,
                priority=priority,
            )
        except ClientError as exc:
            raise _unauthorized_hint(exc, token is not None) from None
        replayed = accepted.pop("replayed", False)
        # The ids first, at once: the notification is durable from here on, whatever follows.
        head = Text.assemble("notification ", (str(accepted["id"]), "bold"), " accepted")
        if replayed:
            head.append(" (replayed: already sent with this idempotency key)")
        if accepted.get("send_at"):
            due = datetime.fromisoformat(str(accepted["send_at"]).replace("Z", "+00:00"))
            head.append(f", scheduled for {when(due, zone=True)}")
        if not as_json:
            console.print(head, highlight=False)
            for run in accepted["tasks"]:
                console.print(_run_line(run), highlight=False)
        if not wait:
            if as_json:
                console.print_json(json.dumps(accepted))
            return
        if as_json:
            err_console.print(head, highlight=False)
        timed_out = _follow(client, accepted, timeout, show=not as_json)
        with contextlib.suppress(ClientError):  # a token may send without reading: keep ours
            accepted["status"] = client.notification(str(accepted["id"]))["status"]
    if as_json:
        console.print_json(json.dumps(accepted))
    else:
        console.print(
            Text.assemble("notification ", str(accepted["id"]), " ", str(accepted["status"])),
            highlight=False,
        )
    if timed_out:
        pending = [t for t in accepted["tasks"] if t["status"] not in FINISHED]
        states = ", ".join(f"{t['id']}: {t['status']}" for t in pending)
        err_console.print(
            Text(f"gave up waiting after {timeout:g}s; still pending: {states}"), highlight=False
        )
        raise typer.Exit(EXIT_TIMED_OUT)
    if any(t["status"] != "succeeded" for t in accepted["tasks"]):
        raise typer.Exit(EXIT_UNDELIVERED)


def _follow(
    client: "NotifydClient", accepted: dict[str, Any], timeout: float, *, show: bool
) -> bool:
    """Poll each unfinished run until all end or ``timeout`` passes; update ``accepted["tasks"]``
    in place with each run's status and error. True when it timed out."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = accepted["tasks"]
    total = len(runs)
    with err_console.status("waiting for delivery…") as status:
        while True:
            for run in runs:
                if run["status"] in FINISHED:
                    continue
                found = client.task(str(run["id"]))
                run["status"], run["error"] = found["status"], found.get("last_error")
                if run["status"] in FINISHED and show:
                    console.print(_run_line(run), highlight=False)
            done = sum(run["status"] in FINISHED for run in runs)
            if done == total:
                return False
            if time.monotonic() >= deadline:
                return True
            status.update(f"waiting for delivery: {done} of {total} run(s) finished…")
            time.sleep(POLL_SECONDS)
