"""``api/projects/{p}/...``: a member's queries, through the embedded connection's machinery.

Each call runs on the caller's :class:`~sde.connection.Connection` (scope proxy, audit
entry naming the caller and the approval version, DP ledger), over the project's shared
extract, in one trip to the thread pool (:meth:`~sde.gateway.deps.ProjectCall.run`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sde.connection import Connection
from sde.gateway.deps import Call
from sde.gateway.pool import dp_lock
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


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: SQL
    dialect: Dialect | None = None


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


@router.post("/sql", summary="Run one SELECT in the project's scope", responses=_RESULT)
async def sql(request: Request, call: Call, query: Annotated[Query, Body()]) -> Response:
    def work(conn: Connection) -> Response:
        # _execute is sql() without its ResultTruncated warning: the cut travels in
        # attrs["sde"] and the client warns where the researcher looks.
        return frame_response(request, conn._execute(query.sql, query.dialect))

    return await call.run(work)


@router.post("/explain", summary="The rewritten SQL, keyed by where it runs")
async def explain(call: Call, query: Annotated[Query, Body()]) -> dict[str, Any]:
    plans = await call.run(lambda conn: conn.explain(query.sql, query.dialect))
    return {"plans": plans}


@router.post("/sql_dp", summary="A differentially private answer", responses=_RESULT)
async def sql_dp(request: Request, call: Call, query: Annotated[DPQuery, Body()]) -> Response:
    options = query.model_dump(exclude={"sql", "epsilon", "delta", "accuracy", "alpha"})
    options = {k: v for k, v in options.items() if v is not None}

    def work(conn: Connection) -> Response:
        with dp_lock(conn):
            frame = conn.sql_dp(
                query.sql, query.epsilon, query.delta, query.accuracy, query.alpha, **options
            )
        return frame_response(request, frame)

    return await call.run(work)


@router.get("/budget", summary="The project's privacy budget: spent, remaining, releases")
async def budget(call: Call) -> dict[str, Any]:
    def work(conn: Connection) -> BudgetStatus:
        with dp_lock(conn):
            return conn.budget()

    status = await call.run(work)
    out: dict[str, Any] = jsonable(dataclasses.asdict(status))
    out["releases"] = out.pop("history")
    out["epsilon_remaining"] = status.epsilon_remaining
    out["delta_remaining"] = status.delta_remaining
    return out
