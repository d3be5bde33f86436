"""The gateway's client: ``sde.connect()`` in a notebook, ``sde.connect(gateway=...)`` anywhere.

:class:`GatewayConnection` has the embedded connection's methods (``sql``, ``explain``,
``sql_dp``, ``budget``) and raises the same :mod:`sde.errors` classes: the gateway answers
``{"error", "rule", "message"}`` and the client raises the class named there. Results
travel as Arrow IPC streams (the attrs in the schema metadata key ``sde``). A call that
takes longer than :data:`PROGRESS_AFTER_S` shows a line on stderr that counts the seconds.

>>> import sde  # doctest: +SKIP
>>> conn = sde.connect()  # SDE_GATEWAY_URL, SDE_PROJECT and JUPYTERHUB_API_TOKEN  # doctest: +SKIP
>>> conn.sql("SELECT COUNT(*) AS n FROM person")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pandas as pd
import pyarrow as pa

from sde import errors
from sde.errors import (
    BackendUnavailable,
    ConfigurationError,
    ResultTruncated,
    SDEError,
)
from sde.settings import get_settings

if TYPE_CHECKING:
    from sde.dp.ledger import BudgetStatus

ARROW = "application/vnd.apache.arrow.stream"
METADATA_KEY = b"sde"
#: Seconds after which a running call shows progress.
PROGRESS_AFTER_S = 2.0


class GatewayConnection:
    """A project's connection through the gateway. Build with :func:`connect_gateway`."""

    def __init__(
        self,
        gateway: str,
        token: str,
        project: str,
        *,
        timeout_s: float = 600.0,
        progress: IO[str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.gateway = gateway if gateway.endswith("/") else gateway + "/"
        self._project = project
        self._progress = progress
        self._http = httpx.Client(
            base_url=self.gateway,
            headers={"Authorization": f"token {token}", "User-Agent": "sde-client"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
        )
        self._closed = False

    @property
    def project(self) -> str:
        return self._project

    def sql(self, sql: str, dialect: str | None = None, *, partial: bool = False) -> pd.DataFrame:
        """As :meth:`sde.connection.Connection.sql`, run by the gateway.

        When the gateway coordinates node agents, a node that fails makes the query fail
        (``federation.node-unavailable``, naming it) unless ``partial=True``: then the other
        nodes' answer, with ``df.attrs["sde"]["missing_nodes"]`` naming the missing.
        """
        body = {"sql": sql, "dialect": dialect, "partial": True if partial else None}
        frame = self._frame("sql", body)
        info = frame.attrs.get("sde", {})
        if info.get("truncated"):
            warnings.warn(ResultTruncated(info.get("message", "")), stacklevel=2)
        return frame

    def explain(self, sql: str, dialect: str | None = None) -> dict[str, str]:
        """As :meth:`sde.connection.Connection.explain`."""
        answer = self._call("POST", "explain", {"sql": sql, "dialect": dialect})
        plans: dict[str, str] = answer.json()["plans"]
        return plans

    def sql_dp(
        self,
        sql: str,
        epsilon: float | None = None,
        delta: float | None = None,
        accuracy: float | Mapping[str, float] | None = None,
        alpha: float = 0.05,
        **options: Any,
    ) -> pd.DataFrame:
        """As :meth:`sde.connection.Connection.sql_dp` (``confirm`` must be a bool here;
        ``partial=True`` as for :meth:`sql`).

        As embedded, a cost computed from ``accuracy=`` is asked about in a notebook (and
        refused elsewhere) unless ``confirm=True``: the gateway quotes it, the researcher
        answers here, and only a yes is sent again with ``confirm=True``.
        """
        body = {"sql": sql, "epsilon": epsilon, "delta": delta, "alpha": alpha, **options}
        body["accuracy"] = dict(accuracy) if isinstance(accuracy, Mapping) else accuracy
        try:
            return self._frame("sql_dp", body)
        except SDEError as err:
            from sde.dp.engine import in_notebook  # the DP engine loads OpenDP: only now

            if err.rule != "dp.not-confirmed" or "confirm" in options or not in_notebook():
                raise
            quote = err.message.split(" Not confirmed")[0]
            if input(f"{quote} Spend it? [y/N] ").strip().lower() not in ("y", "yes"):
                raise
        return self._frame("sql_dp", {**body, "confirm": True})

    def budget(self) -> BudgetStatus:
        """As :meth:`sde.connection.Connection.budget`."""
        from sde.dp.ledger import BudgetStatus, Release

        data = self._call("GET", "budget").json()
        releases = tuple(
            Release(**{**r, "created_at": dt.datetime.fromisoformat(r["created_at"])})
            for r in data["releases"]
        )
        return BudgetStatus(
            data["project"],
            data["epsilon_total"],
            data["delta_total"],
            data["epsilon_spent"],
            data["delta_spent"],
            releases,
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._http.close()

    def __enter__(self) -> GatewayConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sde.GatewayConnection project={self.project} gateway={self.gateway}>"

    # -- internals ----------------------------------------------------------------------

    def _frame(self, action: str, body: dict[str, Any]) -> pd.DataFrame:
        answer = self._call("POST", action, body, accept=ARROW)
        return frame_from_arrow(answer.content)

    def _call(
        self, method: str, action: str, body: dict[str, Any] | None = None, accept: str = ""
    ) -> httpx.Response:
        if self._closed:
            raise errors.AccessDenied("connection.closed", "this connection is closed")
        path = f"api/projects/{quote(self.project, safe='')}/{action}"
        payload = None if body is None else {k: v for k, v in body.items() if v is not None}
        headers = {"Accept": accept} if accept else {}
        try:
            with _progress(self._progress):
                answer = self._http.request(method, path, json=payload, headers=headers)
        except httpx.HTTPError as err:
            raise BackendUnavailable(
                "gateway.unreachable", f"the gateway at {self.gateway} did not answer ({err})"
            ) from None
        if answer.status_code >= 400:
            raise error_from(answer)
        return answer


def error_from(answer: httpx.Response) -> SDEError:
    """The :mod:`sde.errors` exception a gateway's error answer stands for."""
    try:
        data = answer.json()
        name, rule, message = data["error"], data["rule"], data["message"]
    except (ValueError, KeyError, TypeError):
        return BackendUnavailable(
            "gateway.unavailable", f"the gateway answered {answer.status_code} without a reason"
        )
    cls = getattr(errors, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, SDEError)):
        cls = SDEError
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    return cls(str(rule), str(message), **details)


def frame_from_arrow(payload: bytes) -> pd.DataFrame:
    """The DataFrame of an Arrow IPC stream, its attrs from the schema metadata ``sde``."""
    table = pa.ipc.open_stream(payload).read_all()
    meta = table.schema.metadata or {}
    frame = table.to_pandas()
    frame.attrs = json.loads(meta.get(METADATA_KEY, b"{}"))
    return frame


class _Ticker:
    """Shows the progress of every slow call of the process from one thread.

    A thread per call would cost each call a start and a join, two hand-offs of the GIL
    that wait behind every busy thread when many calls run at once (the gateway
    benchmark's 20 researchers). The ticker thread starts with the first call and wakes
    only when a running call's next line is due (at the latest every half second while
    calls run; never while none do).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cond = threading.Condition()
        self._calls: dict[int, _Running] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, stream: IO[str], after_s: float) -> Iterator[None]:
        call = _Running(stream, time.monotonic(), after_s)
        with self._cond:
            self._calls[id(call)] = call
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sde-progress", daemon=True)
                self._thread.start()
            elif len(self._calls) == 1:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                del self._calls[id(call)]
                shown = call.shown
            if shown:
                elapsed = time.monotonic() - call.start
                stream.write(f"\rsde: done in {elapsed:.1f} s{' ' * 30}\n")
                stream.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._calls:
                    self._cond.wait()
                now = time.monotonic()
                for call in self._calls.values():  # under the lock: never after "done"
                    if call.next_at() <= now:
                        call.show(now)
                wake = min(call.next_at() for call in self._calls.values())
                self._cond.wait(min(max(wake - now, 0.01), 0.5))


class _Running:
    """One call the ticker watches."""

    def __init__(self, stream: IO[str], start: float, after_s: float) -> None:
        self.stream = stream
        self.start = start
        self.after_s = after_s
        self.shown = False
        self._last = -1

    def next_at(self) -> float:
        """When its next line is due."""
        return self.start + max(self.after_s, self._last + 1)

    def show(self, now: float) -> None:
        self._last = int(now - self.start)
        self.shown = True
        self.stream.write(f"\rsde: the query is running on the gateway ({self._last} s)")
        self.stream.flush()


_TICKER = _Ticker()
os.register_at_fork(after_in_child=_TICKER.reset)  # a forked child has no ticker thread


def _progress(stream: IO[str] | None, after_s: float = PROGRESS_AFTER_S) -> ContextManager[None]:
    """After ``after_s`` seconds, a stderr line counting the seconds until the call ends."""
    return _TICKER.watch(stream if stream is not None else sys.stderr, after_s)


def connect_gateway(
    gateway: str | None = None, token: str | None = None, project: str | None = None
) -> GatewayConnection:
    """A gateway connection; what is not given comes from the settings (``SDE_GATEWAY_URL``,
    ``JUPYTERHUB_API_TOKEN``, ``SDE_PROJECT``). A missing one is a
    :class:`~sde.errors.ConfigurationError` naming its variable."""
    settings = get_settings()
    secret = settings.hub_api_token.get_secret_value() if settings.hub_api_token else None
    found = {
        "SDE_GATEWAY_URL": gateway or settings.gateway_url,
        "JUPYTERHUB_API_TOKEN": token or secret,
        "SDE_PROJECT": project or settings.project,
    }
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise ConfigurationError(
            "connect.gateway",
            f"no data and no gateway: set {', '.join(missing)} (a notebook server has them), "
            "pass gateway=, token= and project=, or pass a node file or folder",
        )
    url, tok, proj = (str(v) for v in found.values())
    return GatewayConnection(url, tok, proj, timeout_s=settings.timeout_s + 60)
