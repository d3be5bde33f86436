"""Every error the gateway answers, mapped to HTTP in this one place.

The body is always ``{"error": "<class>", "rule": "<rule id>", "message": "<sentence>"}``
(plus ``details`` when the error carries some): :class:`~sde.errors.SDEError` subclasses by
:data:`STATUS` (the most specific class wins; :data:`RULE_STATUS` overrides by rule id),
FastAPI's validation errors as 422 and Starlette's own HTTP errors (404 route, 405) in the
same shape, and anything unexpected as a logged 500 with a generic message.

>>> from sde.errors import AccessDenied, BudgetExhausted
>>> status_of(AccessDenied("project.unknown", "there is no project 'x'"))
404
>>> status_of(BudgetExhausted("dp.budget", "no budget left"))
403
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from sde.errors import SDEError
from sde.web.status import STATUS as CLASS_STATUS
from sde.web.status import class_status

log = logging.getLogger("sde.gateway")

#: Status of each error class (the nearest class in an error's MRO decides).
STATUS = CLASS_STATUS
#: Rules whose status differs from their class's.
RULE_STATUS: dict[str, int] = {
    "project.unknown": 404,  # someone else's project looks exactly like a missing one
    "auth.unauthenticated": 401,
    "limits.too-large": 413,
    # The airlock: someone else's request looks exactly like a missing one.
    "airlock.unknown": 404,
    "airlock.unknown-group": 404,
    "airlock.unknown-file": 404,
    # The committee: someone else's draft looks exactly like a missing application.
    "committee.unknown": 404,
    # Federation: a node down, slow, refusing or answering garbage (BackendUnavailable's
    # status already; pinned here so that no reclassing of the error can change it).
    "federation.node-unavailable": 503,
    # The committee's pages: a page someone may not see (the administrators') looks missing.
    "pages.not-found": 404,
}
#: Classes the client re-raises by name (every public error class).
ERROR_CLASSES: dict[str, type[SDEError]] = {cls.__name__: cls for cls in STATUS}

_INTERNAL = "the gateway failed to answer; the operators have the details in its log"


def status_of(err: SDEError) -> int:
    """The HTTP status of ``err``."""
    if err.rule in RULE_STATUS:
        return RULE_STATUS[err.rule]
    return class_status(err)


def body(error: str, rule: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "rule": rule, "message": message, **extra}


def error_response(err: SDEError) -> JSONResponse:
    headers = {"WWW-Authenticate": "token"} if status_of(err) == 401 else None
    return JSONResponse(err.to_dict(), status_code=status_of(err), headers=headers)


async def _sde_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, SDEError)  # noqa: S101 (registered for SDEError only)
    return error_response(err)


async def _validation(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)  # noqa: S101
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in err.errors()[:5]
    ]
    message = "invalid request: " + "; ".join(problems)
    return JSONResponse(body("InvalidInput", "request.invalid", message), status_code=422)


async def _http(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HTTPException)  # noqa: S101
    rule = {404: "route.unknown", 405: "route.method"}.get(err.status_code, "http")
    message = str(err.detail) if err.detail else "the request cannot be answered"
    return JSONResponse(
        body("InvalidInput", rule, message), status_code=err.status_code, headers=err.headers
    )


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(body("SDEError", "gateway.internal", _INTERNAL), status_code=500)


def install(app: FastAPI) -> None:
    """Register the one error mapping on ``app``."""
    app.add_exception_handler(SDEError, _sde_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
