"""``sde settings``: the settings in effect, where each comes from, secrets masked."""

from __future__ import annotations

import typer
from pydantic_settings import BaseSettings

from sde.settings import HubSettings, Settings, env_name, get_hub_settings, get_settings

#: Every settings section: its title and class (the workbench's, then the hub's).
SECTIONS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("The workbench", Settings),
    ("The hub (`sde hub`, jupyter_config)", HubSettings),
)


def show() -> None:
    """Print every setting: its environment variable, its value (secrets masked) and help."""
    for current in (get_settings(), get_hub_settings()):
        model = type(current)
        for name, info in model.model_fields.items():
            value = getattr(current, name)
            shown = "(set)" if value is not None and "Secret" in type(value).__name__ else value
            typer.echo(f"{env_name(name, model)}={'' if shown is None else shown}")
            typer.echo(f"    {info.description}")


def markdown() -> str:
    """The settings reference page (docs/settings.md is this text; a test compares them)."""
    lines = [
        "# Settings",
        "",
        "Every setting of the workbench, read from the environment (`sde settings` prints the",
        "values in effect). Declared once in `sde/settings.py`; this page is generated from it",
        "by `sde settings --markdown > docs/settings.md`, and a test fails when they differ.",
    ]
    for title, model in SECTIONS:
        lines += ["", f"## {title}", "", "| variable | type | default | what it is for |"]
        lines += ["|---|---|---|---|", *_rows(model)]
    return "\n".join(lines) + "\n"


def _rows(model: type[BaseSettings]) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        default = info.default
        if default is not None and "Secret" in type(default).__name__:
            default = "(the demo's built-in secret)"
        kind = str(info.annotation).replace("typing.", "").replace("pathlib.", "")
        kind = kind.replace("pydantic.types.", "").replace("<class '", "").replace("'>", "")
        kind = kind.replace(" | None", ", optional")
        shown = "" if default is None else f"`{default}`"
        lines.append(f"| `{env_name(name, model)}` | {kind} | {shown} | {info.description} |")
    return lines


def register(app: typer.Typer) -> None:
    """Add the ``settings`` command."""

    @app.command("settings")
    def settings(
        as_markdown: bool = typer.Option(
            False, "--markdown", help="Print the reference page (docs/settings.md)."
        ),
    ) -> None:
        """The settings in effect (secrets masked), or the reference page."""
        if as_markdown:
            typer.echo(markdown(), nl=False)
        else:
            show()
