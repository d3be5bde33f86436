"""Tree helpers shared by the rules: which CTE a table name refers to, AND-ed conditions,
what a walk skips."""

from __future__ import annotations

from sqlglot import exp


def with_of(node: exp.Expr) -> exp.With | None:
    """The WITH clause a query node owns, if any."""
    with_ = node.args.get("with_") or node.args.get("with")
    return with_ if isinstance(with_, exp.With) else None


def visible_cte(table: exp.Table) -> exp.CTE | None:
    """The CTE ``table`` refers to, or ``None`` when it names a real table.

    Standard (non-recursive) scoping: a CTE is visible in the body of the query
    whose WITH defines it, in every nested subquery there, and in the CTEs that
    follow it in the same WITH; not in itself or in earlier ones.
    """
    if table.args.get("db") or table.args.get("catalog"):
        return None
    name = table.name
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            # Inside a CTE body: only earlier CTEs of this WITH are visible here.
            ctes = list(parent.expressions)
            index = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
            for cte in ctes[:index]:
                if cte.alias_or_name == name:
                    return cte
            owner = parent.parent  # the query owning this WITH: its CTEs were just seen
            if owner is None:
                return None
            child, parent = owner, owner.parent
            continue
        with_ = with_of(parent)
        if with_ is not None:
            for cte in with_.expressions:
                if cte.alias_or_name == name:
                    return cte
        child, parent = parent, parent.parent
    return None


def conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    """The AND-ed parts of a condition, parentheses removed (``[]`` for no condition)."""
    if node is None:
        return []
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


def is_hint(node: exp.Expr) -> bool:
    """True for an optimizer hint: the syntax rule refuses it whole, so walks that look
    for tables or functions prune it (its arguments are neither)."""
    return isinstance(node, exp.Hint)
