"""``notifyd --help``, ``--version`` and shell completion load none of the heavy modules."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import typer

from cli.choices import MAX_PAGE, Status, TokenScope

HEAVY = ("alembic", "sqlalchemy", "psycopg", "httpx", "sqlmodel", "fastapi", "uvicorn")
# Not heavy alone, but together a third of a start: Rich's console and tables, the settings.
# (pydantic is not among them: Typer itself loads it to coerce any option's value.)
DEFERRED = ("rich.console", "rich.text", "rich.table", "notifyd.config")

# A fresh interpreter runs the console script's app, then reports what it imported.
PROBE = f"""
import sys
sys.argv = ["notifyd", *sys.argv[1:]]
from cli.main import app
try:
    app(prog_name="notifyd")
except SystemExit:
    pass
print("LOADED " + " ".join(m for m in {HEAVY + DEFERRED!r} if m in sys.modules), file=sys.stderr)
"""


def _loaded(args: list[str], env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("LOADED")]
    return result.stdout, line.split()[1:]


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["tasks", "--help"],
        ["tasks", "list", "--help"],
        ["send", "--help"],
    ],
    ids=" ".join,
)
def test_help_and_version_import_no_store_nor_http(args: list[str]) -> None:
    output, loaded = _loaded(args)
    assert output.strip(), "printed nothing"
    assert loaded == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [("notifyd ta", "tasks"), ("notifyd tasks l", "list"), ("notifyd tasks list --st", "--status")],
)
def test_completion_imports_no_store_nor_http(words: str, expected: str) -> None:
    env = {
        "_NOTIFYD_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    output, loaded = _loaded([], env)
    assert expected in output.split()
    assert loaded == []


def test_help_shows_flags_without_a_value_and_choices_whole() -> None:
    output, _ = _loaded(["tasks", "list", "--help"], {"COLUMNS": "80"})
    assert "<bool>" not in output and "--json " in output
    assert "queued|running|succeeded|retrying|failed|cancelled" in output.replace("\n", "")
    assert "retrying" in output  # not broken mid-word across lines


def test_cli_choices_match_the_library() -> None:
    from notifyd.models import RunStatus
    from notifyd.tokens import Scope

    assert [s.value for s in Status] == [s.value for s in RunStatus]
    assert [s.value for s in TokenScope] == [s.value for s in Scope]
    assert MAX_PAGE >= 100


def test_the_deferred_console_serves_rich_live_and_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rich.live import Live
    from rich.text import Text

    from cli.common import console

    with Live(Text("frame 1"), console=console, auto_refresh=False) as live:
        live.update(Text("frame 2"), refresh=True)
    with console.status("waiting"):
        pass
    console.print(Text("[/x] literal"))
    assert "frame 2" in capsys.readouterr().out


def _callbacks(app: typer.Typer) -> list[Callable[..., object]]:
    found = [c.callback for c in app.registered_commands if c.callback is not None]
    if app.registered_callback is not None and app.registered_callback.callback is not None:
        found.append(app.registered_callback.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            found += _callbacks(group.typer_instance)
    return found


def test_every_command_has_its_annotations_as_objects_not_text() -> None:
    # Typer reads each command's parameters on every start, help and Tab included: a module
    # with ``from __future__ import annotations`` makes it compile and evaluate every
    # annotation twice (a fifth of ``notifyd --help``), where objects are made once, at import.
    from cli.main import app

    callbacks = _callbacks(app)
    assert len(callbacks) >= 20
    texts = {
        f"{fn.__module__}.{fn.__qualname__}"
        for fn in callbacks
        if any(isinstance(hint, str) for hint in fn.__annotations__.values())
    }
    assert texts == set()
