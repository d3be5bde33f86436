"""What a researcher can do with an approved project: a runnable tour of ``sde.connect``.

Builds a small synthetic population (``sde synth``: three nodes), writes the
project's scope, then queries it through the scope-enforcing proxy: counts and
joins, concept sets with descendants, the refusals a project meets, the
rewritten SQL, aggregates mode, and the audit log.

Run: ``.venv/bin/python examples/researcher_quickstart.py [--persons 3000] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import sde
from sde.audit import AuditLog
from sde.errors import QueryFailed, ScopeViolation
from sde.omop.synth import synthesise

SCOPE = """\
project: htn-deprivation
access: rows
tables:
  person: [person_id, gender_concept_id, year_of_birth, location_id]
  condition_occurrence: "*"
  measurement: [person_id, measurement_concept_id, measurement_date, value_as_number]
  drug_exposure: [person_id, drug_concept_id, drug_exposure_start_date]
  concept: "*"
  concept_ancestor: "*"
cohort:
  any_condition: [320128]        # essential hypertension, descendants included
period: {start: 2015-01-01, end: 2024-12-31}
expires: 2099-12-31
"""


def show(title: str, value: object) -> None:
    print(f"\n== {title}\n{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = args.out or Path(tempfile.mkdtemp(prefix="sde-quickstart-"))
    if not (data / "manifest.json").exists():
        synthesise(args.persons, 3, 7, data, progress=False)
    scope_file = data / "htn-deprivation.yaml"
    scope_file.write_text(SCOPE)

    conn = sde.connect(data, scope=scope_file, user="researcher")
    show("connected", conn)

    show(
        "persons in the cohort, by gender",
        conn.sql("SELECT gender_concept_id, COUNT(*) AS persons FROM person GROUP BY 1 ORDER BY 1"),
    )
    show(
        "mean systolic blood pressure by decade of birth (PostgreSQL dialect)",
        conn.sql(
            "SELECT (p.year_of_birth / 10) * 10 AS decade, COUNT(DISTINCT p.person_id) AS persons,"
            " ROUND(AVG(m.value_as_number)::numeric, 1) AS mean_sbp"
            " FROM person p JOIN measurement m ON m.person_id = p.person_id"
            " WHERE m.measurement_concept_id = 3004249 GROUP BY 1 ORDER BY 1"
        ),
    )
    show(
        "diabetes among them, as a concept set with descendants (DuckDB dialect)",
        conn.sql(
            "SELECT COUNT(DISTINCT co.person_id) AS persons FROM condition_occurrence co"
            " JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id"
            " WHERE ca.ancestor_concept_id = 201826",
            dialect="duckdb",
        ),
    )
    show(
        "identifiers are per-project pseudonyms",
        conn.sql("SELECT person_id, year_of_birth FROM person ORDER BY person_id LIMIT 3"),
    )
    show("the SQL that actually ran", conn.explain("SELECT COUNT(*) AS n FROM person"))

    for sql in (
        "SELECT person_source_value FROM person",
        "SELECT * FROM note",
        "SELECT * FROM read_csv('/etc/passwd')",
        "DELETE FROM person",
        "SELECT pg_sleep(10)",
    ):
        try:
            conn.sql(sql)
        except ScopeViolation as err:
            show(f"refused: {sql}", f"[{err.rule}] {err}")
    try:
        conn.sql("SELECT CAST(CAST(year_of_birth AS VARCHAR) || 'x' AS INTEGER) FROM person")
    except QueryFailed as err:
        show("engine errors come back generic", f"[{err.rule}] {err}")

    aggregates = SCOPE.replace("access: rows", "access: aggregates").replace(
        "htn-deprivation", "htn-tables"
    )
    with sde.connect(data, scope=aggregates, user="researcher") as agg:
        table = agg.sql("SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1")
        show("aggregates mode: small groups suppressed", table.head())
        show("  ...and reported", table.attrs["sdc"])

    log = AuditLog(conn.registry)
    show("audit log", f"{log.count()} entries; chain intact: {log.verify().ok}")
    conn.close()


if __name__ == "__main__":
    main()
