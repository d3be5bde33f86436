"""``sde registry status|upgrade``: the registry's schema revision, and bringing it to the newest.

Opening a registry upgrades it anyway; these commands let an administrator see and apply
the change on purpose (before a deployment, after a backup) instead of on first use.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sde.errors import ConfigurationError
from sde.registry.db import registry_engine
from sde.registry.migrate import current, head, upgrade
from sde.settings import get_settings

registry_app = typer.Typer(help="The registry's schema (Alembic migrations).", no_args_is_help=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--registry", help="SQLAlchemy URL of the registry (default SDE_REGISTRY_URL)."),
]


def _url(registry: str | None) -> str:
    url = registry or get_settings().registry_url
    if not url:
        raise ConfigurationError("registry.no-url", "give --registry URL or set SDE_REGISTRY_URL")
    return url


@registry_app.command("status")
def status(registry: UrlOption = None) -> None:
    """Print the registry's revision and the newest one; exit 1 if it is behind."""
    at = current(registry_engine(_url(registry)))
    newest = head()
    typer.echo(f"registry at revision {at or 'none (not managed yet)'}; newest is {newest}")
    if at != newest:
        raise typer.Exit(1)


@registry_app.command("upgrade")
def upgrade_command(registry: UrlOption = None) -> None:
    """Bring the registry's schema to the newest revision."""
    engine = registry_engine(_url(registry))
    before = current(engine)
    after = upgrade(engine)
    typer.echo(f"registry upgraded from {before or 'none'} to {after}")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
