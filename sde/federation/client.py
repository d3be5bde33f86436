"""The coordinator's HTTP client of the node agents: signed requests, checked answers.

Every request is signed (:mod:`sde.federation.signing`); every answer must carry the node's
signature over the request's nonce and the answer's bytes, or it is garbage. Whatever goes
wrong with one node (down, past its timeout, a refusal, an unsigned or undecodable answer)
is a :class:`NodeFailure` naming the node and saying what happened in words safe to show a
researcher: never the node's engine text. The coordinator turns failures into one
``federation.node-unavailable`` error, or, when asked for a partial answer, a list of the
missing nodes.

:meth:`NodeClient.fan_out` asks every node at once (a thread per node) and waits at most the
timeout for all of them; :func:`check_part` checks a decoded part against the plan, and
:func:`unavailable` is the one error for the nodes that failed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_EXCEPTION,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd

from sde.errors import BackendUnavailable, SDEError
from sde.federation.merge import expected_columns
from sde.federation.plan import FederatedPlan
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    sign_request,
    verify_response,
)
from sde.federation.wire import decode_frame

T = TypeVar("T")

ARROW = "application/vnd.apache.arrow.stream"
#: Seconds a node is given beyond the query's own timeout to say that it timed out.
GRACE_S = 2.0
#: The rule of every query a node gave no usable answer to.
UNAVAILABLE = "federation.node-unavailable"
#: Partials of an aggregate node part that are numbers (min and max may be anything).
NUMERIC_PARTIALS = frozenset({"count", "sum", "mean", "var_pop"})
#: The column of a node's round-2 answer (is each probed group small there?).
SMALL = "__sde_small"
#: Characters of a node's refusal message quoted at most.
_QUOTE = 300


class NodeFailure(Exception):
    """One node did not give a usable answer; ``reason`` is a sentence safe to show."""

    def __init__(
        self, node: str, reason: str, rule: str | None = None, *, timed_out: bool = False
    ) -> None:
        super().__init__(f"node {node} {reason}")
        self.node = node
        self.reason = reason
        #: The node's own rule id when it answered with an error (``nodes.not-allowed``, ...).
        self.rule = rule
        #: The node (or the wait for it) ran past the time limit.
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    """A node's checked answer: the bytes it signed and their decoded content."""

    node: str
    body: bytes
    content_type: str
    #: The node cut its rows at its row cap (``X-SDE-Truncated``).
    truncated: bool = False


