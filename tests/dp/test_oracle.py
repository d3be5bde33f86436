"""Oracle: our sensitivities and scales against OpenDP's own (Polars Context API and the
quantile measurement) on the same data, truncation and epsilon.

Our exact totals come from SQL and our mechanisms are OpenDP vector measurements; the
Polars Context derives its scales from its own stability analysis of the same query. If
our sensitivity logic were wrong the scales would differ. (Sums compare within 0.1%:
OpenDP adds a float-rounding allowance to float sums; ours are integer sums on a grid.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sde.dp.analyse import analyse
from sde.dp.metadata import Metadata
from sde.dp.plan import build

try:  # imported, never skipped: a missing oracle fails the run, saying how to install it
    import opendp.prelude as dp
    import polars as pl
except ImportError as err:  # pragma: no cover - the dev extra installs both
    raise ImportError(
        f"the DP oracle needs OpenDP's Polars API ({err.name} is missing): "
        "pip install -e '.[dev]' (opendp[polars])"
    ) from err

dp.enable_features("contrib")

#: Resolving a Polars Context query runs a binary search of privacy maps (~1-3 s each).
polars_oracle = pytest.mark.slow

R, G, EPS = 3, 2, 0.5
LO, HI = 60.0, 250.0
JOIN = (
    "FROM measurement m JOIN observation o ON o.person_id = m.person_id "
    "WHERE m.measurement_concept_id = 3004249 AND o.observation_concept_id = 2000000001 "
    "GROUP BY 1"
)


@pytest.fixture(scope="module")
def frame(dp_node):  # type: ignore[no-untyped-def]
    df = (
        dp_node.cursor()
        .execute(
            "SELECT m.person_id AS pid, CAST(o.value_as_number AS BIGINT) AS g, "
            "m.value_as_number AS x FROM measurement m JOIN observation o USING (person_id)"
        )
        .df()
    )
    return pl.from_pandas(df)


def _polars_scale(frame, epsilon: float, make_agg, rows: int = R) -> float:  # type: ignore[no-untyped-def]
    ctx = dp.Context.compositor(
        data=frame.lazy(),
        privacy_unit=dp.unit_of(contributions=1, identifier="pid"),
        privacy_loss=dp.loss_of(epsilon=epsilon),
        split_evenly_over=1,
        margins=[dp.polars.Margin(by=["g"], max_length=10**6, max_groups=10)],
    )
    with warnings.catch_warnings():
        # OpenDP warns that dp.len()'s default will change; the scale does not
        warnings.simplefilter("ignore", FutureWarning)
        query = (
            ctx.query()
            .truncate_per_group(rows, by=["g"])
            .truncate_num_groups(G, by=["g"])
            .group_by("g")
            .agg(make_agg())
            .with_keys(pl.LazyFrame({"g": list(range(1, 11))}))
        )
        summary = query.summarize(alpha=0.05)
    return float(summary["scale"][0])


def _ours(sql: str, rows: int = R):  # type: ignore[no-untyped-def]
    return build(
        analyse(sql),
        epsilon=EPS,
        delta=None,
        rows=rows,
        groups=G,
        salt="s",
        defaults=Metadata.default().defaults,
    )


@polars_oracle
def test_count_scale_matches_opendp(frame) -> None:  # type: ignore[no-untyped-def]
    plan = _ours("SELECT o.value_as_number, COUNT(*) " + JOIN)
    assert plan.vectors["n_rows"].scale == pytest.approx(
        _polars_scale(frame, EPS, dp.len), rel=1e-3
    )


@polars_oracle
def test_person_count_scale_matches_opendp(frame) -> None:  # type: ignore[no-untyped-def]
    # one row per person and group after truncation: OpenDP's len() counts persons
    plan = _ours("SELECT o.value_as_number, COUNT(DISTINCT m.person_id) " + JOIN)
    stat = next(iter(plan.vectors))
    assert plan.vectors[stat].scale == pytest.approx(
        _polars_scale(frame, EPS, dp.len, rows=1), rel=1e-3
    )


@polars_oracle
def test_sum_scale_matches_opendp(frame) -> None:  # type: ignore[no-untyped-def]
    plan = _ours("SELECT o.value_as_number, SUM(m.value_as_number) " + JOIN)
    share = EPS / (1 + Metadata.default().defaults.clamped_report_weight)
    res = plan.slots[0].bounds.resolution
    theirs = _polars_scale(frame, share, lambda: pl.col("x").fill_null(0).dp.sum((LO, HI)))
    assert plan.vectors["s_0"].scale * res == pytest.approx(theirs, rel=1e-3)


@polars_oracle
def test_centred_sum_scale_matches_opendp_on_shifted_data(frame) -> None:  # type: ignore[no-untyped-def]
    plan = _ours("SELECT o.value_as_number, AVG(m.value_as_number) " + JOIN)
    share = EPS / (2 + Metadata.default().defaults.clamped_report_weight)
    s = plan.slots[0]
    mid, half = s.mid_u * s.bounds.resolution, s.half_u * s.bounds.resolution
    shifted = frame.with_columns((pl.col("x") - mid).alias("x"))
    theirs = _polars_scale(shifted, share, lambda: pl.col("x").fill_null(0).dp.sum((-half, half)))
    assert plan.vectors["cs_0"].scale * s.bounds.resolution == pytest.approx(theirs, rel=1e-3)
    assert plan.vectors["n_0"].scale == pytest.approx(_polars_scale(frame, share, dp.len), rel=1e-3)


@pytest.mark.parametrize("q", [0.5, 0.25, 0.9])
def test_quantile_matches_opendp_quantile_mechanism(frame, q: float) -> None:  # type: ignore[no-untyped-def]
    sql = f"SELECT PERCENTILE_CONT({q}) WITHIN GROUP (ORDER BY m.value_as_number) " + JOIN
    plan = _ours(sql.replace(" GROUP BY 1", ""))
    mech = next(iter(plan.quantiles.values()))
    s = plan.slots[0]
    candidates = s.candidates(plan.max_candidates)
    # same scores as OpenDP's make_quantile_score_candidates on the same (gridded) values
    x = np.clip(frame["x"].to_numpy(), LO, HI)
    bins = np.floor((np.round(x / s.bounds.resolution) - s.lo_u) / s.step_u(1000)).astype(int)
    snapped = [candidates[b] for b in bins]
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    t = dp.t.make_quantile_score_candidates(domain, dp.symmetric_distance(), candidates, q)
    hist = np.bincount(bins, minlength=len(candidates))
    # OpenDP may keep q = n/d on a finer integer grid (0.9 as 9000/10000): scores are then
    # an exact integer multiple of ours, which changes neither the argmax nor the privacy map
    factor = t.map(1) // max(mech.num, mech.den - mech.num)
    assert list(mech.scores(hist) * factor) == list(t(snapped))
    assert mech.linf * factor == t.map(R)
    # same privacy loss as OpenDP's make_private_quantile at the same scale
    theirs = dp.m.make_private_quantile(
        domain, dp.symmetric_distance(), dp.max_divergence(), candidates, q, mech.scale / mech.den
    )
    assert mech.spend.epsilon == pytest.approx(theirs.map(R), rel=1e-9)
