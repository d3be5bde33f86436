"""``sde sdc check``: check a table an analyst produced elsewhere, from its records.

The CSV holds one row per record; the command tabulates it as ``crosstab`` or
``pivot_table`` would and prints the verdict. ``--out DIR`` writes the
protected table, ``results.json`` (SACRO-Viewer opens it), summaries and
checksums. ``--json`` prints the public report (what ``--out`` publishes: every
hidden cell is "suppressed"), never the checker's detailed report. Exit status:
0 pass, 1 fail, 3 review (2 is an error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from sde.errors import InvalidInput

EXIT = {"pass": 0, "fail": 1, "review": 3}


def register(app: typer.Typer) -> None:
    """Add the ``sdc`` command group."""
    group = typer.Typer(
        help="Output checking (statistical disclosure control).", no_args_is_help=True
    )
    group.command("check")(check)
    app.add_typer(group, name="sdc")


def check(
    file: Annotated[Path, typer.Argument(help="CSV with one row per record.")],
    index: Annotated[list[str], typer.Option("--index", "-i", help="Row variable(s).")],
    columns: Annotated[
        list[str] | None, typer.Option("--columns", "-c", help="Column variable(s).")
    ] = None,
    values: Annotated[str | None, typer.Option(help="Column to summarise.")] = None,
    aggfunc: Annotated[
        list[str] | None, typer.Option(help="Statistic(s): sum, mean, median, ...")
    ] = None,
    persons: Annotated[str | None, typer.Option(help="Person id column: count persons.")] = None,
    margins: Annotated[bool, typer.Option(help="Add totals.")] = False,
    protection: Annotated[
        str, typer.Option(help="suppress, none, base-5, midpoint-6, redact-7-round-5.")
    ] = "suppress",
    threshold: Annotated[int | None, typer.Option(help="Override the threshold.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for results.json and files.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a table built from FILE's records."""
    from sde import sdc

    data = _read_records(file)
    wanted = [*index, *(columns or []), *([values] if values else []), *([persons])]
    missing = [c for c in wanted if c and c not in data.columns]
    if missing:
        raise InvalidInput("sdc.cli-column", f"{file} has no column {missing[0]!r}")
    rules = {"threshold": threshold} if threshold is not None else None
    agg = (aggfunc[0] if len(aggfunc) == 1 else aggfunc) if aggfunc else None
    common: dict[str, Any] = {
        "margins": margins,
        "persons": data[persons] if persons else None,
        "rules": rules,
        "protection": protection,
    }
    if values:
        checked = sdc.pivot_table(
            data,
            values=values,
            index=index,
            columns=columns or None,
            aggfunc=agg or "mean",
            **common,
        )
    else:
        if agg:
            raise InvalidInput("sdc.aggfunc", "--aggfunc needs --values")
        checked = sdc.crosstab(
            [data[c] for c in index], [data[c] for c in columns or []] or None, **common
        )
    if out is not None:
        checked.write(out)
    if as_json:
        # What may leave with the table: never the checker's report (``checked.report``
        # says which hidden cells were flagged, which rule, and differencing sizes).
        typer.echo(json.dumps(checked.public_report, indent=2, default=str))
    else:
        typer.echo(checked.to_markdown())
        if out is not None:
            typer.echo(f"written: {out / 'results.json'}")
    raise typer.Exit(EXIT[checked.status])


def _read_records(file: Path) -> pd.DataFrame:
    """FILE as a table of records, or an error naming the file and what is wrong with it."""
    try:
        data = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidInput(
            "sdc.cli-file", f"{file} is not a CSV table of records ({reason})"
        ) from None
    if data.empty:
        raise InvalidInput("sdc.cli-file", f"{file} holds no records")
    return data
