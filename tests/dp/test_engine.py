"""The engine end to end: shapes, key release, accuracy and confirmation, federation."""

from __future__ import annotations

import os
import pty
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from sde.audit import AuditLog, AuditRecord
from sde.dp.analyse import analyse
from sde.dp.engine import (
    DPEngine,
    Outcome,
    Quote,
    ask_at_terminal,
    ask_in_notebook,
    in_notebook,
)
from sde.dp.metadata import Metadata
from sde.dp.plan import build
from sde.dp.release import merge
from sde.errors import BudgetExhausted, DPRefusal, InvalidInput, QueryFailed, SDEError
from tests.fixtures.dp import build_dp_node, run_on
from tests.fixtures.synth import all_nodes

IMD_SBP = (
    "SELECT o.value_as_number AS imd, COUNT(DISTINCT m.person_id) AS persons, "
    "AVG(m.value_as_number) AS sbp, SUM(m.value_as_number) AS total, "
    "STDDEV(m.value_as_number) AS sd, "
    "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY m.value_as_number) AS median "
    "FROM measurement m JOIN observation o ON o.person_id = m.person_id "
    "WHERE m.measurement_concept_id = 3004249 AND o.observation_concept_id = 2000000001 "
    "GROUP BY o.value_as_number ORDER BY imd"
)


def test_result_is_shaped_like_the_query(dp_engine: Callable[..., DPEngine]) -> None:
    engine = dp_engine(epsilon=5.0)
    out = engine.sql_dp(IMD_SBP, epsilon=2.0)
    assert list(out.columns) == ["imd", "persons", "sbp", "total", "sd", "median"]
    assert out["imd"].tolist() == list(range(1, 11))  # public key set: every decile, in order
    assert out["sbp"].between(60, 250).all()
    assert out["median"].between(60, 250).all()
    dp = out.attrs["dp"]
    assert dp["keys"] == "public"
    assert dp["epsilon"] == 2.0
    assert dp["delta"] == 0.0
    for col in ("persons", "sbp", "total", "sd"):
        assert len(dp["columns"][col]["half_width"]) == 10
    assert dp["columns"]["median"]["rank_error"] > 0
    # columns share statistics (sbp and sd both use the count and centred sum); the
    # statistics themselves compose to at most the request
    assert sum(s["epsilon"] for s in dp["statistics"].values()) <= 2.0 * (1 + 1e-9)
    assert dp["clamped"]["m.value_as_number"]["bounds"] == [60.0, 250.0]
    assert engine.budget().epsilon_spent == 2.0


def test_order_by_and_limit_apply_to_noisy_values(dp_engine: Callable[..., DPEngine]) -> None:
    out = dp_engine().sql_dp(
        "SELECT visit_concept_id AS v, COUNT(*) AS n FROM visit_occurrence GROUP BY 1 "
        "ORDER BY n DESC LIMIT 2",
        epsilon=1.0,
    )
    assert len(out) == 2
    assert out["n"].is_monotonic_decreasing
    assert len(out.attrs["dp"]["columns"]["n"]["half_width"]) == 2


def test_unknown_keys_pass_a_noisy_threshold_and_charge_delta(
    dp_engine: Callable[..., DPEngine],
) -> None:
    engine = dp_engine()
    out = engine.sql_dp(
        "SELECT c.concept_name AS condition, COUNT(DISTINCT co.person_id) AS n "
        "FROM condition_occurrence co JOIN concept c ON c.concept_id = co.condition_concept_id "
        "GROUP BY 1",
        epsilon=2.0,
        delta=1e-7,
    )
    dp = out.attrs["dp"]
    assert dp["keys"] == "thresholded"
    assert dp["threshold"] > 1
    assert set(out["condition"]) <= {"Essential hypertension", "Type 2 diabetes mellitus", "Asthma"}
    assert (out["n"] >= dp["threshold"]).all()
    assert engine.budget().delta_spent == pytest.approx(1e-7)


