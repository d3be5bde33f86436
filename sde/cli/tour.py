"""``sde tour``: what a researcher can do, on the embedded default, in one command.

It synthesises the demo population (once; reused afterwards; the same one ``sde up``
uses), writes the demo project's scope file and walks through scoped queries, a refusal
that names its rule, a checked output table and a differentially private answer, all
in this process (no hub, no gateway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

import sde

if TYPE_CHECKING:
    from sde.connection import Connection
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEMO_SCOPE = """\
# The approved demo project: hypertension and deprivation in Lancashire & South Cumbria.
# In the deployment the Data Access Committee writes this file when it approves a project.
project: htn-deprivation
access: rows
tables:
  person: [person_id, gender_concept_id, year_of_birth, location_id]
  condition_occurrence: [person_id, condition_concept_id, condition_start_date]
  measurement: [person_id, measurement_concept_id, measurement_date, value_as_number,
                unit_concept_id]
  observation: [person_id, observation_concept_id, observation_date, value_as_number]
  drug_exposure: [person_id, drug_concept_id, drug_exposure_start_date]
  concept: "*"
  concept_ancestor: "*"
period: {start: 2015-01-01, end: 2024-12-31}
sdc: {threshold: 10}
dp: {epsilon: 3.0, delta: 1.0e-6}
expires: 2027-12-31
"""

#: What the walkthrough runs, in the researcher's (PostgreSQL) dialect.
DEMO_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Persons in the project by sex",
        "SELECT c.concept_name AS sex, COUNT(*) AS persons\n"
        "FROM person p JOIN concept c ON c.concept_id = p.gender_concept_id\n"
        "GROUP BY c.concept_name ORDER BY persons DESC",
    ),
    (
        "Hypertension prevalence by IMD decile (1 = most deprived)",
        "WITH imd AS (\n"
        "  SELECT person_id, MAX(value_as_number)::int AS decile FROM observation\n"
        "  WHERE observation_concept_id = 2000000001 GROUP BY person_id),\n"
        "htn AS (\n"
        "  SELECT DISTINCT co.person_id FROM condition_occurrence co\n"
        "  JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id\n"
        "  WHERE ca.ancestor_concept_id = 320128)\n"
        "SELECT imd.decile, COUNT(*) AS persons, COUNT(htn.person_id) AS with_htn,\n"
        "       ROUND(100.0 * COUNT(htn.person_id) / COUNT(*), 1) AS pct\n"
        "FROM imd LEFT JOIN htn ON htn.person_id = imd.person_id\n"
        "GROUP BY imd.decile ORDER BY imd.decile",
    ),
)

REFUSED_QUERY = "SELECT person_source_value FROM person LIMIT 5"

#: Record-level rows (pseudonymised) for a table the researcher checks before export.
CHECKED_ROWS = (
    "SELECT DISTINCT p.person_id, imd.value_as_number::int AS decile,\n"
    "       CASE p.gender_concept_id WHEN 8507 THEN 'male' ELSE 'female' END AS sex\n"
    "FROM person p\n"
    "JOIN observation imd ON imd.person_id = p.person_id\n"
    "     AND imd.observation_concept_id = 2000000001\n"
    "JOIN condition_occurrence co ON co.person_id = p.person_id\n"
    "JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id\n"
    "WHERE ca.ancestor_concept_id = 313217  -- atrial fibrillation: some small cells"
)

#: A differentially private count, charged to the project's budget.
DP_QUERY = (
    "SELECT value_as_number AS decile, COUNT(*) AS persons FROM observation\n"
    "WHERE observation_concept_id = 2000000001 GROUP BY value_as_number ORDER BY decile"
)


def _render(console: Console, title: str, frame: pd.DataFrame) -> None:
    table = Table(title=f"[bold]{escape(title)}[/]", title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for row in frame.head(12).itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def synthesise_once(console: Console, data: Path, persons: int, seed: int) -> dict[str, object]:
    """The population in ``data``: the one there if it has these persons and seed, else a
    new one."""
    from sde.omop.synth import synthesise

    manifest_path = data / "manifest.json"
    if manifest_path.exists():
        manifest: dict[str, object] = json.loads(manifest_path.read_text())
        if manifest.get("persons") == persons and manifest.get("seed") == seed:
            console.print(f"[green]reusing[/] the demo population in {data}")
            return manifest
    console.print(f"synthesising {persons:,} persons over 3 nodes into {data} ...")
    data.mkdir(parents=True, exist_ok=True)
    return dict(synthesise(persons=persons, nodes=3, seed=seed, out=data, progress=True))


def tour(
    workdir: Annotated[Path, typer.Option(help="Where the demo data and registry live.")] = Path(
        "demo"
    ),
    persons: Annotated[int, typer.Option(min=100, help="Persons in the demo population.")] = 20000,
    seed: Annotated[int, typer.Option(help="Seed of the demo population.")] = 1,
) -> None:
    """Walk through the researcher's tools on the embedded default (DuckDB), no hub."""
    from sde.errors import SDEError

    console = Console()
    data = workdir / "data"
    manifest = synthesise_once(console, data, persons, seed)
    nodes = [str(node["name"]) for node in manifest["nodes"]]  # type: ignore[attr-defined]
    console.print(f"nodes: {', '.join(nodes)}")

    scope_path = workdir / "htn-deprivation.scope.yaml"
    scope_path.write_text(DEMO_SCOPE)
    console.print(f"approved demo project: htn-deprivation (scope file {scope_path})\n")

    conn = sde.connect(str(data), scope=str(scope_path))
    frames = {}
    for title, sql in DEMO_QUERIES:
        console.print(f"[dim]{escape(sql)}[/]")
        frames[title] = conn.sql(sql)
        _render(console, title, frames[title])
    plot = _plot_prevalence(frames[DEMO_QUERIES[1][0]], workdir / "htn-by-imd-decile.png")
    console.print(f"plot: {plot}\n")

    console.print(f"[bold]A query outside the project's scope[/]\n[dim]{REFUSED_QUERY}[/]")
    try:
        conn.sql(REFUSED_QUERY)
        raise SystemExit("the demo refusal was not refused: the proxy is broken")
    except SDEError as err:
        console.print(f"[red]refused[/] {escape(f'[{err.rule}] {err.message}')}\n")

    _show_output_check(console, conn, workdir / "outputs")
    _show_dp(console, conn)

    console.print(
        "[bold]The tour is over; the data stays for the next one.[/]\n"
        f"  data: {data.resolve()}  (one DuckDB file per node)\n"
        f"  scope: {scope_path.resolve()}\n"
        "  try:  .venv/bin/python examples/researcher_quickstart.py  (a tour of sde.connect)\n"
        "  The hosted workbench (JupyterHub, the gateway and the services): sde up"
    )


