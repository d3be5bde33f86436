"""``api/projects/{p}/...``: a member's queries, on their project connection.

Each call runs on the caller's connection (scope proxy, audit entry naming the caller and
the approval version, DP ledger) in one trip to the thread pool
(:meth:`~sde.gateway.deps.ProjectCall.run`): the embedded
:class:`~sde.connection.Connection` over the project's shared extract, or, when the
gateway coordinates node agents, a :class:`~sde.federation.coordinator.FederatedConnection`.
``partial`` (``sql`` and ``sql_dp``) asks a federated query for the answering nodes' result
when a node fails (``attrs["sde"]["missing_nodes"]`` names the others); without it such a
query fails with 503 ``federation.node-unavailable``. Embedded, there is no node to miss.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sde.connection import Connection
from sde.gateway.deps import Call
from sde.gateway.pool import ProjectConnection, dp_lock
from sde.gateway.results import ARROW, frame_response, jsonable

if TYPE_CHECKING:
    from sde.dp.ledger import BudgetStatus

router = APIRouter(prefix="/api/projects/{project}", tags=["projects"])

Dialect = Literal["postgres", "postgresql", "duckdb", "spark", "sparksql"]
SQL = Annotated[str, Field(min_length=1, max_length=100_000, description="One SELECT.")]
Number = Annotated[float, Field(allow_inf_nan=False)]
_RESULT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A result: JSON, or an Arrow IPC stream when asked for with Accept.",
        "content": {"application/json": {}, ARROW: {}},
    }
}


PARTIAL = "With federation: answer from the other nodes when one fails, naming it."


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: SQL
    dialect: Dialect | None = None


class SQLQuery(Query):
    partial: bool = Field(False, description=PARTIAL)


class DPQuery(BaseModel):
    """The options of :meth:`sde.connection.Connection.sql_dp`."""

    model_config = ConfigDict(extra="forbid")
    sql: SQL
    epsilon: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    delta: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None
    accuracy: (
        Annotated[float, Field(gt=0, allow_inf_nan=False)]
        | dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]]
        | None
    ) = None
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    bounds: dict[str, Annotated[list[Number], Field(min_length=2, max_length=2)]] | None = None
    keys: dict[str, list[str | int | float | bool | None]] | None = None
    max_rows_per_person: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    max_groups_per_person: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    noise: Literal["laplace", "gaussian"] = "laplace"
    confirm: bool = Field(False, description="Accept the cost computed from accuracy=.")
    dialect: Dialect | None = None
    partial: bool = Field(False, description=PARTIAL)


@router.post("/sql", summary="Run one SELECT in the project's scope", responses=_RESULT)
async def sql(request: Request, call: Call, query: Annotated[SQLQuery, Body()]) -> Response:
    def work(conn: ProjectConnection) -> Response:
        # _execute is sql() without its ResultTruncated warning: the cut travels in
        # attrs["sde"] and the client warns where the researcher looks.
        if isinstance(conn, Connection):
            return frame_response(request, conn._execute(query.sql, query.dialect))
        return frame_response(request, conn._execute(query.sql, query.dialect, query.partial))

    return await call.run(work)


@router.post("/explain", summary="The rewritten SQL, keyed by where it runs")
async def explain(call: Call, query: Annotated[Query, Body()]) -> dict[str, Any]:
    plans = await call.run(lambda conn: conn.explain(query.sql, query.dialect))
    return {"plans": plans}


@router.post("/sql_dp", summary="A differentially private answer", responses=_RESULT)
async def sql_dp(request: Request, call: Call, query: Annotated[DPQuery, Body()]) -> Response:
    exclude = {"sql", "epsilon", "delta", "accuracy", "alpha", "partial"}
    options = {k: v for k, v in query.model_dump(exclude=exclude).items() if v is not None}

    def work(conn: ProjectConnection) -> Response:
        if not isinstance(conn, Connection):
            options["partial"] = query.partial
        with dp_lock(conn):
            frame = conn.sql_dp(
                query.sql, query.epsilon, query.delta, query.accuracy, query.alpha, **options
            )
        return frame_response(request, frame)

    return await call.run(work)


@router.get("/budget", summary="The project's privacy budget: spent, remaining, releases")
async def budget(call: Call) -> dict[str, Any]:
    def work(conn: ProjectConnection) -> BudgetStatus:
        with dp_lock(conn):
            return conn.budget()

    status = await call.run(work)
    out: dict[str, Any] = jsonable(dataclasses.asdict(status))
    out["releases"] = out.pop("history")
    out["epsilon_remaining"] = status.epsilon_remaining
    out["delta_remaining"] = status.delta_remaining
    return out
