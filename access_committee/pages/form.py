"""The application form: what was typed, kept as typed, and the fields it sends.

:class:`Typed` holds the form exactly as the applicant typed it (text as text, ticked
boxes as lists), so a page refused for any reason shows every value again.
:func:`typed_from_form` reads a posted form, :func:`typed_from_body` an application's saved
fields, and :meth:`Typed.fields` turns it into the fields :meth:`Committee.create` and
:meth:`Committee.update` take (the same the JSON API sends). Only what a form cannot say
(a number that is not a number, a concept id that is not a whole number) is refused here,
naming its field; every other rule is the service's, listed per field on the page.

>>> t = typed_from_form(Form([("title", "COPD"), ("members", "ben, cat\\nben"),
...     ("table:person", "person_id"), ("nodes", "lth"), ("period_start", "2020-01-01")]))
>>> f = t.fields()
>>> f["members"], f["tables"], f["nodes"], f["period"]
(['ben', 'cat'], {'person': ['person_id']}, ['lth'], {'start': '2020-01-01', 'end': None})
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

from access_committee.forms import TEXT_FIELDS
from access_committee.pages.base import Form
from sde.errors import InvalidInput
from sde.registry.committee import LIST_LIMITS, TEXT_LIMITS
from sde.sdc.config import SDCConfig

#: What the form calls each output-checking setting (every field of ``SDCConfig`` is on
#: the form, so an amendment saved unchanged keeps every setting the project had).
SDC_LABELS = {
    "threshold": "Minimum persons per cell (threshold)",
    "nk_n": "Dominance: number of largest contributors (n)",
    "nk_k": "Dominance: share of the total they may not reach (k, 0-1)",
    "p_ratio": "P-ratio",
    "dof_threshold": "Minimum residual degrees of freedom",
    "zeros_are_disclosive": "Report empty cells as potentially disclosive",
    "check_missing_values": "Report missing values inside cells for review",
    "survival_threshold": "Survival tables: fewest units leaving the risk set per step",
    "protection_width": "Suppression: narrowest interval a hidden count may be narrowed to",
    "single_review": "One output checker is enough when every automatic check passes",
}


def _sdc_kind(annotation: object) -> str:
    text = str(annotation)
    return "bool" if "bool" in text else "int" if text == "int" else "float"


#: Output-checking overrides the form offers: (key, label, kind: int, float or bool).
SDC_FIELDS: tuple[tuple[str, str, str], ...] = tuple(
    (f.name, SDC_LABELS.get(f.name, f.name.replace("_", " ")), _sdc_kind(f.type))
    for f in dataclasses.fields(SDCConfig)
)
#: Text inputs kept as typed, by the form's names.
TEXTS = ("project", *TEXT_FIELDS, "pi", "members", "access", "expires", "period_start",
         "period_end", "dp_epsilon", "dp_delta", *(f"sdc_{k}" for k, _, _ in SDC_FIELDS),
         "q")  # fmt: skip
_SPLIT = re.compile(r"[\s,;]+")
#: The limits of what a form sends: the registry's (``TEXT_LIMITS``, ``LIST_LIMITS``), which
#: the JSON API and the services hold to as well.
LIMITS = {**TEXT_LIMITS, **LIST_LIMITS}


def is_id(text: str) -> bool:
    """A concept id as typed: ASCII digits only (``'²'.isdigit()`` is true), fitting a bigint.

    >>> is_id("255573"), is_id("²"), is_id("1" * 19), is_id("-1")
    (True, False, False, False)
    """
    return text.isascii() and text.isdigit() and len(text) <= 18


def iso_date(text: str) -> str | None:
    """A date as typed, in the form the application stores and shows (YYYY-MM-DD).

    Python reads ISO week and basic forms too; they are stored as the date they name, so
    what the application says is what its scope enforces. Text that is not a date is kept
    as typed (the service names the problem).

    >>> iso_date("2020-W01-1"), iso_date("20241231"), iso_date(" 2024-13-01 "), iso_date("")
    ('2019-12-30', '2024-12-31', '2024-13-01', None)
    """
    text = text.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return text


@dataclass
class Typed:
    """The application form as typed."""

    text: dict[str, str] = field(default_factory=dict)
    #: table -> ticked columns (in the order sent)
    tables: dict[str, list[str]] = field(default_factory=dict)
    cohort: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)

    def get(self, name: str) -> str:
        return self.text.get(name, "")

    def fields(self) -> dict[str, Any]:
        """The application's fields (API.md's names); a number that is not one is refused."""
        problems: list[dict[str, str]] = []
        out: dict[str, Any] = {name: self.get(name) for name in ("project", *TEXT_FIELDS)}
        out["pi"] = self.get("pi").strip()
        out["members"] = list(dict.fromkeys(m for m in _SPLIT.split(self.get("members")) if m))
        out["access"] = self.get("access") or None
        out["tables"] = {t: cols for t, cols in self.tables.items() if cols} or None
        out["cohort"] = self._cohort(problems)
        start, end = iso_date(self.get("period_start")), iso_date(self.get("period_end"))
        out["period"] = {"start": start, "end": end} if start or end else None
        out["nodes"] = list(dict.fromkeys(self.nodes))
        out["dp"] = self._numbers(
            "dp", [("epsilon", "dp_epsilon", "float"), ("delta", "dp_delta", "float")], problems
        )
        out["sdc"] = self._numbers(
            "sdc", [(k, f"sdc_{k}", kind) for k, _, kind in SDC_FIELDS], problems
        )
        out["expires"] = iso_date(self.get("expires"))
        problems += _beyond_limits(out)
        if problems:
            first = problems[0]
            raise InvalidInput(
                f"application.{first['field']}",
                f"{first['field']}: {first['message']}",
                field=first["field"],
                problems=problems,
            )
        return out

    def _cohort(self, problems: list[dict[str, str]]) -> dict[str, list[int]] | None:
        ids = []
        for raw in dict.fromkeys(self.cohort):
            if is_id(raw.strip()):
                ids.append(int(raw))
            else:
                problems.append({"field": "cohort", "message": f"{raw!r} is not a concept id"})
        return {"any_condition": ids} if ids else None

    def _numbers(
        self, group: str, names: list[tuple[str, str, str]], problems: list[dict[str, str]]
    ) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        for key, name, kind in names:
            raw = self.get(name).strip()
            if not raw:
                continue
            if kind == "bool":
                if raw not in ("yes", "no"):
                    problems.append({"field": group, "message": f"{key} is yes or no: {raw!r}"})
                else:
                    found[key] = raw == "yes"
                continue
            try:
                value: float = int(raw) if kind == "int" else float(raw)
            except ValueError:
                whole = "a whole number" if kind == "int" else "a number"
                problems.append({"field": group, "message": f"{key} must be {whole}: {raw!r}"})
                continue
            if not math.isfinite(value):
                problems.append({"field": group, "message": f"{key} must be a finite number"})
                continue
            found[key] = value
        return found or None


def _beyond_limits(fields: dict[str, Any]) -> list[dict[str, str]]:
    """What the JSON API would refuse for its length (the registry holds no more)."""
    found = []
    for name in ("project", "pi"):
        if len(fields[name] or "") > LIMITS[name]:
            found.append({"field": name, "message": f"at most {LIMITS[name]} characters"})
    members = fields["members"]
    if len(members) > LIMITS["members"] or any(len(m) > LIMITS["member"] for m in members):
        message = f"at most {LIMITS['members']} user names of {LIMITS['member']} characters"
        found.append({"field": "members", "message": message})
    if len(fields["nodes"]) > LIMITS["nodes"]:
        found.append({"field": "nodes", "message": f"at most {LIMITS['nodes']} nodes"})
    return found


def typed_from_form(form: Form) -> Typed:
    """The form as posted: ``table:<name>`` boxes per table, ``cohort`` and ``nodes`` boxes."""
    typed = Typed(text={name: form.get(name) for name in TEXTS if name in form.names()})
    for key, value in form.pairs:
        if key.startswith("table:") and value:
            typed.tables.setdefault(key.removeprefix("table:"), []).append(value)
    typed.cohort = [c for c in form.getlist("cohort") if c]
    typed.nodes = [n for n in form.getlist("nodes") if n]
    return typed


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def typed_from_body(body: dict[str, Any]) -> Typed:
    """An application's saved fields as the form shows them."""
    text = {name: _text(body.get(name)) for name in ("project", *TEXT_FIELDS, "pi", "access")}
    members = body.get("members") or []
    text["members"] = ", ".join(str(m) for m in members) if isinstance(members, list) else ""
    text["expires"] = _text(body.get("expires"))
    period = _mapping(body.get("period"))
    text["period_start"], text["period_end"] = (_text(period.get(k)) for k in ("start", "end"))
    dp = _mapping(body.get("dp"))
    text["dp_epsilon"], text["dp_delta"] = (_text(dp.get(k)) for k in ("epsilon", "delta"))
    sdc = _mapping(body.get("sdc"))
    for key, _, kind in SDC_FIELDS:
        value = sdc.get(key)
        if kind == "bool" and isinstance(value, bool):
            text[f"sdc_{key}"] = "yes" if value else "no"
        else:
            text[f"sdc_{key}"] = _text(value)
    tables: dict[str, list[str]] = {}
    for name, cols in _mapping(body.get("tables")).items():
        tables[str(name)] = _columns(str(name), cols)
    cohort = _mapping(body.get("cohort"))
    nodes: list[Any] = body["nodes"] if isinstance(body.get("nodes"), list) else []
    return Typed(
        text=text,
        tables=tables,
        cohort=[str(c) for c in cohort.get("any_condition") or []],
        nodes=[str(n) for n in nodes],
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _columns(table: str, cols: Any) -> list[str]:
    """A table's columns as boxes to tick: ``"*"`` ticks every column it may expose."""
    if cols == "*":
        from sde.omop.cdm import CDM

        return list(CDM.exposable_columns(table)) if CDM.has_table(table) else ["*"]
    return [str(c) for c in cols] if isinstance(cols, list) else []
