"""Rule ``statement.*``: one read-only query; nothing that writes, configures or escapes.

The root must be a SELECT or a set operation (UNION, INTERSECT, EXCEPT) of them,
and no part of the tree (a CTE, a subquery) may hold a data-changing or
administrative statement, ``SELECT ... INTO`` or a locking clause.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext

_WRITES: dict[str, str] = {
    "Insert": "INSERT",
    "Update": "UPDATE",
    "Delete": "DELETE",
    "Merge": "MERGE",
    "Create": "CREATE",
    "Drop": "DROP",
    "Alter": "ALTER",
    "TruncateTable": "TRUNCATE",
    "Copy": "COPY",
    "Attach": "ATTACH",
    "Detach": "DETACH",
    "Install": "INSTALL",
    "Set": "SET",
    "Pragma": "PRAGMA",
    "Use": "USE",
    "Describe": "DESCRIBE",
    "Summarize": "SUMMARIZE",
    "Show": "SHOW",
    "Transaction": "a transaction",
    "Commit": "COMMIT",
    "Rollback": "ROLLBACK",
    "Grant": "GRANT",
    "Revoke": "REVOKE",
    "Into": "SELECT ... INTO",
    "Lock": "a locking clause (FOR UPDATE/SHARE)",
    "Export": "EXPORT",
    "Analyze": "ANALYZE",
    "Cache": "CACHE",
    "Uncache": "UNCACHE",
    "LoadData": "LOAD DATA",
    "Refresh": "REFRESH",
    "Returning": "RETURNING",
    "Kill": "KILL",
    "Comment": "COMMENT",
}
_WRITE_CLASSES = tuple(c for n in _WRITES if isinstance(c := getattr(exp, n, None), type))


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse anything but one read-only query."""
    for node in expression.walk():
        if isinstance(node, _WRITE_CLASSES):
            what = _WRITES[type(node).__name__]
            raise ScopeViolation(
                "statement.read-only",
                f"{what} is not allowed: project {ctx.project} is read-only; send one SELECT query",
                construct=what,
            )
    if isinstance(expression, exp.Pivot):
        raise ScopeViolation(
            "statement.read-only",
            "the PIVOT statement is not allowed: write SELECT ... FROM t PIVOT "
            "(aggregate FOR column IN (value, ...))",
            construct="PIVOT",
        )
    if not isinstance(expression, exp.Query):
        kind = expression.key.upper()
        raise ScopeViolation(
            "statement.read-only",
            f"{kind} is not allowed: send one SELECT query",
            construct=kind,
        )
    return expression
