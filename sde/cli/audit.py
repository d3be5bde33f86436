"""``sde audit verify``: check the hash-chained audit log of a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sde.audit import AuditLog
from sde.errors import InvalidInput
from sde.registry.db import open_registry, registry_url_beside

audit_app = typer.Typer(
    help="The audit log of every query and workflow event.", no_args_is_help=True
)


@audit_app.command("verify")
def verify(
    data_path: Annotated[
        Path | None,
        typer.Argument(help="A node file or folder: its registry (SQLite) lies beside it."),
    ] = None,
    registry: Annotated[
        str | None, typer.Option("--registry", help="SQLAlchemy URL of the registry.")
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option("--expect-head", help="The head hash recorded earlier (detects truncation)."),
    ] = None,
) -> None:
    """Verify the chain: exit 0 if intact, 1 if an entry was changed, deleted or reordered."""
    if registry is None and data_path is None:
        typer.echo("error: give --registry URL or a data path", err=True)
        raise typer.Exit(2)
    url = registry or registry_url_beside(data_path or Path("."))
    _require_existing(url)
    result = AuditLog(open_registry(url)).verify(expect_head=expect_head)
    if result.ok:
        kinds = f"{result.entries - result.events} queries, {result.events} workflow events"
        typer.echo(f"audit log intact: {result.entries} entries ({kinds}), head {result.head}")
        return
    typer.echo(f"audit log BROKEN ({result.entries} entries):")
    for problem in result.problems:
        typer.echo(f"  - {problem}")
    raise typer.Exit(1)


def _require_existing(url: str) -> None:
    """Refuse a SQLite registry that is not there (verifying must never create one)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not Path(url[len(prefix) :]).is_file():
        raise InvalidInput(
            "audit.no-registry",
            f"there is no registry at {url[len(prefix) :]}: nothing to verify",
        )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
