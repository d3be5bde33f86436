"""The HTTP status of each :mod:`sde.errors` class, shared by every HTTP face of the
workbench (the services' JSON errors, the node agents' refusals).

The nearest class in an error's MRO decides; a service maps particular rules on top of it
(``sde.gateway.errors.RULE_STATUS``, a node agent's signature rules).

>>> from sde.errors import AccessDenied, QueryFailed
>>> class_status(AccessDenied("x.y", "no")), class_status(QueryFailed("engine.error", "no"))
(403, 422)
"""

from __future__ import annotations

from sde.errors import (
    AccessDenied,
    BackendUnavailable,
    BudgetExhausted,
    ConfigurationError,
    DisclosureRisk,
    DPRefusal,
    InvalidInput,
    InvalidTransition,
    QueryFailed,
    ScopeViolation,
    SDEError,
)

#: Status of each error class.
STATUS: dict[type[SDEError], int] = {
    SDEError: 400,
    ConfigurationError: 400,
    InvalidInput: 400,
    ScopeViolation: 403,
    DPRefusal: 403,
    DisclosureRisk: 403,
    BudgetExhausted: 403,
    AccessDenied: 403,
    QueryFailed: 422,
    InvalidTransition: 409,
    BackendUnavailable: 503,
}


def class_status(err: SDEError) -> int:
    """The status of ``err``'s nearest class in :data:`STATUS`."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400  # pragma: no cover (SDEError is in every SDEError's MRO)
