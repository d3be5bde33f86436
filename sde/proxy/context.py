"""What every proxy rule may consult: the project's scope, the dialect, the limits.

A :class:`RuleContext` is built once per query and passed, with the parsed
expression, down the ordered list of rules (:data:`sde.proxy.rules.RULES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sde.omop.cdm import CDM
from sde.omop.ddl import column_type
from sde.pseudonym import NAMESPACES
from sde.scope import Scope

#: Researcher dialects the proxy reads; the names sqlglot uses.
DIALECTS: tuple[str, ...] = ("postgres", "duckdb", "spark")


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every query."""

    #: Rows returned at most; more are cut and the cut is reported.
    row_cap: int = 1_000_000
    #: Seconds a statement may run before the engine is told to stop.
    timeout_s: float = 60.0
    #: Joins without an equality between the two sides, per query.
    max_cross_joins: int = 2
    #: Characters of SQL accepted.
    max_sql_chars: int = 100_000
    #: Nodes of the parsed tree accepted.
    max_nodes: int = 20_000
    #: Nesting depth of the parsed tree accepted.
    max_depth: int = 120


@dataclass(frozen=True)
class RuleContext:
    """The inputs of every rule for one query."""

    scope: Scope
    dialect: str = "postgres"
    limits: Limits = field(default_factory=Limits)
    #: False only for the DP engine's exact-total queries: their outputs are noised by
    #: :mod:`sde.dp` instead of being shaped and thresholded by the aggregates mode.
    enforce_access: bool = True
    #: True for a federated node part (:mod:`sde.federation.node`): the aggregates mode
    #: still checks the shape and adds the hidden person counts, but groups are not removed
    #: in SQL: the node flags its small groups itself (:mod:`sde.federation.node_sdc`).
    node_part: bool = False

    @property
    def project(self) -> str:
        return self.scope.project

    @cached_property
    def schema(self) -> dict[str, object]:
        """Allowlisted tables -> allowlisted columns -> SQL type (as qualify needs it)."""
        out: dict[str, object] = {}
        for table, cols in self.scope.tables.items():
            out[table] = {c: _sql_type(table, c) for c in cols}
        return out

    def not_available(self, kind: str, name: str) -> str:
        """The sentence every refusal of a name uses."""
        return f"{kind} {name} is not available to project {self.project}"


def _sql_type(table: str, column: str) -> str:
    if column in NAMESPACES:
        return "BIGINT"
    return column_type(CDM.table(table).column(column), "duckdb").split("(", 1)[0]