class NodeClient:
    """Signed requests to a fixed set of node agents (``name -> base URL``). Thread-safe."""

    def __init__(
        self,
        nodes: Mapping[str, str],
        secret: bytes,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = {name: url.rstrip("/") + "/" for name, url in nodes.items()}
        self._secret = secret
        self._http = httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # a node is reached directly, never through a proxy
            limits=httpx.Limits(max_connections=4 * max(1, len(nodes))),
        )
        # Room for the requests of calls that returned early (fail fast, a timeout) and
        # are still on their way: a new call never queues behind them.
        self._pool = ThreadPoolExecutor(
            max_workers=4 * max(1, len(nodes)), thread_name_prefix="sde-fed"
        )
        self._lock = threading.Lock()
        self._closed = False

    # -- one node ---------------------------------------------------------------------

    def post(self, node: str, path: str, body: bytes, *, timeout_s: float) -> Answer:
        """POST ``body`` signed to ``node``'s ``path``; its checked answer or a NodeFailure.

        A request refused as stale is signed again and sent once more: an agent that
        restarted refuses whatever was signed before it started (it cannot tell a replay).
        """
        url = self.urls.get(node)
        if url is None:
            raise NodeFailure(node, "is not one of this coordinator's nodes")
        headers, response = self._send(node, url + path, body, timeout_s)
        if response.status_code == 401 and _rule(response) == "federation.stale":
            headers, response = self._send(node, url + path, body, timeout_s)
        if response.status_code != 200:
            raise _refusal(node, response)
        try:
            verify_response(
                self._secret,
                headers[HEADER_NONCE],
                response.content,
                response.headers.get(HEADER_SIGNATURE),
            )
        except SDEError:
            raise NodeFailure(
                node, "answered without a valid signature (not the node's own answer)"
            ) from None
        return Answer(
            node,
            response.content,
            response.headers.get("content-type", ""),
            truncated=response.headers.get("X-SDE-Truncated", "").lower() == "true",
        )

    def _send(
        self, node: str, url: str, body: bytes, timeout_s: float
    ) -> tuple[dict[str, str], httpx.Response]:
        """One signed POST (a fresh time and nonce): its headers and the response."""
        headers = sign_request(self._secret, body)
        headers["Content-Type"] = "application/json"
        try:
            response = self._http.post(
                url, content=body, headers=headers, timeout=timeout_s + GRACE_S
            )
        except httpx.TimeoutException:
            raise NodeFailure(
                node, f"did not answer within {timeout_s:g} s", timed_out=True
            ) from None
        except httpx.HTTPError as err:
            raise NodeFailure(node, f"could not be reached ({_transport(err)})") from None
        return headers, response

    def check_health(self, node: str, *, timeout_s: float) -> None:
        """``GET healthz`` of ``node``: a NodeFailure unless it answers 200."""
        url = self.urls.get(node)
        if url is None:
            raise NodeFailure(node, "is not one of this coordinator's nodes")
        try:
            response = self._http.get(url + "healthz", timeout=timeout_s)
        except httpx.TimeoutException:
            raise NodeFailure(node, f"did not answer within {timeout_s:g} s") from None
        except httpx.HTTPError as err:
            raise NodeFailure(node, f"could not be reached ({_transport(err)})") from None
        if response.status_code != 200:
            raise NodeFailure(node, f"is not healthy (HTTP {response.status_code})")

    def frame(self, node: str, path: str, body: bytes, *, timeout_s: float) -> pd.DataFrame:
        """A node's signed Arrow answer, decoded; ``attrs["truncated"]`` when the node cut
        its rows at its row cap."""
        answer = self.post(node, path, body, timeout_s=timeout_s)
        try:
            frame = decode_frame(answer.body)
        except Exception:
            raise NodeFailure(node, "answered with something that is not an Arrow table") from None
        if answer.truncated:
            frame.attrs["truncated"] = True
        return frame

    def document(self, node: str, path: str, body: bytes, *, timeout_s: float) -> dict[str, Any]:
        """A node's signed JSON answer (``/v1/explain``), decoded."""
        answer = self.post(node, path, body, timeout_s=timeout_s)
        try:
            doc = json.loads(answer.body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise NodeFailure(node, "answered with something that is not a JSON object")
        return doc

    # -- every node at once -----------------------------------------------------------

    def fan_out(
        self,
        nodes: tuple[str, ...],
        ask: Callable[[str], T],
        *,
        timeout_s: float,
        fail_fast: bool = False,
    ) -> tuple[dict[str, T], dict[str, NodeFailure]]:
        """``ask(node)`` for every node in parallel: the answers and the failures, by node.

        A node still working ``timeout_s`` (plus a grace to report its own timeout) after
        the start is a failure; its thread ends when its request does. ``fail_fast``: return
        at the first failure, leaving the nodes still working out of both answers and
        failures (their answers are dropped when they come).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the node client is closed")
            futures = {node: self._pool.submit(ask, node) for node in nodes}
        when = FIRST_EXCEPTION if fail_fast else ALL_COMPLETED
        wait(futures.values(), timeout=timeout_s + 2 * GRACE_S, return_when=when)
        answers: dict[str, T] = {}
        failures: dict[str, NodeFailure] = {}
        for node, future in futures.items():
            if future.done() or not fail_fast:
                _collect(node, future, timeout_s, answers, failures)
        if fail_fast and not failures:  # the deadline passed first: the rest timed out
            for node, future in futures.items():
                if not future.done():
                    _collect(node, future, timeout_s, answers, failures)
        return answers, failures

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


def check_part(node: str, frame: pd.DataFrame, plan: FederatedPlan) -> None:
    """A node's part has the plan's columns: by name for an aggregate part (then, in an
    ``aggregates`` project, the person counts and the flag the node adds); by number for
    rows, whose names may repeat."""
    got = [str(c) for c in frame.columns]
    expected = expected_columns(plan)
    if plan.kind == "aggregate" and got == expected:
        _check_numbers(node, frame, plan)
        return
    if plan.kind != "aggregate" and len(got) == len(expected):
        return
    shown = ", ".join(got[:12]) + (", ..." if len(got) > 12 else "")
    raise NodeFailure(
        node, f"answered with columns ({shown}) where the plan expects ({', '.join(expected)})"
    )


def _check_numbers(node: str, frame: pd.DataFrame, plan: FederatedPlan) -> None:
    """Counts, sums, means and variances (and the person counts a node adds) are numbers."""
    numeric = [f"f_a{i}" for i, kind in enumerate(plan.partials) if kind in NUMERIC_PARTIALS]
    numeric += [c for c in frame.columns if str(c).startswith("__sde_persons_")]
    for column in numeric:
        values = frame[column]
        if not (pd.api.types.is_numeric_dtype(values) or values.isna().all()):
            raise NodeFailure(node, f"answered {column} with values that are not numbers")


def small_flags(node: str, frame: pd.DataFrame, probe: list[list[Any]]) -> list[bool]:
    """A node's round-2 answer: one ``__sde_small`` per probed key, in order (a missing
    answer counts as small: fail closed)."""
    if [str(c) for c in frame.columns] != [SMALL] or len(frame) != len(probe):
        raise NodeFailure(node, f"answered a probe of {len(probe)} groups with something else")
    return [not _definitely_false(v) for v in frame[SMALL].astype(object).tolist()]


def _definitely_false(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) and not bool(value)


def unavailable(
    failures: Mapping[str, NodeFailure], *, charged: bool = False, partial_refused: bool = False
) -> BackendUnavailable:
    """The one error for nodes that gave no usable answer, naming each and what happened.

    ``charged``: a DP query that was charged; ``partial_refused``: a partial answer was
    asked for in a project that gets none.
    """
    names = sorted(failures)
    what = "; ".join(f"node {failures[n].node} {failures[n].reason}" for n in names)
    plural = "s" if len(names) > 1 else ""
    if partial_refused:
        advice = (
            "An aggregates project gets no partial answers: the full answer minus a partial "
            "one would reveal the missing node's cells"
        )
    elif any(f.rule is None and not f.timed_out for f in failures.values()):
        advice = "Ask again later, or pass partial=True for the other nodes' answer"
    else:  # the nodes answered (or ran out of time): the same query will fail again
        advice = "Pass partial=True for the other nodes' answer"
    tail = " (the DP query was charged, as any failed DP run is)" if charged else ""
    return BackendUnavailable(
        UNAVAILABLE,
        f"node{plural} {', '.join(names)} gave no usable answer: {what}. {advice}{tail}",
        nodes=names,
        node_rules={n: failures[n].rule for n in names if failures[n].rule},
    )


def _collect(
    node: str,
    future: Future[T],
    timeout_s: float,
    answers: dict[str, T],
    failures: dict[str, NodeFailure],
) -> None:
    if not future.done():
        future.cancel()
        failures[node] = NodeFailure(node, f"did not answer within {timeout_s:g} s", timed_out=True)
        return
    err = future.exception()
    if err is None:
        answers[node] = future.result()
    elif isinstance(err, NodeFailure):
        failures[node] = err
    else:  # a bug on this side must still name the node, never pass silently
        failures[node] = NodeFailure(node, f"could not be asked ({type(err).__name__})")


def _document(response: httpx.Response) -> dict[str, Any] | None:
    """A workbench error answer's JSON (with a ``rule``), or None."""
    try:
        doc = response.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("rule"), str) else None


