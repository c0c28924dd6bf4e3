"""The documentation's generated pages: configuration from ``notifyd/config.py``, the CLI from
the Typer app. An MkDocs hook (``mkdocs.yml`` names this file) replaces a page's marker, such as
``<!-- generated: configuration -->``, with the text made here at every build, so the pages
cannot drift from the code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from notifyd.config import Settings

ENV_PREFIX = "NOTIFYD_"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _is_mapping(annotation: Any) -> bool:
    return get_origin(annotation) is dict


def _type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    for noise in (
        "typing.",
        "pathlib.",
        "pydantic.types.",
        "pydantic.networks.",
        "notifyd.config.",
    ):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:  # pragma: no cover - factories here take no arguments
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(a table, below)"
        if isinstance(value, Path):  # computed from this machine's environment: see the text
            return "(see the text)"
        if value == {}:
            return "none"
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(value, default=str)}`"


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(
            f"{model.__name__}.{name} has no description: give it Field(description=...) in "
            "notifyd/config.py (the configuration page is made from it)"
        )
    return field.description.replace("|", "\\|").replace("\n", " ")


def _rows(
    model: type[BaseModel], *, key: str, env: str | None
) -> Iterator[tuple[str, str, str, str, str]]:
    for name, field in model.model_fields.items():
        env_name = f"{env}{name.upper()}" if env is not None else ""
        if env_name and _models_in(field.annotation) and not _is_mapping(field.annotation):
            env_name += "__…"  # a table: one variable per field
        yield (
            f"{key}{name}",
            f"`{env_name}`" if env_name else "",
            _type_name(field.annotation).replace(" | ", " or "),
            _default(field).replace("|", "\\|"),
            _description(model, name, field),
        )


def _table(rows: Iterator[tuple[str, str, str, str, str]]) -> list[str]:
    lines = ["| setting and environment | type and default | |", "|---|---|---|"]
    for name, env, kind, default, text in rows:
        setting = f"`{name}`<br>{env}" if env else f"`{name}`"
        lines.append(f"| {setting} | `{kind}`<br>{default} | {text} |")
    return lines


def configuration_markdown(settings: type[BaseModel] = Settings) -> str:
    """Every setting: its key in the file, its environment variable, type, default, description."""
    lines = ["## Top level", ""]
    lines += _table(_rows(settings, key="", env=ENV_PREFIX))
    for name, field in settings.model_fields.items():
        for model in _models_in(field.annotation):
            mapping = _is_mapping(field.annotation)
            table = f"{name}.<name>" if mapping else name
            lines += ["", f"## `[{table}]`", ""]
            if model.__doc__:
                lines += [" ".join(model.__doc__.split()), ""]
            env = None if mapping else f"{ENV_PREFIX}{name.upper()}__"
            lines += _table(_rows(model, key=f"{table}.", env=env))
            for inner_name, inner in model.model_fields.items():
                for nested in _models_in(inner.annotation):
                    if nested is not model and not _is_mapping(inner.annotation):
                        lines += [
                            "",
                            f"`[{table}.{inner_name}]` takes the fields of "
                            f"`[{_section_of(settings, nested)}]`.",
                        ]
    return "\n".join(lines) + "\n"


def _section_of(settings: type[BaseModel], model: type[BaseModel]) -> str:
    for name, field in settings.model_fields.items():
        if model in _models_in(field.annotation) and not _is_mapping(field.annotation):
            return name
    return model.__name__  # pragma: no cover


def _param_row(param: Any) -> str:
    # Duck-typed: Typer's commands and parameters are click's, vendored or not.
    text: str = getattr(param, "help", None) or ""
    if param.param_type_name == "argument":
        names = f"`{(param.metavar or param.name or '').upper()}`"
    else:
        names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        if isinstance(param.envvar, str):
            text += f" (env `{param.envvar}`)"
        shown = param.show_default
        if isinstance(shown, str):
            text += f" [default: {shown}]"
        elif shown is not False and not param.is_flag:
            default = param.default
            if default not in (None, (), [], False) and not callable(default):
                text += f" [default: {getattr(default, 'value', default)}]"
    cell = " ".join(text.split()).replace("|", "\\|")
    return f"| {names} | {cell} |"


def _command_markdown(command: Any, ctx: Any, depth: int) -> list[str]:
    path = ctx.command_path
    lines = [f"{'#' * depth} `{path}`", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    pieces = " ".join(command.collect_usage_pieces(ctx))
    # Arguments as --help shows them: {run_id} (required) -> RUN_ID, [run_id] -> [RUN_ID].
    pieces = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), pieces)
    pieces = re.sub(r"\[([a-z_]+)\]", lambda m: f"[{m.group(1).upper()}]", pieces)
    lines += ["```text", f"{path} {pieces}".rstrip(), "```", ""]
    params = [
        p
        for p in command.get_params(ctx)
        if not getattr(p, "hidden", False)
        and not {"--install-completion", "--show-completion", "--help"} & set(p.opts)
    ]
    if params:
        lines += ["| argument or option | |", "|---|---|"]
        lines += [_param_row(param) for param in params]
        lines.append("")
    if hasattr(command, "list_commands"):  # a group
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            child = typer.Context(sub, info_name=name, parent=ctx)
            lines += _command_markdown(sub, child, depth + 1)
    return lines


def cli_markdown(app: typer.Typer | None = None) -> str:
    """Every command and group of ``notifyd``, with its help, usage, arguments and options."""
    if app is None:
        from cli.main import app as notifyd_app

        app = notifyd_app
    root = typer.main.get_command(app)
    with typer.Context(root, info_name="notifyd") as ctx:
        return "\n".join(_command_markdown(root, ctx, 3)).rstrip() + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration_markdown,
    "cli": cli_markdown,
}


def expand(markdown: str) -> str:
    """The page with each ``<!-- generated: NAME -->`` marker replaced by its generated text."""
    for name, generate in GENERATORS.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown


def on_page_markdown(markdown: str, **_: Any) -> str:
    """The MkDocs hook."""
    return expand(markdown)


if __name__ == "__main__":  # print a generated page: python scripts/docs_reference.py cli
    import sys

    print(GENERATORS[sys.argv[1]](), end="")
