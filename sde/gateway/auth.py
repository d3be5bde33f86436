"""Who is calling: a small protocol and its two implementations.

An :class:`Authenticator` turns a request into a user name (or ``None``: not
authenticated, answered 401 under ``api/``). Both implementations read the token from
``Authorization: token T`` or ``Authorization: Bearer T``.

- :class:`HubAuthenticator`, the deployment's: the gateway is a JupyterHub managed service
  and :class:`jupyterhub.services.auth.HubOAuth` asks the hub whose token it is
  (``user_for_token``) and whether it may use this service (its access scopes). Browsers
  log in through the hub's OAuth (:meth:`HubAuthenticator.login_url`, then
  ``oauth_callback``), after which a signed cookie carries their token.
- :class:`TokenTable`, for scripts and tests without a hub: a fixed table of tokens
  (``SDE_GATEWAY_TOKENS``, a JSON file ``{"<token>": "<user>"}``).

Tokens are never logged; the table is held by the tokens' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request

from sde.errors import BackendUnavailable, ConfigurationError

_HEADER = re.compile(r"^\s*(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


def header_token(request: Request) -> str | None:
    """The token of an ``Authorization: token T`` / ``Bearer T`` header, if any."""
    match = _HEADER.match(request.headers.get("authorization", ""))
    return match.group(1) if match else None


class Authenticator(Protocol):
    """Names the user behind a request, or ``None``."""

    async def __call__(self, request: Request) -> str | None: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenTable:
    """A fixed table of tokens: the scripts' and tests' authenticator (no hub)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._users = {_digest(token): user for token, user in tokens.items()}

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigurationError(
                "settings.gateway-tokens", f"SDE_GATEWAY_TOKENS: cannot read {path}: {err}"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ConfigurationError(
                "settings.gateway-tokens",
                'SDE_GATEWAY_TOKENS: the file must hold {"<token>": "<user>", ...}',
            )
        return cls(data)

    async def __call__(self, request: Request) -> str | None:
        token = header_token(request)
        return self._users.get(_digest(token)) if token else None


class HubAuthenticator:
    """JupyterHub's HubOAuth, for a gateway running as the hub's managed service.

    ``hub`` defaults to a :class:`~jupyterhub.services.auth.HubOAuth` configured from the
    environment JupyterHub gives its services (``JUPYTERHUB_API_TOKEN``,
    ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_SERVICE_PREFIX``, ...).
    """

    def __init__(self, hub: Any = None) -> None:
        if hub is None:
            from jupyterhub.services.auth import HubOAuth

            hub = HubOAuth(cache_max_age=60)
        self.hub = hub
        #: Signs the browser cookie; per process (a restart means one more OAuth round).
        self._cookie_secret = secrets.token_bytes(32)

    @property
    def cookie_name(self) -> str:
        return str(self.hub.cookie_name)

    @property
    def cookie_path(self) -> str:
        return str(self.hub.cookie_path)

    async def __call__(self, request: Request) -> str | None:
        token = header_token(request) or self._cookie_token(request)
        if not token:
            return None
        try:
            model = await self.hub.user_for_token(token, sync=False)
        except Exception as err:  # tornado's HTTPError: the hub did not answer
            raise BackendUnavailable(
                "auth.hub-unavailable", "the hub could not check the token; try again"
            ) from err
        if not model or model.get("kind", "user") != "user":
            return None
        if self.hub.access_scopes and not self.hub.check_scopes(self.hub.access_scopes, model):
            return None
        return str(model["name"])

    # -- browsers: the hub's OAuth -----------------------------------------------------

    def login_url(self, next_url: str) -> tuple[str, str]:
        """Where to send a browser to log in, and the OAuth state to keep in its cookie."""
        verifier, challenge, method = self.hub.generate_pkce_code_challenge()
        state = self.hub.generate_state(next_url, code_verifier=verifier)
        from tornado.httputil import url_concat

        url = url_concat(
            self.hub.login_url,
            {"state": state, "code_challenge": challenge, "code_challenge_method": method},
        )
        return url, state

    async def finish_login(self, code: str, state: str) -> tuple[str, str]:
        """The signed cookie value for the OAuth ``code`` and the page to return to."""
        verifier = self.hub.get_code_verifier(state)
        next_url = self.hub.get_next_url(state)
        self.hub.clear_oauth_state(state)
        token = await self.hub.token_for_code(code, code_verifier=verifier, sync=False)
        return self.sign(token), next_url

    def sign(self, token: str) -> str:
        from tornado.web import create_signed_value

        return create_signed_value(self._cookie_secret, self.cookie_name, token).decode()

    def _cookie_token(self, request: Request) -> str | None:
        from tornado.web import decode_signed_value

        raw = request.cookies.get(self.cookie_name)
        if not raw:
            return None
        value = decode_signed_value(self._cookie_secret, self.cookie_name, raw, max_age_days=1)
        return value.decode("ascii", "replace") if value else None
