"""``sde synth``: write a synthetic population, one DuckDB file per node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sde.errors import ConfigurationError


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigurationError("synth.out", f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigurationError(
            "synth.out-not-empty",
            f"output folder {out} is not empty; pass --force to replace its population",
        )


def _summary(console: Console, manifest: dict[str, Any], out: Path) -> None:
    table = Table(title=f"Synthetic population in {out}", title_justify="left")
    for name in ("node", "persons", "opt-outs", "deaths", "visits", "measurements", "file MB"):
        table.add_column(name, justify="left" if name == "node" else "right")
    for node in manifest["nodes"]:
        size = (out / node["file"]).stat().st_size / 1e6
        table.add_row(
            node["name"],
            f"{node['persons']:,}",
            f"{node['opt_outs']:,}",
            f"{node['deaths']:,}",
            f"{node['rows']['visit_occurrence']:,}",
            f"{node['rows']['measurement']:,}",
            f"{size:,.1f}",
        )
    console.print(table)
    prevalence = manifest["prevalence"]
    shown = ", ".join(
        f"{key.replace('_', ' ')} {100 * value:.1f}%" for key, value in prevalence.items()
    )
    console.print(f"prevalence (recorded 2010-2025): {shown}")
    console.print(f"seed {manifest['seed']}; manifest: {out / 'manifest.json'}")


def synth(
    *,
    persons: Annotated[int, typer.Option(help="Persons in the population (all nodes).")] = 20000,
    nodes: Annotated[int, typer.Option(help="Number of nodes, 1 to 5.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same data.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for <node>.duckdb and manifest.json.")] = Path(
        "data"
    ),
    force: Annotated[bool, typer.Option(help="Replace the population in a non-empty folder.")] = (
        False
    ),
    workers: Annotated[int, typer.Option(help="Processes generating chunks.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Write a synthetic Lancashire & South Cumbria OMOP population, one DuckDB file per node."""
    from sde.omop.synth import synthesise, validate

    validate(persons, nodes, seed)
    if workers < 1:
        raise ConfigurationError("synth.workers", f"workers must be 1 or more; got {workers}")
    _check_out(out, force)
    manifest = synthesise(persons, nodes, seed, out, progress=progress, workers=workers)
    _summary(Console(), manifest, out)


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
