"""parse -> validate -> rewrite -> transpile: one researcher query to engine SQL.

>>> from sde.scope import Scope
>>> scope = Scope.from_dict({"project": "demo", "access": "rows",
...                          "tables": {"person": ["person_id", "year_of_birth"]}})
>>> p = prepare("select year_of_birth from person", RuleContext(scope, limits=Limits(row_cap=5)))
>>> p.sql("duckdb")
'SELECT "person"."year_of_birth" AS "year_of_birth" FROM "person" AS "person" LIMIT 6'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.optimizer.annotate_types import annotate_types

from sde.errors import QueryFailed, ScopeViolation, SDEError
from sde.proxy.context import Limits, RuleContext
from sde.proxy.parse import parse
from sde.proxy.rules import RULES
from sde.proxy.rules.threshold import is_thresholded
from sde.proxy.transpile import for_engine


@dataclass(frozen=True)
class Prepared:
    """A query every rule accepted, ready to transpile for any engine."""

    original: str
    expression: exp.Expression
    #: Groups under this many persons were removed inside the query (aggregates mode;
    #: ``None`` when nothing is counted). The result says so, never how many.
    threshold: int | None
    _generated: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, engine_dialect: str) -> str:
        """The rewritten query in ``engine_dialect``; every identifier quoted."""
        if engine_dialect in self._generated:
            return self._generated[engine_dialect]
        try:
            text = for_engine(self.expression, engine_dialect).sql(
                dialect=engine_dialect, identify=True, unsupported_level=ErrorLevel.RAISE
            )
        except Exception as err:
            raise QueryFailed(
                "engine.unsupported",
                f"the query uses something the {engine_dialect} engine cannot run: "
                f"{str(err).splitlines()[0][:200] if str(err) else 'unsupported'}",
            ) from None
        self._generated[engine_dialect] = text
        return text

    def sha256(self, engine_dialect: str) -> str:
        return hashlib.sha256(self.sql(engine_dialect).encode()).hexdigest()


def prepare(sql: str, ctx: RuleContext) -> Prepared:
    """Run the parse stage and every rule; a :class:`Prepared` or an ``SDEError``.

    Anything unexpected inside a rule is a refusal too (fail closed), never a crash.
    """
    expression = parse(sql, ctx)
    for rule in RULES:
        try:
            expression = rule(expression, ctx)
        except SDEError:
            raise
        except RecursionError:
            raise ScopeViolation("limits.depth", "the query is nested too deeply") from None
        except Exception:
            name = f"{rule.__module__.rsplit('.', 1)[-1]}.{rule.__name__}"
            raise ScopeViolation(
                "proxy.unchecked",
                f"the proxy could not check this query (rule {name}); simplify it",
                rule_function=name,
            ) from None
    expression = _typed(expression, ctx)
    threshold = ctx.scope.threshold if is_thresholded(expression) else None
    return Prepared(sql, expression, threshold)


def _typed(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Annotate types so the transpiler keeps the researcher's dialect's meaning
    (PostgreSQL's integer ``/`` stays an integer division on DuckDB and Spark)."""
    try:
        return annotate_types(expression, schema=ctx.schema, dialect=ctx.dialect)
    except Exception:  # types are for fidelity, not safety: fall back to the untyped tree
        return expression


__all__ = ["Limits", "Prepared", "RuleContext", "prepare"]