def _rule(response: httpx.Response) -> str | None:
    doc = _document(response)
    return None if doc is None else str(doc["rule"])


def _refusal(node: str, response: httpx.Response) -> NodeFailure:
    """A node's non-200 answer as a failure: its rule and, for a refusal, its sentence."""
    doc = _document(response)
    status = response.status_code
    if doc is None:
        return NodeFailure(node, f"failed (HTTP {status}, no workbench error)")
    rule = str(doc["rule"])[:80]
    message = doc.get("message")
    if status in (400, 401, 403) and isinstance(message, str):
        # The node's refusals are sentences written for a researcher (its engine's own
        # words never leave it); quoted, cut short.
        return NodeFailure(node, f"refused the query ({rule}: {message[:_QUOTE]})", rule)
    if rule == "limits.timeout":
        reason = f"stopped the query at its time limit ({rule})"
        return NodeFailure(node, reason, rule, timed_out=True)
    if status == 422:
        return NodeFailure(node, f"could not run the query ({rule})", rule)
    return NodeFailure(node, f"failed (HTTP {status}, {rule})", rule)


def _transport(err: httpx.HTTPError) -> str:
    """What went wrong on the wire, in a few words."""
    if isinstance(err, httpx.ConnectError):
        return "connection refused or no route"
    if isinstance(err, httpx.RemoteProtocolError):
        return "the connection closed before a whole answer"
    if isinstance(err, httpx.ReadError):
        return "the connection broke while reading the answer"
    return type(err).__name__


__all__ = [
    "ARROW",
    "UNAVAILABLE",
    "Answer",
    "NodeClient",
    "NodeFailure",
    "check_part",
    "small_flags",
    "unavailable",
]
