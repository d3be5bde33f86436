"""``sde bench NAME [ARGS...]``: run one of the project's benchmarks.

The benchmarks live in the source tree's ``benchmarks/`` folder (they compare
against baselines installed in their own virtual environments, so they are not
part of the installed package). Arguments after the name go to the benchmark,
e.g. ``sde bench synth --sizes 100000``. Results land in ``benchmarks/results/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from sde.errors import ConfigurationError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def available() -> list[str]:
    """Names of the benchmarks in the source tree (empty when installed from a wheel)."""
    if not BENCHMARKS.is_dir():
        return []
    return sorted(
        p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_") and "_" not in p.stem
    )


def bench(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="Which benchmark: synth, proxy, sdc, dp, audit, gateway, airlock or federation."
        ),
    ],
) -> None:
    """Run a benchmark; it prints ratios against its baseline and writes its results."""
    names = available()
    if not names:
        raise ConfigurationError(
            "bench.missing",
            f"no benchmarks folder at {BENCHMARKS}: run sde bench from a source checkout",
        )
    if name not in names:
        raise ConfigurationError(
            "bench.unknown", f"unknown benchmark {name!r}; choose one of {', '.join(names)}"
        )
    script = BENCHMARKS / f"{name}.py"
    done = subprocess.run([sys.executable, str(script), *ctx.args], check=False)  # noqa: S603
    raise typer.Exit(done.returncode)


def register(app: typer.Typer) -> None:
    app.command(
        "bench",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(bench)