def test_accuracy_computes_epsilon_and_asks(dp_engine: Callable[..., DPEngine]) -> None:
    engine = dp_engine(epsilon=10.0)
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"
    seen: list[Quote] = []
    out = engine.sql_dp(sql, accuracy=5, confirm=lambda q: seen.append(q) or True)
    assert seen
    assert "costs epsilon" in str(seen[0])
    assert max(out.attrs["dp"]["columns"]["n"]["half_width"]) <= 5
    assert engine.budget().epsilon_spent == pytest.approx(seen[0].epsilon, rel=1e-9)
    # nobody to ask (tests are not interactive): refused with the cost, nothing spent
    with pytest.raises(DPRefusal, match="pass confirm=True") as err:
        engine.sql_dp(sql, accuracy=2)
    assert err.value.rule == "dp.not-confirmed"
    assert engine.budget().epsilon_spent == pytest.approx(seen[0].epsilon, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "rule", "error"),
    [
        ({}, "dp.epsilon", DPRefusal),
        ({"epsilon": 1.0, "accuracy": 3}, "dp.epsilon", DPRefusal),
        ({"accuracy": {"sbp": 2.0}}, "dp.accuracy-unsupported", DPRefusal),
        ({"epsilon": -1.0}, "dp.epsilon", InvalidInput),
        ({"epsilon": 1.0, "alpha": 1.5}, "dp.alpha", InvalidInput),
    ],
)
def test_argument_refusals(
    dp_engine: Callable[..., DPEngine],
    kwargs: dict[str, object],
    rule: str,
    error: type[SDEError],
) -> None:
    engine = dp_engine()
    with pytest.raises(error) as err:
        engine.sql_dp(IMD_SBP, **kwargs)  # type: ignore[arg-type]
    assert err.value.rule == rule
    assert engine.budget().epsilon_spent == 0


def test_row_level_access_refused_and_free(dp_engine: Callable[..., DPEngine]) -> None:
    engine = dp_engine()
    for sql in ("SELECT * FROM person", "SELECT person_id, value_as_number FROM measurement"):
        with pytest.raises(DPRefusal, match=r"row-level|rows") as err:
            engine.sql_dp(sql, epsilon=1.0)
        assert err.value.rule == "dp.non-aggregate"
    assert engine.budget().epsilon_spent == 0


def test_clamped_values_reported(dp_engine: Callable[..., DPEngine]) -> None:
    out = dp_engine(epsilon=1000.0).sql_dp(
        "SELECT AVG(LEAST(GREATEST(value_as_number, 120), 140)) AS v FROM measurement",
        epsilon=500.0,
        max_rows_per_person=3,
    )
    report = out.attrs["dp"]["clamped"]["value_as_number"]
    assert report["source"] == "query"
    assert 0.3 < report["share"] < 0.9


def test_gaussian_noise_costs_within_the_request(dp_engine: Callable[..., DPEngine]) -> None:
    engine = dp_engine(epsilon=5.0, delta=1e-5)
    out = engine.sql_dp(
        "SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1",
        epsilon=1.0,
        delta=1e-6,
        noise="gaussian",
        max_groups_per_person=3,
    )
    assert out.attrs["dp"]["columns"]["n"]["mechanism"] == "discrete_gaussian"
    assert engine.budget().delta_spent == pytest.approx(1e-6)


def test_quote_spends_nothing(dp_engine: Callable[..., DPEngine]) -> None:
    engine = dp_engine()
    q = engine.quote("SELECT COUNT(*) AS n FROM person", epsilon=0.5)
    assert q.epsilon == 0.5
    assert q.half_widths["n"] == pytest.approx(6.0, abs=1.0)
    assert "_dp_t" in q.exact_sql
    assert engine.budget().epsilon_spent == 0


