"""The node agent's HTTP face: ``GET /healthz``, ``POST /v1/query``, ``POST /v1/explain``.

Every ``POST`` is checked in this order: its signature (:mod:`sde.federation.signing`;
401 ``federation.unsigned``/``.bad-signature``/``.stale``/``.replayed``; stale includes
every request signed before this agent started, since its nonces live in memory only),
then its body (:class:`~sde.federation.wire.NodeRequest`; 400 ``federation.bad-request``),
then what the signed body says it is for: this node (401 ``federation.wrong-node``) and
this route (401 ``federation.wrong-action``), then the project's scope on this node
(:mod:`sde.federation.node`; 403). An answer is signed over
the request's nonce and its bytes: ``/v1/query`` answers an Arrow IPC stream, with
``X-SDE-Truncated: true`` when a ``rows`` result was cut at the row cap (the cap in
``X-SDE-Row-Cap``); ``/v1/explain`` answers JSON with the node's rewritten SQL. A refusal
is ``{"error", "rule", "message"}``; bad input is never a 500, and bodies over the limit
are refused (413) before they are read whole. Each request is logged (project, kind,
nonce, outcome, duration) on the ``sde.federation.agent`` logger.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sde.errors import (
    AccessDenied,
    SDEError,
)
from sde.federation.node import Node
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    SIGNATURE_RULES,
    WINDOW_S,
    Verifier,
    response_signature,
)
from sde.federation.wire import ARROW_STREAM, NodeRequest, frame_to_arrow
from sde.web.limits import DEFAULT_LIMIT, ASGIApp, BodyLimit
from sde.web.status import class_status

log = logging.getLogger("sde.federation.agent")

_INTERNAL = "the node failed to answer; its operators have the details in its log"


def status_of(err: SDEError) -> int:
    """401 for a refused signature, 503 when the node is too busy, else by class."""
    if err.rule in SIGNATURE_RULES:
        return 401
    if err.rule == "federation.busy":
        return 503
    return class_status(err)


def create_app(
    node: Node,
    secret: bytes,
    *,
    window_s: float = WINDOW_S,
    body_limit: int = DEFAULT_LIMIT,
) -> ASGIApp:
    """The agent for ``node``, answering only requests signed with ``secret``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        node.close()

    app = FastAPI(
        title=f"SDE node agent {node.name}", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.node = node
    app.state.secret = secret
    app.state.verifier = Verifier(secret, window_s=window_s)
    _install_errors(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "node": node.name}

    @app.post("/v1/query")
    async def query(request: Request) -> Response:
        return await _serve(request, "query")

    @app.post("/v1/explain")
    async def explain(request: Request) -> Response:
        return await _serve(request, "explain")

    return BodyLimit(app, limit=body_limit)


async def _serve(request: Request, route: str) -> Response:
    """Verify, parse, run and sign one request; log its outcome."""
    state = request.app.state
    started = time.perf_counter()
    nonce: str | None = None
    parsed: NodeRequest | None = None
    try:
        body = await request.body()
        nonce = state.verifier.verify(request.headers, body)
        parsed = NodeRequest.from_bytes(body)
        _check_bound(parsed, state.node.name, route)
        if route == "query":
            response = await run_in_threadpool(_query, state.node, parsed)
        else:
            document = await run_in_threadpool(state.node.explain, parsed)
            response = Response(json.dumps(document).encode(), media_type="application/json")
    except SDEError as err:
        _log(route, parsed, nonce, f"refused {err.rule}", started)
        response = _error(err)
    except Exception:
        log.exception("node agent: unexpected error on %s", route)
        _log(route, parsed, nonce, "failed", started)
        response = _error(SDEError("node.internal", _INTERNAL), status=500)
    else:
        _log(route, parsed, nonce, "ok", started)
    if nonce is not None:  # the signed request's nonce: the answer is signed for it
        response.headers[HEADER_SIGNATURE] = response_signature(
            state.secret, nonce, bytes(response.body)
        )
        response.headers[HEADER_NONCE] = nonce
    return response


def _check_bound(request: NodeRequest, node: str, route: str) -> None:
    """Refuse a signed request meant for another node or another route."""
    if request.node is not None and request.node != node:
        raise AccessDenied(
            "federation.wrong-node",
            f"the request was signed for node {request.node}, not {node}: refused",
        )
    if request.action is not None and request.action != route:
        raise AccessDenied(
            "federation.wrong-action",
            f"the request was signed for /v1/{request.action}, not /v1/{route}: refused",
        )


def _query(node: Node, request: NodeRequest) -> Response:
    answer = node.query(request)
    headers = {}
    if answer.row_cap is not None:
        headers["X-SDE-Row-Cap"] = str(answer.row_cap)
    if answer.truncated:
        headers["X-SDE-Truncated"] = "true"
    return Response(frame_to_arrow(answer.frame), media_type=ARROW_STREAM, headers=headers)


def _log(
    route: str, request: NodeRequest | None, nonce: str | None, outcome: str, started: float
) -> None:
    log.info(
        "%s project=%s kind=%s nonce=%s outcome=%s duration_ms=%.1f",
        route,
        request.project if request else "-",
        request.kind if request else "-",
        nonce or "-",
        outcome,
        (time.perf_counter() - started) * 1000,
    )


def _error(err: SDEError, status: int | None = None) -> Response:
    code = status or status_of(err)
    payload: dict[str, Any] = {
        "error": type(err).__name__,
        "rule": err.rule,
        "message": err.message,
    }
    headers = {"WWW-Authenticate": "X-SDE-Signature"} if code == 401 else None
    return JSONResponse(payload, status_code=code, headers=headers)


def _install_errors(app: FastAPI) -> None:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""

    async def http_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, HTTPException)  # noqa: S101 (registered for it only)
        rule = {404: "route.unknown", 405: "route.method"}.get(err.status_code, "http")
        message = str(err.detail) if err.detail else "the request cannot be answered"
        payload = {"error": "InvalidInput", "rule": rule, "message": message}
        return JSONResponse(payload, status_code=err.status_code, headers=err.headers)

    app.add_exception_handler(HTTPException, http_error)


__all__ = ["create_app", "status_of"]
