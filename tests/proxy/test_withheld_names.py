"""Names and raw codes of clinicians and sites are never exposed, like ``person_source_value``.

``provider.provider_name`` names a clinician and ``care_site.care_site_name`` a GP
practice or ward (free text); ``care_site.care_site_source_value`` is the site's own
code (an ODS code) and ``payer_plan_period.family_source_value`` the raw identifier
shared by a family: each would undo the per-project pseudonym of the row it sits on
and link projects. A scope may list them: they are reported at load as withheld by
design, absent from the extract, and refused by name in every query, on every engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sde.errors import ScopeViolation
from sde.omop.cdm import CDM
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import scope_with
from tests.proxy.scoped_engines import ENGINES, connect_engine
from tests.proxy.sentinel_data import CARE_SITES, PROVIDERS, SCOPE, sentinel_hits

WITHHELD = {
    "provider": ("provider_name",),
    "care_site": ("care_site_name", "care_site_source_value"),
    "payer_plan_period": ("family_source_value",),
}
SHOWN = {
    "provider": ["provider_id", "care_site_id", "specialty_concept_id"],
    "care_site": ["care_site_id", "place_of_service_concept_id", "location_id"],
    "payer_plan_period": ["payer_plan_period_id", "person_id", "payer_concept_id"],
}


def _scope(listing: str, project: str = "care-names") -> dict[str, Any]:
    tables: dict[str, Any] = dict(SCOPE["tables"])
    for table, columns in WITHHELD.items():
        tables[table] = "*" if listing == "star" else [*SHOWN[table], *columns]
    return scope_with(project=project, tables=tables)


@pytest.mark.parametrize("table", sorted(WITHHELD))
def test_the_cdm_never_exposes_them(table: str) -> None:
    assert set(WITHHELD[table]) <= CDM.NEVER_EXPOSED[table]
    assert not set(WITHHELD[table]) & set(CDM.exposable_columns(table))


@pytest.mark.parametrize("listing", ["star", "explicit"])
def test_a_scope_listing_them_is_told_they_are_withheld(
    listing: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="sde.scope"):
        scope = Scope.load(_scope(listing))
    for table, columns in WITHHELD.items():
        assert not set(columns) & set(scope.columns(table))
        assert set(SHOWN[table]) <= set(scope.columns(table))
        if listing == "explicit":
            for column in columns:
                assert f"{table}.{column}" in scope.withheld
                assert any(f"{table}.{column} is withheld by design" in m for m in caplog.messages)


QUERIES = [
    ("provider_name", "SELECT provider_name FROM provider"),
    ("provider_name", "SELECT p.provider_id FROM provider p WHERE p.provider_name LIKE 'Dr%'"),
    ("care_site_name", "SELECT c.care_site_name FROM care_site c"),
    ("care_site_source_value", "SELECT care_site_source_value, COUNT(*) FROM care_site GROUP BY 1"),
    (
        "care_site_name",
        "SELECT v.visit_occurrence_id, c.care_site_name FROM visit_occurrence v "
        "JOIN care_site c ON c.care_site_id = v.care_site_id",
    ),
    ("family_source_value", "SELECT family_source_value FROM payer_plan_period"),
]


@pytest.mark.parametrize("dialect", ENGINES)
@pytest.mark.parametrize(("column", "sql"), QUERIES)
def test_queries_naming_them_are_refused_as_withheld(column: str, sql: str, dialect: str) -> None:
    scope = Scope.load(_scope("explicit"))
    with pytest.raises(ScopeViolation) as info:
        prepare(sql, RuleContext(scope, dialect))
    assert info.value.rule == "columns.not-allowed"
    assert column in info.value.message
    assert "withheld by design" in info.value.message


@pytest.fixture(scope="module", params=ENGINES)
def names_conn(request: pytest.FixtureRequest) -> Iterator[Any]:
    conn, _ = connect_engine(request, request.param, _scope("star"))
    yield conn
    conn.close()


def test_they_never_reach_a_researcher_on_any_engine(names_conn: Any) -> None:
    for table in ("provider", "care_site"):
        for column in WITHHELD[table]:
            with pytest.raises(ScopeViolation) as info:
                names_conn.sql(f"SELECT {column} FROM {table}")
            assert "withheld by design" in info.value.message
        got = names_conn.sql(f"SELECT * FROM {table}")
        assert len(got) > 0
        assert not set(WITHHELD[table]) & set(got.columns)
        assert not sentinel_hits(got)  # provider_name holds SENTINEL-PROVIDER
        assert not got.astype(str).apply(lambda c: c.str.startswith("Practice")).any().any()


def test_clinicians_still_join_their_sites(names_conn: Any) -> None:
    got = names_conn.sql(
        "SELECT p.provider_id, c.care_site_id, c.location_id FROM provider p "
        "JOIN care_site c ON c.care_site_id = p.care_site_id"
    )
    assert len(got) == len(PROVIDERS)
    assert got.care_site_id.nunique() == len(CARE_SITES)
    assert not sentinel_hits(got)