def test_federated_partials_merge_to_the_pooled_totals(synth_dir: Path) -> None:
    """Per-node exact totals, summed, equal the totals on the pooled data: noise runs once."""
    plan = build(
        analyse(IMD_SBP),
        epsilon=1.0,
        delta=None,
        rows=5,
        groups=1,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    keys, stats = plan.exact.key_cols, plan.exact.stats
    partials = []
    for node in sorted(synth_dir.glob("*.duckdb")):
        con = duckdb.connect(str(node), read_only=True)
        partials.append(run_on(con)(plan.exact.sql, "postgres"))
        con.close()
    federated = merge(pd.concat(partials, ignore_index=True), keys, stats)
    pooled = merge(run_on(all_nodes(synth_dir))(plan.exact.sql, "postgres"), keys, stats)
    pd.testing.assert_frame_equal(federated, pooled)
    assert np.all(federated["n_persons"] > 0)


@pytest.mark.postgres
@pytest.mark.spark
def test_rewritten_sql_agrees_on_every_engine(engines) -> None:  # type: ignore[no-untyped-def]
    from sde.backends.dialect import transpile

    for sql in (IMD_SBP, "SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1"):
        plan = build(
            analyse(sql),
            epsilon=1.0,
            delta=None,
            rows=3,
            groups=2,
            salt="s",
            defaults=Metadata.default().defaults,
        )
        keys, stats = plan.exact.key_cols, plan.exact.stats
        results = {
            name: merge(b.query(transpile(plan.exact.sql, b.dialect)), keys, stats)
            for name, b in engines.items()
        }
        for name, frame in results.items():
            pd.testing.assert_frame_equal(frame, results["duckdb"], obj=name)


def test_clamped_report_weight_zero_gives_every_epsilon_to_the_statistics(
    dp_engine: Callable[..., DPEngine], tmp_path: Path
) -> None:
    """``clamped_report_weight: 0`` turns the report off: SUM then costs what SmartNoise's
    does (sensitivity / epsilon, nothing kept back)."""
    (tmp_path / "md.yaml").write_text("defaults:\n  clamped_report_weight: 0\n")
    sql = "SELECT SUM(value_as_number) AS s FROM measurement WHERE measurement_concept_id = 3004249"
    off = dp_engine(metadata=Metadata.load(tmp_path / "md.yaml"), project="off").sql_dp(
        sql, epsilon=1.0, max_rows_per_person=3
    )
    on = dp_engine(project="on").sql_dp(sql, epsilon=1.0, max_rows_per_person=3)
    assert off.attrs["dp"]["clamped"] == {}
    assert set(off.attrs["dp"]["statistics"]) == {"s_0"}
    assert off.attrs["dp"]["statistics"]["s_0"]["epsilon"] == pytest.approx(1.0)
    assert on.attrs["dp"]["statistics"]["s_0"]["epsilon"] == pytest.approx(1 / 1.1)
    (tmp_path / "bad.yaml").write_text("defaults:\n  clamped_report_weight: -1\n")
    with pytest.raises(ValueError, match="clamped_report_weight"):
        Metadata.load(tmp_path / "bad.yaml")


def test_confirmation_never_prompts_outside_a_notebook(
    dp_engine: Callable[..., DPEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: ``input()`` ran whenever stdin was a terminal, so a server in a terminal's
    foreground hung. Now only an IPython kernel is asked; a real terminal here is not."""
    master, slave = pty.openpty()
    os.write(master, b"y\n")  # an answer waiting, in case anything asks
    with os.fdopen(slave, "r") as tty:
        monkeypatch.setattr(sys, "stdin", tty)
        assert sys.stdin.isatty()
        engine = dp_engine()
        quote = engine.quote("SELECT COUNT(*) AS n FROM person", accuracy=5)
        assert not in_notebook()
        assert ask_in_notebook(quote) is False
        with pytest.raises(DPRefusal, match=r"costs epsilon=.*pass confirm=True") as err:
            engine.sql_dp("SELECT COUNT(*) AS n FROM person", accuracy=5)
        assert err.value.rule == "dp.not-confirmed"
        # asked for explicitly, a prompt reads the terminal
        out = engine.sql_dp("SELECT COUNT(*) AS n FROM person", accuracy=5, confirm=ask_at_terminal)
    os.close(master)
    assert engine.budget().epsilon_spent == pytest.approx(out.attrs["dp"]["epsilon"])


def test_a_failed_run_audits_the_engine_message_and_raises_without_it(
    dp_registry: Engine,
) -> None:
    """One entry per query with ``audit=``; a failure's entry keeps the engine's own words
    (for custodians) and the error raised has neither them nor the original exception."""
    con = duckdb.connect()
    build_dp_node(con, persons=20)
    con.execute("DROP TABLE measurement")  # a real engine failure
    engine = DPEngine(run_on(con), registry=dp_registry, project="p", budget=(1.0, 1e-6))
    log = AuditLog(dp_registry)

    def entry(o: Outcome) -> AuditRecord:
        return AuditRecord(
            user="ana", project="p", scope_version="v", action="sql_dp", sql="q",
            outcome=o.outcome, rule=o.rule, detail=o.detail, rows=o.rows, duration_ms=1.0,
        )  # fmt: skip

    with pytest.raises(QueryFailed) as err:
        engine.sql_dp("SELECT COUNT(*) AS n FROM measurement", epsilon=0.25, audit=entry)
    (failed,) = log.entries()
    assert (failed.outcome, failed.rule) == ("error", "dp.engine-error")
    assert failed.detail is not None
    assert "measurement" in failed.detail
    assert "charged epsilon=0.25" in failed.detail
    assert "measurement" not in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None
    engine.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.25, audit=entry)
    with pytest.raises(BudgetExhausted):
        engine.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.75, audit=entry)
    assert [(e.outcome, e.rule) for e in log.entries()] == [
        ("error", "dp.engine-error"),
        ("ok", None),
        ("refused", "dp.budget"),
    ]
