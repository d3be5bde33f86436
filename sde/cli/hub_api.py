"""What ``sde up`` asks a running hub: is it ready, and API tokens for the demo users.

The hub is reached through its public URL (the proxy), so "ready" means what a user
would see: the hub's API answers and each managed service's ``healthz`` says ok. Tokens
are made by the hub's ``sde-up`` service (``SDE_HUB_BOOTSTRAP_TOKEN``, a new one on every
start; scopes ``admin:users`` and ``tokens``), so no user's password is needed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

import httpx

from sde.errors import BackendUnavailable

#: How long a demo token lives (the demo is renewed by running ``sde up`` again).
TOKEN_LIFETIME_S = 90 * 24 * 3600
TOKEN_NOTE = "sde up: the demo user's token for the workbench's services"  # noqa: S105


def wait_until_ready(
    url: str,
    services: Sequence[str],
    hub: subprocess.Popen[bytes],
    *,
    timeout_s: float = 180,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Return once the hub's API and every service's ``healthz`` answer through ``url``.

    Raises :class:`BackendUnavailable` (``up.hub-exited`` or ``up.not-ready``) naming what
    did not come up.
    """
    waiting = ["hub/api", *(f"services/{name}/healthz" for name in services)]
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=5) as client:
        for path in waiting:
            progress(
                f"waiting for {path.split('/')[1] if path.startswith('services') else 'the hub'}"
            )
            while not _answers(client, path):
                if hub.poll() is not None:
                    raise BackendUnavailable(
                        "up.hub-exited", f"JupyterHub exited with code {hub.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        "up.not-ready", f"{url}{path} did not answer within {timeout_s:.0f} s"
                    )
                time.sleep(0.25)


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        answer = client.get(path)
    except httpx.HTTPError:
        return False
    if answer.status_code != 200:
        return False
    return not path.endswith("healthz") or answer.json() == {"status": "ok"}


class HubAdmin:
    """The hub's REST API as the ``sde-up`` service."""

    def __init__(self, url: str, token: str) -> None:
        self._client = httpx.Client(
            base_url=f"{url}hub/api/", headers={"Authorization": f"token {token}"}, timeout=30
        )
        self._url = url

    def __enter__(self) -> HubAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def ensure_users(self, names: Iterable[str]) -> None:
        """Make the hub accounts of ``names`` that are missing (409: all exist already)."""
        answer = self._client.post("users", json={"usernames": sorted(names)})
        if answer.status_code not in (201, 409):
            raise _refused("make the demo users", answer)

    def token_works(self, name: str, token: str) -> bool:
        """Whether ``token`` is a live API token of user ``name``."""
        answer = httpx.get(
            f"{self._url}hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
        )
        return answer.status_code == 200 and answer.json().get("name") == name

    def new_token(self, name: str) -> str:
        answer = self._client.post(
            f"users/{name}/tokens", json={"note": TOKEN_NOTE, "expires_in": TOKEN_LIFETIME_S}
        )
        if answer.status_code != 201:
            raise _refused(f"make {name}'s API token", answer)
        return str(answer.json()["token"])


def _refused(what: str, answer: httpx.Response) -> BackendUnavailable:
    return BackendUnavailable(
        "up.hub-refused", f"the hub refused to {what}: {answer.status_code} {answer.text[:200]}"
    )
