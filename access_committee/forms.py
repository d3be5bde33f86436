"""An application's fields: kept as typed, checked with a message per field, compiled to a scope.

An applicant's draft may be incomplete or wrong; it is stored as given (nothing typed is
lost) and :func:`problems` lists what must change before it can be submitted, each naming
its field. :func:`compile_scope` turns an approved application into the scope file of
ARCHITECTURE.md: the tables, columns, cohort, period and nodes it asked for, minus the nodes
whose custodians declined, and nothing else.

>>> body = {"project": "htn", "access": "rows", "tables": {"person": ["person_id"]},
...         "nodes": ["lth", "elht"], "expires": "2030-01-01"}
>>> compile_scope(body, agreed_nodes=["lth"])["nodes"]
['lth']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sde.errors import ConfigurationError, InvalidInput
from sde.scope import Scope

#: The fields of an application (API.md), in the order a form shows them.
TEXT_FIELDS = ("title", "lay_summary", "purpose", "public_benefit", "legal_basis", "ethics_ref")
SCOPE_FIELDS = ("access", "tables", "cohort", "period", "nodes", "dp", "sdc", "expires")
FIELDS = ("project", *TEXT_FIELDS[:4], "pi", "members", *SCOPE_FIELDS, *TEXT_FIELDS[4:])
#: Longest text a field may hold.
MAX_TEXT = 20_000


def clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The known fields of ``fields`` (an unknown one is refused, naming it)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            "application.unknown-field",
            f"{unknown[0]!r} is not a field of an application; the fields are {', '.join(FIELDS)}",
            field=unknown[0],
        )
    for name in (*TEXT_FIELDS, "project", "pi"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise InvalidInput(
                f"application.{name}",
                f"{name}: text of at most {MAX_TEXT:,} characters",
                field=name,
            )
    return dict(fields)


def problems(
    body: Mapping[str, Any],
    *,
    accredited: Collection[str],
    researchers: Collection[str],
    known_nodes: Collection[str],
    today: dt.date,
) -> list[tuple[str, str]]:
    """What stops ``body`` from being submitted: (field, message) pairs; empty when ready."""
    found: list[tuple[str, str]] = []
    for name in ("project", *TEXT_FIELDS, "pi", "access", "tables", "nodes", "expires"):
        if body.get(name) in (None, "", [], {}):
            found.append((name, "is required"))
    found += _people(body, accredited, researchers)
    nodes = body.get("nodes") or []
    if isinstance(nodes, list):
        for node in nodes:
            if node not in known_nodes:
                found.append(
                    (
                        "nodes",
                        f"{node!r} is not a node of this SDE ({', '.join(sorted(known_nodes))})",
                    )
                )
    if body.get("access") == "dp" and not body.get("dp"):
        found.append(("dp", "a dp project needs a privacy budget {epsilon, delta}"))
    if not {f for f, _ in found} & {"project", "access", "tables", "expires"}:
        found += _scope_problems(body, today)
    return found


def _people(
    body: Mapping[str, Any], accredited: Collection[str], researchers: Collection[str]
) -> list[tuple[str, str]]:
    found = []
    members = body.get("members") or []
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return [("members", "must be a list of user names")]
    for field, name in [("pi", body.get("pi"))] + [("members", m) for m in members]:
        if not name:
            continue
        if name not in researchers:
            found.append((field, f"{name!r} is not a researcher of this SDE"))
        elif name not in accredited:
            found.append((field, f"{name!r} has no current safe-researcher accreditation"))
    return found


def _scope_problems(body: Mapping[str, Any], today: dt.date) -> list[tuple[str, str]]:
    try:
        scope = Scope.from_dict(compile_scope(body, agreed_nodes=body.get("nodes") or []))
    except ConfigurationError as err:
        key = str(err.details.get("key") or err.rule.removeprefix("scope."))
        field = "sdc" if err.rule.startswith("sdc.") else key.split(".", maxsplit=1)[0]
        return [(field if field in FIELDS else "tables", err.message)]
    found = [
        ("tables", f"{column} is never exposed (withheld by design)") for column in scope.withheld
    ]
    if scope.expires is not None and scope.expires <= today:
        found.append(("expires", f"{scope.expires} is not in the future"))
    if scope.period and scope.period.start and scope.expires and scope.expires < scope.period.start:
        found.append(("expires", "the project would expire before its period starts"))
    return found


def compile_scope(body: Mapping[str, Any], *, agreed_nodes: Sequence[str]) -> dict[str, Any]:
    """The scope file an approval of ``body`` makes, with only ``agreed_nodes``."""
    scope: dict[str, Any] = {
        "project": body.get("project"),
        "access": body.get("access"),
        "tables": body.get("tables"),
        "nodes": [n for n in (body.get("nodes") or []) if n in agreed_nodes],
        "expires": body.get("expires"),
    }
    for optional in ("cohort", "period", "dp", "sdc"):
        if body.get(optional) not in (None, {}, []):
            scope[optional] = body[optional]
    return scope


def first_problem(found: Sequence[tuple[str, str]]) -> InvalidInput:
    """The refusal of a submission: the first problem by name, every problem in details."""
    field, message = found[0]
    return InvalidInput(
        f"application.{field}",
        f"{field}: {message}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""),
        field=field,
        problems=[{"field": f, "message": m} for f, m in found],
    )
