"""The hub's configuration as one function over JupyterHub's config object.

``jupyterhub_config.py`` calls :func:`configure`; keeping the work here makes it typed and
importable. Each part is a small function: network, state, identity, spawner, services.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_config.authenticator import (
    SDEAuthenticator,
    project_form,
    project_from_form,
    role_group,
)
from jupyter_config.server_python import server_python
from jupyter_config.spawner import NOT_ROOT_WARNING, SDESpawner
from sde.registry import registry_url_beside
from sde.settings import SERVICES, HubSettings, Settings, get_hub_settings, get_settings

#: Arguments of every notebook server: no terminals, our authorizer (no downloads).
SERVER_ARGS: tuple[str, ...] = (
    "--ServerApp.terminals_enabled=False",
    "--ServerApp.authorizer_class=jupyter_config.authorizer.SDEAuthorizer",
)
#: The service ``sde up`` uses to make the demo users' hub accounts and API tokens.
BOOTSTRAP_SERVICE = "sde-up"
BOOTSTRAP_SCOPES = ["admin:users", "tokens", "list:users"]
#: Scopes the services understand, granted through the registry's roles (below).
CUSTOM_SCOPES: dict[str, dict[str, str]] = {
    "custom:sde:airlock-review": {"description": "Review and release requests in the airlock"},
    "custom:sde:committee-vote": {"description": "Vote on applications to the committee"},
    "custom:sde:node-decide": {"description": "Agree or decline for a node as its custodian"},
    "custom:sde:admin": {"description": "Administer the workbench's people and projects"},
}
#: Registry role -> the custom scope its JupyterHub group (``role-<role>``) carries.
ROLE_SCOPES: dict[str, str] = {
    "output-checker": "custom:sde:airlock-review",
    "committee": "custom:sde:committee-vote",
    "custodian": "custom:sde:node-decide",
    "admin": "custom:sde:admin",
}
#: What the idle culler may do (its documented minimum).
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def configure(c: Any, sde: Settings | None = None, hub: HubSettings | None = None) -> None:
    """Fill JupyterHub's config ``c`` from the workbench's and the hub's settings."""
    sde = sde or get_settings()
    hub = hub or get_hub_settings()
    os.umask(0o077)  # the hub's files (database, cookie secret) are its own
    state = hub.dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o711)  # servers' OS users reach their homes below it, and nothing else
    _network(c, hub, state)
    _identity(c, sde, hub, state)
    _spawner(c, hub, state)
    _services(c, hub)


def _network(c: Any, hub: HubSettings, state: Path) -> None:
    c.JupyterHub.bind_url = hub.public_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub.hub_port_()
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port_()}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    chp = hub.chp or shutil.which("configurable-http-proxy")
    if chp:
        c.ConfigurableHTTPProxy.command = [chp]


def _identity(c: Any, sde: Settings, hub: HubSettings, state: Path) -> None:
    c.JupyterHub.authenticator_class = SDEAuthenticator
    registry = sde.registry_url or registry_url_beside(state)
    c.SDEAuthenticator.registry_url = registry
    _private_sqlite(registry)
    c.SDEAuthenticator.gateway_url = sde.gateway_url or f"{hub.public_url}services/gateway/"
    c.SDEAuthenticator.airlock_url = f"{hub.public_url}services/airlock/"
    c.SDEAuthenticator.committee_url = f"{hub.public_url}services/committee/"
    # auth_state (roles, projects) is kept encrypted, so only with JupyterHub's own key.
    c.SDEAuthenticator.enable_auth_state = bool(os.environ.get("JUPYTERHUB_CRYPT_KEY"))
    c.Authenticator.allow_all = False  # the registry is the allow list (check_allowed)


def _private_sqlite(url: str) -> None:
    """A SQLite registry readable by the hub's account only (servers run as other users)."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_uid == os.geteuid():
            file.chmod(0o600)


def _spawner(c: Any, hub: HubSettings, state: Path) -> None:
    as_users = hub.spawn_as_users if hub.spawn_as_users is not None else os.geteuid() == 0
    c.JupyterHub.spawner_class = SDESpawner
    c.SDESpawner.as_os_users = as_users
    homes = state / "homes"
    homes.mkdir(exist_ok=True)
    homes.chmod(0o711)
    c.SDESpawner.homes_dir = str(homes)
    python = Path(sys.executable)
    if as_users:
        python = hub.server_python or server_python(state / "server-python")
    c.Spawner.cmd = [str(python), "-m", "jupyterhub.singleuser"]
    args = list(SERVER_ARGS)
    if not as_users:
        print(NOT_ROOT_WARNING, file=sys.stderr, flush=True)
        if os.geteuid() == 0:
            args.append("--allow-root")
    c.Spawner.args = args
    c.Spawner.default_url = "/lab"
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        "access:services",
    ]
    c.Spawner.disable_user_config = True
    c.Spawner.start_timeout = 60
    c.Spawner.http_timeout = 60
    c.Spawner.options_form = project_form
    c.Spawner.options_from_form = project_from_form


def service_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The workbench settings (``SDE_*``) the managed services inherit from the hub.

    The hub's own section (``SDE_HUB_*``: its bootstrap token among them) stays with the
    hub; JupyterHub adds each service's ``JUPYTERHUB_*`` variables itself.

    >>> service_environment({"SDE_DATA_DIR": "/d", "SDE_HUB_PORT": "8000", "HOME": "/root"})
    {'SDE_DATA_DIR': '/d'}
    """
    environ = os.environ if environ is None else environ
    return {
        key: value
        for key, value in environ.items()
        if key.startswith("SDE_") and not key.startswith("SDE_HUB_")
    }


def _services(c: Any, hub: HubSettings) -> None:
    services: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = [{"name": "user", "scopes": ["self", "access:services"]}]
    if hub.services:
        sde_command = str(Path(sys.executable).parent / "sde")
        environment = service_environment()
        services += [
            {
                "name": name,
                "url": f"http://127.0.0.1:{hub.service_port(name)}",
                "command": [sde_command, "serve", name],
                "environment": environment,
                "oauth_no_confirm": True,
            }
            for name in SERVICES
        ]
    if hub.bootstrap_token is not None:
        # `sde up`: makes the demo users in the hub and their API tokens (not managed).
        token = hub.bootstrap_token.get_secret_value()
        services.append({"name": BOOTSTRAP_SERVICE, "api_token": token})
        roles.append(
            {"name": BOOTSTRAP_SERVICE, "scopes": BOOTSTRAP_SCOPES, "services": [BOOTSTRAP_SERVICE]}
        )
    if importlib.util.find_spec("jupyterhub_idle_culler") is not None:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={hub.cull_idle_s}",
                ],
            }
        )
        roles.append({"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]})
    c.JupyterHub.custom_scopes = CUSTOM_SCOPES
    roles += [
        {"name": f"sde-{role}", "scopes": [scope], "groups": [role_group(role)]}
        for role, scope in ROLE_SCOPES.items()
    ]
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
