"""Rule ``tables.*``: only the project's allowlisted OMOP tables, named plainly.

Each table reference is resolved as the engine resolves it: a name refers to a
CTE when a CTE of that name is visible where it is used (defined by an
enclosing query, earlier in the same WITH); otherwise it is a real table and
must be on the project's allowlist. So a CTE may shadow a table name, and a
CTE body that names its own table still reads the real one, which is checked.

Refused: schema or catalog qualifiers (``main.person``, ``lth.public.person``),
engine catalogs (``information_schema``, ``pg_class``, ``duckdb_tables``),
file paths and URLs as tables, table functions (``read_csv``, ``glob``,
``generate_series``, ``UNNEST``...), time travel and other table clauses, and
positional column aliases on a table (``person AS p(a, b)``), which bind to the
engine's columns rather than the project's.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.allowlists import CATALOG_PREFIXES, CATALOG_SCHEMAS
from sde.proxy.context import RuleContext
from sde.proxy.resolve import is_hint, visible_cte

_TABLE_ARGS = frozenset({"this", "alias", "joins", "laterals", "pivots"})


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse every table reference that is not a visible CTE or an allowlisted table."""
    for node in expression.walk(prune=is_hint):
        if isinstance(node, exp.Lateral | exp.Unnest) and not isinstance(
            node.this, exp.Subquery | exp.Query
        ):
            if isinstance(node, exp.Unnest) and not isinstance(node.parent, exp.From | exp.Join):
                continue  # UNNEST(array) as a value is a function, checked there
            raise ScopeViolation(
                "tables.function",
                f"table function {_func_name(node)} is not allowed; "
                f"read the project's tables ({_listing(ctx)})",
                name=_func_name(node),
            )
        if isinstance(node, exp.Table):
            _check_table(node, ctx)
    return expression


def _check_table(table: exp.Table, ctx: RuleContext) -> None:
    if not isinstance(table.this, exp.Identifier):
        name = _func_name(table.this)
        raise ScopeViolation(
            "tables.function",
            f"table function {name} is not allowed; read the project's tables ({_listing(ctx)})",
            name=name,
        )
    name = table.name
    parts = [p.name for p in (table.args.get("catalog"), table.args.get("db")) if p is not None]
    if parts:
        qualified = ".".join([*parts, name])
        rule = "tables.catalog" if any(p in CATALOG_SCHEMAS for p in parts) else "tables.qualified"
        raise ScopeViolation(
            rule,
            f"table {qualified} is not available to project {ctx.project}: "
            "name tables without a schema or catalog",
            name=qualified,
        )
    alias = table.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.columns:
        # Positional renames bind to the engine's columns, which need not be the
        # project's: an extract may hold person_id for the aggregates counts.
        raise ScopeViolation(
            "tables.clause",
            f"column aliases on table {name} ({alias.name}(...)) are not allowed; "
            "name the columns and alias them in the select list",
            name=name,
        )
    extra = sorted(k for k, v in table.args.items() if v and k not in _TABLE_ARGS)
    if extra:
        raise ScopeViolation(
            "tables.clause",
            f"table clause {extra[0].upper()} on {name} is not allowed",
            name=name,
        )
    if visible_cte(table) is not None:
        return
    if name in ctx.scope.tables:
        return
    if any(ch in name for ch in "/\\:.~") or name.startswith("$"):
        raise ScopeViolation(
            "tables.file",
            f"files and URLs cannot be read as tables ({name!r}); use the project's tables",
            name=name,
        )
    if name in CATALOG_SCHEMAS or name.startswith(CATALOG_PREFIXES):
        raise ScopeViolation(
            "tables.catalog",
            f"catalog {name} is not available to project {ctx.project}",
            name=name,
        )
    raise ScopeViolation(
        "tables.not-allowed",
        ctx.not_available("table", name) + f" (its tables: {_listing(ctx)})",
        name=name,
    )


def _func_name(node: exp.Expr | None) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Lateral | exp.Unnest):
        return _func_name(node.this) if isinstance(node.this, exp.Func) else node.key
    return node.key if node is not None else "unknown"


def _listing(ctx: RuleContext) -> str:
    return ", ".join(sorted(ctx.scope.tables))
