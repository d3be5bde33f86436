"""The hub's own settings (``SDE_HUB_*``), beside the workbench's :mod:`sde.settings`.

``sde hub`` sets them from its options; a deployment may set them in the environment.
The registry URL and the secret key are the workbench's (``SDE_REGISTRY_URL``,
``SDE_SECRET_KEY``); only what is particular to the hub lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sde.errors import ConfigurationError

HUB_PREFIX = "SDE_HUB_"
#: Managed services the hub declares when ``SDE_HUB_SERVICES`` is on (``sde serve <name>``).
SERVICES: tuple[str, ...] = ("gateway", "airlock", "committee")


class HubSettings(BaseSettings):
    """Where the hub keeps its state and which ports it uses."""

    model_config = SettingsConfigDict(env_prefix=HUB_PREFIX, extra="ignore", frozen=True)

    dir: Path = Field(
        Path("hub"),
        description="Folder of the hub's state (its database, cookie secret, the users' "
        "home folders); the registry's SQLite file too unless SDE_REGISTRY_URL is set.",
    )
    ip: str = Field("127.0.0.1", description="Address the public proxy listens on.")
    port: int = Field(8000, gt=0, lt=65536, description="Port of the public proxy.")
    hub_port: int | None = Field(
        None, description="Port of the hub process itself. Default: port + 1."
    )
    proxy_api_port: int | None = Field(
        None, description="Port of the proxy's REST API. Default: port + 2."
    )
    services: bool = Field(
        False,
        description="Declare the managed services gateway, airlock and committee "
        "(`sde serve <name>`), on ports port + 3, port + 4 and port + 5.",
    )
    chp: str | None = Field(
        None,
        description="Path of configurable-http-proxy (`sde hub` installs it with npm). "
        "Default: the one on PATH.",
    )
    cull_idle_s: int = Field(
        3600, gt=0, description="Idle notebook servers are stopped after this many seconds."
    )
    server_python: Path | None = Field(
        None,
        description="Python interpreter of the notebook servers, runnable by their OS users. "
        "Default: the hub's own if it is, else a shim environment over the system's Python "
        "(jupyter_config/server_python.py).",
    )
    spawn_as_users: bool | None = Field(
        None,
        description="Run each notebook server as its own OS user (`sde-<name>`, made with "
        "useradd --system). Default: when the hub runs as root.",
    )

    def hub_port_(self) -> int:
        return self.hub_port if self.hub_port is not None else self.port + 1

    def proxy_api_port_(self) -> int:
        return self.proxy_api_port if self.proxy_api_port is not None else self.port + 2

    def service_port(self, name: str) -> int:
        return self.port + 3 + SERVICES.index(name)

    @property
    def public_url(self) -> str:
        return f"http://{self.ip}:{self.port}/"


def get_hub_settings(**overrides: Any) -> HubSettings:
    """The hub's settings from the environment, ``overrides`` on top; an error names the
    variable."""
    try:
        return HubSettings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise ConfigurationError(
            "settings.invalid", f"{HUB_PREFIX}{field}: {first['msg']}"
        ) from None
