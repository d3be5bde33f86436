"""One exception hierarchy for the whole workbench.

Every refusal the workbench makes is an :class:`SDEError`. Each carries a
machine-readable ``rule`` id (stable: tests, audit records and the web pages
refer to it) and a sentence a researcher understands.

>>> try:
...     raise ScopeViolation("columns.not-allowed",
...                          "column person_source_value is not available to project demo")
... except SDEError as err:
...     (err.rule, str(err))
('columns.not-allowed', 'column person_source_value is not available to project demo')
"""

from __future__ import annotations

from typing import Any


class SDEError(Exception):
    """Root of every error the workbench raises on purpose."""

    #: Rule id used when the raiser does not name a more specific one.
    default_rule = "sde"

    def __init__(self, rule: str | None = None, message: str = "", **details: Any) -> None:
        self.rule = rule or self.default_rule
        self.message = message or self.rule
        #: Extra machine-readable context (offending name, limits, ...). Never holds
        #: raw identifiers or keys: it may be shown to the researcher.
        self.details = details
        super().__init__(self.message)

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: a refusal shows in a notebook as one line with its rule id.

        >>> ScopeViolation("tables.not-allowed", "table note is not available")._render_traceback_()
        ['ScopeViolation: [tables.not-allowed] table note is not available']
        """
        return [f"{type(self).__name__}: [{self.rule}] {self.message}"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for APIs and audit records."""
        return {
            "error": type(self).__name__,
            "rule": self.rule,
            "message": self.message,
            **({"details": self.details} if self.details else {}),
        }


class ConfigurationError(SDEError):
    """A setting, scope file or command-line argument is invalid."""

    default_rule = "config"


class InvalidInput(SDEError):
    """Input data (a CSV, a table, a parameter) cannot be used as given."""

    default_rule = "input"


class ScopeViolation(SDEError):
    """A query asks for something outside the project's approved scope."""

    default_rule = "scope"


class DPRefusal(SDEError):
    """A query that differential privacy cannot answer as written; the rule says why.

    Not a :class:`ScopeViolation`: the query may ask only for what the project may see,
    but in a form whose privacy cost cannot be bounded (unbounded values, a person's
    rows not traceable, an expression that could fail on some data).
    """

    default_rule = "dp"


class QueryFailed(SDEError):
    """The engine could not run an in-scope query.

    The message is deliberately generic: the engine's own message can carry
    data values and goes only to the audit log.
    """

    default_rule = "engine.error"


class DisclosureRisk(SDEError):
    """An output fails statistical disclosure control."""

    default_rule = "sdc"


class BudgetExhausted(SDEError):
    """A differentially private query would overspend the project's budget."""

    default_rule = "dp.budget"


class AccessDenied(SDEError):
    """The caller is not allowed to do this (role, membership, expiry)."""

    default_rule = "access"


class InvalidTransition(SDEError):
    """A workflow (release request, application) cannot move as asked."""

    default_rule = "workflow"


class BackendUnavailable(SDEError):
    """An engine (PostgreSQL, Spark) is not installed or cannot be reached."""

    default_rule = "backend.unavailable"


class ResultTruncated(UserWarning):
    """A warning, not an error: a result was cut at the row cap (``Limits.row_cap``).

    Shown where the researcher looks (the notebook cell, the command line); the cut is
    also in ``df.attrs["sde"]`` and in the query's audit entry.
    """

    rule = "limits.row-cap"


__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "BudgetExhausted",
    "ConfigurationError",
    "DisclosureRisk",
    "InvalidInput",
    "InvalidTransition",
    "QueryFailed",
    "ResultTruncated",
    "SDEError",
    "ScopeViolation",
]
