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


def _click_class(name: str) -> type[Exception]:
    # Typer 0.29 vendors click as `typer._click`; older releases use click itself. Find the
    # class through the exported BadParameter so either works.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_UsageError = _click_class("UsageError")


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit (for checks done in commands)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sde`` script."""
    try:
        # Outside standalone mode click returns a command's exit status instead of
        # exiting: it must be passed on, or `sde audit verify` on a broken log exits 0.
        status = app(args=argv, standalone_mode=False)
    except _UsageError as err:
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":
            # Bare `sde` or a bare group: click has already printed the help.
            sys.exit(0)
        # Bad arguments: one line naming what was wrong, like every other error here.
        command = ctx.command_path if ctx is not None else "sde"
        typer.echo(f"error: {command}: {err.format_message()}", err=True)  # type: ignore[attr-defined]
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
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
    sys.exit(status if isinstance(status, int) else 0)
