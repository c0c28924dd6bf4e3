"""The documentation's generated pages list every setting and every command, so they cannot drift."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin

import pytest
import typer
from pydantic import BaseModel, Field

from cli.main import app
from notifyd.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "scripts" / "docs_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_generator()


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _every_setting(model: type[BaseModel] = Settings) -> set[str]:
    """Every key the configuration can hold, as the page names it: ``smtp.host``,
    ``channels.<name>.retry``, ... (a section that repeats another, such as a destination's
    ``smtp``, points at that section's table)."""
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for inner in _models(field.annotation):
            table = f"{name}.<name>" if get_origin(field.annotation) is dict else name
            keys |= {f"{table}.{key}" for key in inner.model_fields}
    return keys


def _listed(page: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)`(?:<br>| \|)", page, re.M))


def test_the_configuration_page_lists_every_setting() -> None:
    page = reference.expand((ROOT / "docs" / "configuration.md").read_text())
    assert "<!-- generated" not in page
    missing = _every_setting() - _listed(page)
    assert not missing, f"settings missing from the configuration page: {sorted(missing)}"
    for name in Settings.model_fields:
        assert f"`NOTIFYD_{name.upper()}" in page


def test_the_check_fails_when_a_setting_is_missing() -> None:
    page = reference.configuration_markdown()
    dropped = "\n".join(line for line in page.splitlines() if "`smtp.timeout`" not in line)
    assert _every_setting() - _listed(dropped) == {"smtp.timeout"}


def test_a_setting_without_a_description_fails_the_page() -> None:
    class Undescribed(BaseModel):
        described: int = Field(default=1, description="Has one.")
        bare: int = 2

    with pytest.raises(ValueError, match=r"Undescribed\.bare has no description"):
        reference.configuration_markdown(Undescribed)


def _command_paths(command: Any, prefix: str = "notifyd") -> set[str]:
    paths = {prefix}
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            paths |= _command_paths(sub, f"{prefix} {name}")
    return paths


def test_the_cli_page_lists_every_command_with_its_options() -> None:
    page = reference.expand((ROOT / "docs" / "cli.md").read_text())
    assert "<!-- generated" not in page
    headings = set(re.findall(r"^#+ `([^`]+)`$", page, re.M))
    root = typer.main.get_command(app)
    assert _command_paths(root) <= headings
    assert "`--older-than`" in page and "`--idempotency-key`" in page
