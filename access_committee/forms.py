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
from sde.registry.committee import LIST_LIMITS, MAX_WORDS, TEXT_LIMITS, text_problem
from sde.scope import Scope

#: The fields of an application (API.md), in the order a form shows them.
TEXT_FIELDS = ("title", "lay_summary", "purpose", "public_benefit", "legal_basis", "ethics_ref")
SCOPE_FIELDS = ("access", "tables", "cohort", "period", "nodes", "dp", "sdc", "expires")
FIELDS = ("project", *TEXT_FIELDS[:4], "pi", "members", *SCOPE_FIELDS, *TEXT_FIELDS[4:])
#: Longest text of the application's own words (:data:`TEXT_LIMITS` has every field's).
MAX_TEXT = MAX_WORDS


def clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The known fields of ``fields``, refused by name if one cannot be stored: an unknown
    field, text longer than its registry column (:data:`TEXT_LIMITS`) or holding a control
    character, too many members or nodes. Dates (``period``, ``expires``) are kept as
    YYYY-MM-DD: ``2020-W01-1`` and ``20241231`` are stored as the dates they name, so the
    application shows the period its scope enforces (text that is no date is kept as
    typed; submitting names it).

    >>> clean({"period": {"start": "2020-W01-1", "end": "20241231"}})["period"]
    {'start': '2019-12-30', 'end': '2024-12-31'}
    """
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            "application.unknown-field",
            f"{unknown[0]!r} is not a field of an application; the fields are {', '.join(FIELDS)}",
            field=unknown[0],
        )
    for name in (*TEXT_FIELDS, "project", "pi"):
        value = fields.get(name)
        if value is not None:
            _text(name, value, TEXT_LIMITS[name])
    for name, item in (("members", "member"), ("nodes", "node")):
        values = fields.get(name)
        if isinstance(values, list):
            if len(values) > LIST_LIMITS[name]:
                raise _refusal(name, f"at most {LIST_LIMITS[name]} ({len(values)} given)")
            for value in values:
                if isinstance(value, str):  # anything else is a problem of the draft
                    _text(name, value, TEXT_LIMITS[item])
    body = dict(fields)
    if isinstance(body.get("period"), dict):
        body["period"] = {k: iso_date(v) for k, v in body["period"].items()}
    if "expires" in body:
        body["expires"] = iso_date(body["expires"])
    return body


def _refusal(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"application.{name}", f"{name}: {message}", field=name)


def _text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise _refusal(name, "must be text")
    problem = text_problem(value, limit)
    if problem is not None:
        raise _refusal(name, problem)


def iso_date(value: Any) -> Any:
    """A date as YYYY-MM-DD, whichever ISO 8601 form it was typed in; anything else as given.

    >>> iso_date("2020-W01-1"), iso_date(" 20241231 "), iso_date("31/12/2024"), iso_date(None)
    ('2019-12-30', '2024-12-31', '31/12/2024', None)
    """
    if not isinstance(value, str):
        return value
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return value


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
    found += unstorable(body)
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


def unstorable(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Text of ``body`` the registry cannot take (:func:`clean` refuses it; a body stored
    before that rule is caught here, before approval copies it into the project)."""
    found = []
    for name in (*TEXT_FIELDS, "project", "pi"):
        value = body.get(name)
        problem = text_problem(value, TEXT_LIMITS[name]) if isinstance(value, str) else None
        if problem is not None:
            found.append((name, problem))
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
