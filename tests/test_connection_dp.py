"""`conn.sql_dp()` and `conn.budget()` end to end: proxy scope + DP engine + ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sde
from sde.errors import BudgetExhausted, ConfigurationError, DPRefusal, ScopeViolation


def _scope(access: str, dp: dict[str, float] | None) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "project": f"dp-{access}",
        "access": access,
        "tables": {
            "person": ["person_id", "gender_concept_id", "year_of_birth"],
            "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
            "observation": ["person_id", "observation_concept_id", "value_as_number"],
        },
        "expires": "2099-12-31",
    }
    if dp is not None:
        scope["dp"] = dp
    return scope


@pytest.fixture
def dp_conn(synth_dir: Path, tmp_path: Path) -> Any:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    conn = sde.connect(
        synth_dir,
        scope=_scope("dp", {"epsilon": 1.0, "delta": 1e-6}),
        registry=registry,
        cache_dir=tmp_path / "cache",
    )
    yield conn
    conn.close()


def test_dp_project_answers_noisy_counts_and_charges_the_budget(dp_conn: Any) -> None:
    exact_persons = 6000 * 0.95  # synth_dir: 6,000 persons, about 5% opted out
    df = dp_conn.sql_dp(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
        epsilon=0.2,
    )
    assert set(df.columns) == {"gender_concept_id", "n"}
    assert set(df["gender_concept_id"]) == {8507, 8532}  # public key set: no threshold
    assert abs(df["n"].sum() - exact_persons) < 0.1 * exact_persons
    assert "dp" in df.attrs
    status = dp_conn.budget()
    assert status.epsilon_spent == pytest.approx(0.2)
    assert status.epsilon_remaining == pytest.approx(0.8)
    # The identical query is answered from the stored release at no cost.
    again = dp_conn.sql_dp(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
        epsilon=0.2,
    )
    assert again["n"].tolist() == df["n"].tolist()
    assert dp_conn.budget().epsilon_spent == pytest.approx(0.2)


def test_dp_project_refuses_plain_sql(dp_conn: Any) -> None:
    with pytest.raises(ScopeViolation) as err:
        dp_conn.sql("SELECT COUNT(*) FROM person")
    assert err.value.rule == "access.dp-only"


def test_overspending_is_refused_and_spends_nothing(dp_conn: Any) -> None:
    dp_conn.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.7)
    with pytest.raises(BudgetExhausted):
        dp_conn.sql_dp("SELECT COUNT(*) AS n FROM measurement", epsilon=0.5)
    assert dp_conn.budget().epsilon_spent == pytest.approx(0.7)


def test_scope_still_applies_to_dp_queries(dp_conn: Any) -> None:
    # Never-exposed and unlisted columns stay invisible to the DP path too.
    with pytest.raises(ScopeViolation) as err:
        dp_conn.sql_dp(
            "SELECT race_concept_id, COUNT(*) AS n FROM person GROUP BY race_concept_id",
            epsilon=0.1,
        )
    assert "race_concept_id" in str(err.value)
    assert dp_conn.budget().epsilon_spent == 0


def test_a_project_without_a_budget_cannot_ask_dp(synth_dir: Path, tmp_path: Path) -> None:
    conn = sde.connect(
        synth_dir,
        scope=_scope("rows", None),
        registry=f"sqlite:///{tmp_path / 'r.sqlite'}",
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(ConfigurationError) as err:
        conn.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)
    assert err.value.rule == "dp.no-budget"


def test_an_aggregates_project_with_a_budget_can_publish_dp(
    synth_dir: Path, tmp_path: Path
) -> None:
    conn = sde.connect(
        synth_dir,
        scope=_scope("aggregates", {"epsilon": 1.0, "delta": 1e-6}),
        registry=f"sqlite:///{tmp_path / 'r.sqlite'}",
        cache_dir=tmp_path / "cache",
    )
    df = conn.sql_dp(
        "SELECT AVG(LEAST(GREATEST(value_as_number, 60), 250)) AS sbp FROM measurement "
        "WHERE measurement_concept_id = 3004249",
        epsilon=0.5,
    )
    assert 100 < float(df["sbp"].iloc[0]) < 180


def test_the_error_channel_is_closed_end_to_end(dp_conn: Any) -> None:
    """Issue 8: an error that depends on one person's value is refused before running."""
    probe = (
        "SELECT COUNT(*) AS n FROM person p JOIN measurement m ON m.person_id = p.person_id "
        "WHERE CAST(CASE WHEN m.value_as_number > {t} THEN 'x' ELSE '1' END AS INTEGER) = 1"
    )
    rules = set()
    for t in (0, 10**6):
        with pytest.raises(DPRefusal) as err:
            dp_conn.sql_dp(probe.format(t=t), epsilon=0.001)
        rules.add(err.value.rule)
    assert rules == {"dp.not-total"}
    assert dp_conn.budget().epsilon_spent == 0


def test_the_row_cap_never_cuts_the_exact_totals_of_a_dp_query(
    synth_dir: Path, tmp_path: Path
) -> None:
    """The row cap bounds what a researcher sees; the DP engine's exact run used to be cut
    at it too (``LIMIT cap + 1`` in its SQL, then the cut), so a query with more groups than
    the cap silently lost totals: their keys were released as noise around zero."""
    registry = f"sqlite:///{tmp_path / 'r.sqlite'}"
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth"
    with sde.connect(
        synth_dir, scope=_scope("rows", None), registry=registry, cache_dir=tmp_path / "c"
    ) as rows:
        exact = rows.sql(sql).set_index("year_of_birth")["n"]
    years = sorted(int(y) for y in exact.index[exact >= 50])
    assert len(years) > 10  # many more groups than the cap
    capped = sde.connect(
        synth_dir,
        scope=_scope("dp", {"epsilon": 10.0, "delta": 1e-6}),
        registry=registry,
        cache_dir=tmp_path / "c",
        row_cap=3,
    )
    with capped:
        df = capped.sql_dp(sql, epsilon=5.0, keys={"year_of_birth": years})
    got = df.set_index("year_of_birth")["n"]
    assert sorted(int(y) for y in got.index) == years
    for year in years:  # Laplace noise at epsilon 5 is a few persons, not a whole group
        assert abs(float(got[year]) - int(exact[year])) < 25, (year, got[year], exact[year])
