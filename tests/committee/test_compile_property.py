"""Property: the compiled scope never exposes a table, column, node, cohort or period that
the approved application did not ask for (and leaves out the nodes that declined)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from access_committee.forms import compile_scope
from sde.omop.cdm import CDM
from sde.scope import UNSCOPABLE_TABLES, Scope, withheld_columns

TABLES = sorted(
    t
    for t in (
        "person",
        "condition_occurrence",
        "measurement",
        "observation",
        "drug_exposure",
        "visit_occurrence",
        "concept",
        "provider",
        "care_site",
        "location",
    )
    if t not in UNSCOPABLE_TABLES
)
NODES = ["lth", "elht", "umbh", "mft", "wwl"]


@st.composite
def applications(draw: st.DrawFn) -> tuple[dict, list[str]]:
    tables = {}
    for table in draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=4, unique=True)):
        hidden = withheld_columns(table)
        exposed = [c for c in CDM.exposable_columns(table) if c not in hidden]
        if draw(st.booleans()):
            tables[table] = "*"
        else:
            # at least one column that can be exposed (a list of withheld columns only is
            # refused by the form, naming the field), sometimes with withheld ones beside it
            chosen = draw(st.lists(st.sampled_from(exposed), min_size=1, max_size=6, unique=True))
            if hidden and draw(st.booleans()):
                chosen.append(draw(st.sampled_from(sorted(hidden))))
            tables[table] = chosen
    nodes = draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=5, unique=True))
    agreed = draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True))
    start = draw(st.dates(dt.date(2000, 1, 1), dt.date(2020, 1, 1)))
    end = start + dt.timedelta(days=draw(st.integers(0, 4000)))
    body = {
        "project": "prop-test",
        "access": draw(st.sampled_from(["rows", "aggregates", "dp"])),
        "tables": tables,
        "nodes": nodes,
        "cohort": {"any_condition": draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=4))},
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "dp": {"epsilon": 1.0, "delta": 1e-6},
        "expires": "2099-01-01",
        "title": "never copied into a scope",
    }
    return body, agreed


@settings(max_examples=300, deadline=None)
@given(applications())
def test_the_compiled_scope_is_within_what_was_asked(case: tuple[dict, list[str]]) -> None:
    body, agreed = case
    scope = Scope.from_dict(compile_scope(body, agreed_nodes=agreed))
    assert scope.access == body["access"]
    for table, columns in scope.tables.items():
        asked = body["tables"][table]  # KeyError: a table nobody asked for
        if asked != "*":
            assert set(columns) <= set(asked), (table, columns, asked)
        assert not set(columns) & withheld_columns(table), (table, columns)
    assert scope.nodes is not None
    assert set(scope.nodes) <= set(agreed) & set(body["nodes"])
    assert set(scope.cohort_concepts or ()) == set(body["cohort"]["any_condition"])
    assert scope.period is not None
    assert scope.period.start is not None
    assert scope.period.end is not None
    assert scope.period.start.isoformat() == body["period"]["start"]
    assert scope.period.end.isoformat() == body["period"]["end"]