def _plot_prevalence(frame: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(frame["decile"].astype(int), frame["pct"].astype(float), color="#005eb8")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("IMD 2019 decile (1 = most deprived)")
    ax.set_ylabel("% with hypertension")
    ax.set_title("Hypertension by deprivation (synthetic LSC data)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.resolve()


def _show_output_check(console: Console, conn: Connection, outputs: Path) -> None:
    from sde import sdc

    console.print(f"[bold]Checking a table before it leaves[/]\n[dim]{escape(CHECKED_ROWS)}[/]")
    rows = conn.sql(CHECKED_ROWS)
    checked = sdc.crosstab(rows["decile"], rows["sex"], persons=rows["person_id"])
    flagged = int(checked.flags.map(bool).to_numpy().sum())
    console.print(
        f"persons with atrial fibrillation by decile and sex: status [bold]{checked.status}[/], "
        f"{flagged} cell(s) flagged; the protected table:"
    )
    _render(
        console,
        "atrial fibrillation by IMD decile and sex (suppressed cells blank)",
        checked.safe.reset_index(),
    )
    folder = checked.write(outputs)
    console.print(f"report (ACRO results.json shape, SACRO-Viewer can open it): {folder}\n")


def _show_dp(console: Console, conn: Connection) -> None:
    console.print(f"[bold]A differentially private answer[/]\n[dim]{escape(DP_QUERY)}[/]")
    noisy = conn.sql_dp(DP_QUERY, epsilon=0.5)
    _render(console, "persons by IMD decile, epsilon 0.5", noisy)
    budget = conn.budget()
    console.print(
        f"privacy budget: spent {budget.epsilon_spent:g} of {budget.epsilon_total:g} epsilon "
        "(asking the same query again is free)\n"
    )


def register(app: typer.Typer) -> None:
    app.command("tour")(tour)
