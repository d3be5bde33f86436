"""The client against a live gateway (uvicorn on loopback): the embedded connection's
methods, results and errors; ``sde.connect()`` from the settings; progress after 2 s."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest

import sde
from sde.client import GatewayConnection, _progress
from sde.connection import Connection
from sde.dp.ledger import BudgetStatus
from sde.errors import (
    AccessDenied,
    BackendUnavailable,
    BudgetExhausted,
    ConfigurationError,
    DPRefusal,
    InvalidInput,
    ResultTruncated,
    ScopeViolation,
    SDEError,
)
from sde.gateway import create_app
from sde.gateway.auth import TokenTable
from tests.gateway.conftest import ROWS_SCOPE, TOKENS, World, serving

SQL = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1"


@pytest.fixture
def ada(live_gateway: str) -> Iterator[GatewayConnection]:
    conn = sde.connect(gateway=live_gateway, token="token-of-ada", project="htn")  # noqa: S106
    assert isinstance(conn, GatewayConnection)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def embedded(world: World) -> Iterator[Connection]:
    conn = sde.connect(
        world.data,
        scope=ROWS_SCOPE,
        registry=world.registry,
        user="ada",
        cache_dir=world.settings.extract_cache_dir,
    )
    yield conn
    conn.close()


def test_results_equal_the_embedded_connections(
    ada: GatewayConnection, embedded: Connection
) -> None:
    for sql in (SQL, "SELECT person_id, year_of_birth FROM person ORDER BY 1 LIMIT 20"):
        got, expected = ada.sql(sql), embedded.sql(sql)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert got.attrs["sde"] == expected.attrs["sde"]
    assert ada.explain(SQL) == embedded.explain(SQL)


@pytest.mark.parametrize(
    "sql", ["SELECT day_of_birth FROM person", "SELECT * FROM note", "SELECT FROM WHERE"]
)
def test_the_same_errors_are_raised(ada: GatewayConnection, embedded: Connection, sql: str) -> None:
    with pytest.raises(SDEError) as local:
        embedded.sql(sql)
    with pytest.raises(SDEError) as remote:
        ada.sql(sql)
    assert type(remote.value) is type(local.value)
    assert (remote.value.rule, remote.value.message) == (local.value.rule, local.value.message)


def test_access_errors(live_gateway: str) -> None:
    with pytest.raises(AccessDenied) as unknown:
        GatewayConnection(live_gateway, "token-of-ada", "nosuch").sql(SQL)
    assert unknown.value.rule == "project.unknown"
    with pytest.raises(AccessDenied) as suspended:
        GatewayConnection(live_gateway, "token-of-sue", "sus").sql(SQL)
    assert suspended.value.rule == "access.suspended"
    with pytest.raises(AccessDenied) as anonymous:
        GatewayConnection(live_gateway, "wrong", "htn").sql(SQL)
    assert anonymous.value.rule == "auth.unauthenticated"
    with pytest.raises(InvalidInput):
        GatewayConnection(live_gateway, "token-of-ada", "htn").sql("SELECT 1", dialect="oracle")


def test_dp_and_budget(live_gateway: str) -> None:
    with GatewayConnection(live_gateway, "token-of-dee", "dpp") as dee:
        with pytest.raises(ScopeViolation) as plain:
            dee.sql(SQL)
        assert plain.value.rule == "access.dp-only"
        before = dee.budget()
        assert isinstance(before, BudgetStatus)
        frame = dee.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)
        assert list(frame.columns) == ["n"]
        assert frame.attrs["dp"]["epsilon"] == pytest.approx(0.1)
        after = dee.budget()
        assert after.epsilon_spent == pytest.approx(before.epsilon_spent + 0.1)
        assert after.history[-1].user == "dee"
        with pytest.raises(BudgetExhausted):
            dee.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=50)


def test_connect_without_arguments_reads_the_settings(
    live_gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SDE_GATEWAY_URL", raising=False)
    monkeypatch.delenv("SDE_PROJECT", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError) as missing:
        sde.connect()
    assert missing.value.rule == "connect.gateway"
    for name in ("SDE_GATEWAY_URL", "SDE_PROJECT", "JUPYTERHUB_API_TOKEN"):
        assert name in missing.value.message
    monkeypatch.setenv("SDE_GATEWAY_URL", live_gateway)
    monkeypatch.setenv("SDE_PROJECT", "htn")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "token-of-bob")
    with sde.connect() as conn:
        assert isinstance(conn, GatewayConnection)
        assert conn.project == "htn"
        assert conn.sql(SQL)["n"].sum() > 0


def test_an_unreachable_gateway_is_backend_unavailable() -> None:
    conn = GatewayConnection("http://127.0.0.1:9/", "t", "htn", timeout_s=2)
    with pytest.raises(BackendUnavailable) as err:
        conn.sql(SQL)
    assert err.value.rule == "gateway.unreachable"
    assert "t" not in err.value.message.split()  # the token is never echoed


def test_progress_shows_after_two_seconds() -> None:
    quick, slow = io.StringIO(), io.StringIO()
    with _progress(quick):
        time.sleep(0.1)
    assert quick.getvalue() == ""
    with _progress(slow):
        time.sleep(3.2)
    text = slow.getvalue()
    assert "the query is running on the gateway (2 s)" in text
    assert "(3 s)" in text
    assert text.endswith("\n")
    assert "done in 3." in text


def test_calls_at_once_show_progress_from_one_thread() -> None:
    streams = [io.StringIO() for _ in range(3)]

    def call(stream: io.StringIO) -> None:
        with _progress(stream, after_s=0.2):
            time.sleep(0.6)

    workers = [threading.Thread(target=call, args=(s,)) for s in streams]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all("running on the gateway (0 s)" in s.getvalue() for s in streams)
    assert all(s.getvalue().endswith("\n") and "done in 0." in s.getvalue() for s in streams)
    assert [t.name for t in threading.enumerate()].count("sde-progress") == 1


@pytest.mark.parametrize("answer", ["y", "n"])
def test_an_accuracy_cost_is_asked_about_in_a_notebook(
    live_gateway: str, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    import sde.dp.engine

    asked: list[str] = []
    monkeypatch.setattr(sde.dp.engine, "in_notebook", lambda: True)  # as in an IPython kernel
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    sql = {  # two queries: a yes stores a release, which the same query reuses for free
        "y": "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
        "n": "SELECT COUNT(*) AS persons FROM person",
    }[answer]
    with GatewayConnection(live_gateway, "token-of-dee", "dpp") as dee:
        before = dee.budget().epsilon_spent
        if answer == "y":
            frame = dee.sql_dp(sql, accuracy=300.0)
            assert dee.budget().epsilon_spent > before
            assert frame.attrs["dp"]["epsilon"] == pytest.approx(
                dee.budget().epsilon_spent - before
            )
        else:
            with pytest.raises(DPRefusal) as err:
                dee.sql_dp(sql, accuracy=300.0)
            assert err.value.rule == "dp.not-confirmed"
            assert dee.budget().epsilon_spent == before
    assert len(asked) == 1
    assert asked[0].endswith("Spend it? [y/N] ")


def test_a_cut_result_warns_as_embedded(world: World) -> None:
    settings = world.settings.model_copy(update={"row_cap": 5})
    app = create_app(settings, TokenTable(TOKENS), store=world.store)
    with (
        serving(app) as url,
        GatewayConnection(url, "token-of-ada", "htn") as conn,
        pytest.warns(ResultTruncated),
    ):
        frame = conn.sql("SELECT person_id FROM person")
    app.state.gateway.pool.close()
    assert len(frame) == 5
    assert frame.attrs["sde"]["truncated"] is True
