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

import math
import re
from dataclasses import dataclass, field
from typing import Any

from access_committee.forms import TEXT_FIELDS
from access_committee.pages.base import Form
from sde.errors import InvalidInput

#: Output-checking overrides the form offers: (key, label, kind).
SDC_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("threshold", "Minimum persons per cell (threshold)", "int"),
    ("dof_threshold", "Minimum residual degrees of freedom", "int"),
    ("nk_n", "Dominance: number of largest contributors (n)", "int"),
    ("nk_k", "Dominance: share of the total they may not reach (k, 0-1)", "float"),
    ("p_ratio", "P-ratio", "float"),
)
#: Text inputs kept as typed, by the form's names.
TEXTS = ("project", *TEXT_FIELDS, "pi", "members", "access", "expires", "period_start",
         "period_end", "dp_epsilon", "dp_delta", *(f"sdc_{k}" for k, _, _ in SDC_FIELDS),
         "q")  # fmt: skip
_SPLIT = re.compile(r"[\s,;]+")


@dataclass
class Typed:
    """The application form as typed."""

    text: dict[str, str] = field(default_factory=dict)
    #: table -> ticked columns (in the order sent)
    tables: dict[str, list[str]] = field(default_factory=dict)
    cohort: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    single_review: bool = False

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
        start, end = self.get("period_start").strip(), self.get("period_end").strip()
        out["period"] = {"start": start or None, "end": end or None} if start or end else None
        out["nodes"] = list(dict.fromkeys(self.nodes))
        out["dp"] = self._numbers(
            "dp", [("epsilon", "dp_epsilon", "float"), ("delta", "dp_delta", "float")], problems
        )
        sdc = self._numbers("sdc", [(k, f"sdc_{k}", kind) for k, _, kind in SDC_FIELDS], problems)
        if self.single_review:
            sdc = {**(sdc or {}), "single_review": True}
        out["sdc"] = sdc
        out["expires"] = self.get("expires").strip() or None
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
            if raw.strip().isdigit() and len(raw.strip()) <= 18:
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


def typed_from_form(form: Form) -> Typed:
    """The form as posted: ``table:<name>`` boxes per table, ``cohort`` and ``nodes`` boxes."""
    typed = Typed(text={name: form.get(name) for name in TEXTS if name in form.names()})
    for key, value in form.pairs:
        if key.startswith("table:") and value:
            typed.tables.setdefault(key.removeprefix("table:"), []).append(value)
    typed.cohort = [c for c in form.getlist("cohort") if c]
    typed.nodes = [n for n in form.getlist("nodes") if n]
    typed.single_review = form.get("sdc_single_review") == "on"
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
    for key, _, _ in SDC_FIELDS:
        text[f"sdc_{key}"] = _text(sdc.get(key))
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
        single_review=bool(sdc.get("single_review")),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _columns(table: str, cols: Any) -> list[str]:
    """A table's columns as boxes to tick: ``"*"`` ticks every column it may expose."""
    if cols == "*":
        from sde.omop.cdm import CDM

        return list(CDM.exposable_columns(table)) if CDM.has_table(table) else ["*"]
    return [str(c) for c in cols] if isinstance(cols, list) else []
