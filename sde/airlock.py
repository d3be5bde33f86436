"""Ask for results to leave the environment, from a notebook: ``sde.airlock.submit``.

>>> import sde
>>> request = sde.airlock.submit(                                   # doctest: +SKIP
...     ["outputs/htn_by_decile.csv", "outputs/htn_by_decile.png"],
...     context="Persons with hypertension by IMD decile, 2015-2024",
...     controls="Counts below 10 suppressed; rounded to the nearest 5",
...     group="prevalence")
>>> request.state, request.checks                                   # doctest: +SKIP
('submitted', {'htn_by_decile.csv': 'pass', 'htn_by_decile.png': 'none'})

It adds the files to the caller's open request for the notebook's project (a draft, or one
returned to them; a new draft if there is none), sets the group's context and controls and
submits it: the airlock checks every table and two output checkers review it. A refusal
raises the :mod:`sde.errors` class the airlock names (a table with person identifiers is a
``DisclosureRisk``), and nothing is submitted. In a notebook the airlock's URL, the project
and the token come from ``SDE_AIRLOCK_URL``, ``SDE_PROJECT`` and ``JUPYTERHUB_API_TOKEN``;
elsewhere pass ``url=``, ``project=`` and ``token=``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sde.errors import BackendUnavailable, ConfigurationError, InvalidInput

_EDITABLE = ("draft", "returned")


@dataclass(frozen=True)
class Request:
    """A release request as the airlock returned it (``data`` is API.md's request JSON)."""

    id: int
    state: str
    url: str
    data: Mapping[str, Any] = field(repr=False)

    @property
    def checks(self) -> dict[str, str]:
        """Each file's automatic check status (``pass``, ``fail``, ``review``, ``none``)."""
        return {f["name"]: f["checks"]["status"] for g in self.data["groups"] for f in g["files"]}

    def _repr_markdown_(self) -> str:
        lines = [f"**Release request {self.id}**: {self.state} ([open it]({self.url}))", ""]
        lines += [f"- `{name}`: checks {status}" for name, status in self.checks.items()]
        return "\n".join(lines)


def submit(
    files: Iterable[str | Path],
    *,
    context: str,
    controls: str,
    group: str = "main",
    supporting: Iterable[str | Path] = (),
    project: str | None = None,
    url: str | None = None,
    token: str | None = None,
) -> Request:
    """Add ``files`` (and ``supporting`` files for the checkers only) to ``group`` of the
    caller's open request, describe the group and submit the request."""
    outputs = [Path(f) for f in files]
    extras = [Path(f) for f in supporting]
    if not outputs:
        raise InvalidInput("airlock.no-output", "name at least one output file to submit")
    for path in outputs + extras:
        if not path.is_file():
            raise InvalidInput("airlock.no-such-file", f"{path} is not a file")
    with _Client(url, token) as client:
        slug = project or _env("SDE_PROJECT", "project")
        request = client.open_request(slug)
        base = f"api/requests/{request['id']}/groups/{group}"
        for path, kind in [(p, "output") for p in outputs] + [(p, "supporting") for p in extras]:
            client.call("PUT", f"{base}/files/{path.name}?kind={kind}", content=path.read_bytes())
        client.call("PATCH", base, json={"context": context, "controls": controls})
        done = client.call("POST", f"api/requests/{request['id']}/submit").json()
        return Request(int(done["id"]), str(done["state"]), client.page(done["id"]), done)


class _Client:
    def __init__(self, url: str | None, token: str | None) -> None:
        self.url = (url or _airlock_url()).rstrip("/") + "/"
        secret = token or _env("JUPYTERHUB_API_TOKEN", "token")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {secret}"}, timeout=120
        )

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def page(self, request_id: int) -> str:
        return f"{self.url}requests/{request_id}"

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        from sde.client import error_from

        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise BackendUnavailable(
                "airlock.unreachable", f"the airlock at {self.url} did not answer ({err})"
            ) from None
        if answer.status_code >= 400:
            raise error_from(answer)
        return answer

    def open_request(self, project: str) -> dict[str, Any]:
        """The caller's draft or returned request for ``project``; a new draft if none."""
        me = self.call("GET", "api/me").json()["user"]
        for summary in self.call("GET", "api/requests").json():
            mine = summary["author"] == me and summary["project"] == project
            if mine and summary["state"] in _EDITABLE:
                return dict(summary)
        return dict(self.call("POST", "api/requests", json={"project": project}).json())


def _airlock_url() -> str:
    url = os.environ.get("SDE_AIRLOCK_URL")
    if url:
        return url
    gateway = os.environ.get("SDE_GATEWAY_URL", "")
    if "/services/gateway" in gateway:
        return gateway.replace("/services/gateway", "/services/airlock", 1)
    raise ConfigurationError(
        "airlock.no-url", "no airlock URL: set SDE_AIRLOCK_URL or pass url= to sde.airlock.submit"
    )


def _env(name: str, argument: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"airlock.no-{argument}", f"no {argument}: set {name} or pass {argument}= to submit"
        )
    return value
