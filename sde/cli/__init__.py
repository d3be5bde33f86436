"""The ``sde`` command line.

Each command group lives in its own module of this package and exposes
``register(app)``; this module finds them, so adding a command never means
editing a central list. Every :class:`~sde.errors.SDEError` becomes one line on
stderr and exit status 2: users see what was wrong, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from sde.errors import SDEError

app = typer.Typer(
    name="sde",
    help="SDE Workbench: synthetic OMOP data, scoped queries, output checking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit (for checks done in commands)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sde`` script."""
    try:
        app(args=argv, standalone_mode=True)
    except SDEError as err:
        typer.echo(f"error: [{err.rule}] {err.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as err:
        # Unwritable output paths, missing files: one line naming the path.
        where = f" {err.filename}" if err.filename else ""
        typer.echo(f"error: {err.strerror or err}{where and ':'}{where}", err=True)
        sys.exit(2)
