"""Every setting of the workbench, declared once: typed, with help text, read from the environment.

Settings come from ``SDE_*`` environment variables (``SDE_ROW_CAP=5000``), or from keyword
arguments in code and tests; nothing reads ``os.environ`` for a setting anywhere else.
:func:`get_settings` is the factory: it builds the object when asked (never at import time),
so a test or a service can set the environment first.

A bad value is one :class:`~sde.errors.ConfigurationError` naming the variable:

>>> import os
>>> os.environ["SDE_ROW_CAP"] = "many"
>>> try:
...     get_settings()
... except ConfigurationError as err:
...     print(err.rule, "|", err.message)  # doctest: +ELLIPSIS
settings.invalid | SDE_ROW_CAP: Input should be a valid integer, ...
>>> del os.environ["SDE_ROW_CAP"]
>>> get_settings().row_cap
1000000

``docs/settings.md`` lists every setting; a test fails when one is missing there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sde.errors import ConfigurationError

ENV_PREFIX = "SDE_"

#: The secret a demo runs with. Anything that is not a demo must set its own.
DEMO_SECRET = "sde-demo-secret-not-for-production"  # noqa: S105 (refused outside the demo)


class Settings(BaseSettings):
    """The workbench's settings. Field descriptions are the help text shown in the docs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True
    )

    demo: bool = Field(
        False,
        description="Run as the demo (`sde up`): allows the built-in secret and demo users.",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEMO_SECRET),
        description="Secret for signing cookies and service requests. Must be set, and "
        "at least 32 characters, outside the demo.",
    )
    registry_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry (people, projects, keys, budgets, audit "
        "log). Default: a SQLite file beside the data.",
    )
    pg_url: str | None = Field(
        None,
        description="PostgreSQL URL that `sde load --backend postgresql` loads into when "
        "--url is not given.",
    )
    pg_bindir: Path | None = Field(
        None,
        description="Folder holding PostgreSQL's initdb, pg_ctl and postgres, for the "
        "throwaway servers of the tests. Default: the newest /usr/lib/postgresql/*/bin.",
    )
    row_cap: int = Field(
        1_000_000, gt=0, description="Rows one query returns at most; a cut is reported."
    )
    timeout_s: float = Field(
        60.0, gt=0, description="Seconds a statement may run before the engine stops it."
    )
    extract_cache_dir: Path | None = Field(
        None,
        description="Folder for the cached project extracts of DuckDB nodes. Default: a "
        "folder beside the data.",
    )
    extract_cache_size: int = Field(
        16,
        gt=0,
        description="Project extracts one process keeps for sharing between connections "
        "(least recently used first out; one still in use stays open until its last "
        "connection closes).",
    )
    gateway_url: str | None = Field(
        None,
        description="URL of the query gateway; set in every notebook server so that "
        "`sde.connect()` needs no arguments.",
    )
    project: str | None = Field(
        None, description="The project a notebook server works for (set at spawn)."
    )
    data_dir: str | None = Field(
        None,
        description="The node data the gateway serves: a node file or a folder of node files "
        "(DuckDB), or a postgresql:// URL of one node.",
    )
    gateway_port: int = Field(
        8003,
        gt=0,
        lt=65536,
        description="Port `sde serve gateway` listens on (on 127.0.0.1) when neither --port nor "
        "JupyterHub's JUPYTERHUB_SERVICE_URL says otherwise.",
    )
    gateway_prefix: str = Field(
        "/",
        validation_alias=AliasChoices("JUPYTERHUB_SERVICE_PREFIX", "SDE_GATEWAY_PREFIX"),
        description="URL path the gateway answers under (JupyterHub sets "
        "JUPYTERHUB_SERVICE_PREFIX, e.g. /services/gateway/, for its managed services).",
    )
    gateway_bind_url: str | None = Field(
        None,
        validation_alias=AliasChoices("JUPYTERHUB_SERVICE_URL", "SDE_GATEWAY_BIND_URL"),
        description="Where `sde serve gateway` listens (JupyterHub sets JUPYTERHUB_SERVICE_URL "
        "for its managed services); --port and SDE_GATEWAY_PORT otherwise.",
    )
    gateway_auth: Literal["hub", "tokens"] = Field(
        "hub",
        description="How the gateway identifies callers: `hub` (JupyterHub's HubOAuth: API "
        "tokens and the OAuth cookie; it runs as a hub service) or `tokens` (a table of "
        "tokens in SDE_GATEWAY_TOKENS, for scripts and tests without a hub).",
    )
    gateway_tokens: Path | None = Field(
        None,
        description='JSON file `{"<token>": "<username>"}` of the `tokens` '
        "authenticator (mode 0600: it holds secrets).",
    )
    gateway_connections: int = Field(
        256,
        gt=0,
        description="Open project connections the gateway keeps (one per project, approval "
        "version and user, all sharing the project's extract); least recently used closed first.",
    )
    nodes: dict[str, str] | None = Field(
        None,
        description='Node agents the gateway coordinates, as JSON `{"<node>": "<URL>"}` '
        "(`sde serve node`; `sde up` sets it). When set, the gateway answers every query "
        "through the nodes (federation) and SDE_DATA_DIR is not read; unset: the gateway "
        "attaches the node files of SDE_DATA_DIR itself.",
    )
    node_secret_file: Path | None = Field(
        None,
        description="File holding the secret shared with the node agents (mode 0600), which "
        "signs every request and answer between the gateway and the nodes. Needed with "
        "SDE_NODES.",
    )
    airlock_dir: Path | None = Field(
        None,
        description="Folder of the airlock's file store (files by SHA-256; mode 0700). "
        "Default: `airlock/` beside the data (SDE_DATA_DIR).",
    )
    airlock_max_file_mb: float = Field(
        50, gt=0, description="Largest file the airlock accepts, in megabytes."
    )
    airlock_file_types: tuple[str, ...] = Field(
        ("csv", "parquet", "xlsx", "png", "svg", "pdf", "txt", "md", "json", "html"),
        description="File types (name endings) the airlock accepts; JSON list in the environment.",
    )
    committee_quorum: int = Field(
        3, ge=1, description="Votes the data access committee needs before it decides."
    )
    hub_api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("JUPYTERHUB_API_TOKEN", "SDE_HUB_API_TOKEN"),
        description="The notebook's JupyterHub API token (JupyterHub sets "
        "JUPYTERHUB_API_TOKEN); the gateway client sends it.",
    )

    def secret(self) -> str:
        """The secret key, refused if it is the demo's default outside the demo."""
        value = self.secret_key.get_secret_value()
        if not self.demo and (value == DEMO_SECRET or len(value) < 32):
            raise ConfigurationError(
                "settings.default-secret",
                f"{ENV_PREFIX}SECRET_KEY must be set to a secret of at least 32 characters "
                "(the built-in one is for the demo only)",
            )
        return value


def env_name(field: str, model: type[BaseSettings] | None = None) -> str:
    """The environment variable that sets ``field`` of ``model`` (default :class:`Settings`)."""
    model = model or Settings
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    prefix = str(model.model_config.get("env_prefix") or ENV_PREFIX)
    return f"{prefix}{field.upper()}"


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with ``overrides`` on top; errors name the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        where = env_name(field) if field in Settings.model_fields else field
        raise ConfigurationError("settings.invalid", f"{where}: {first['msg']}") from None


# -- the hub's section (``SDE_HUB_*``): what only JupyterHub's deployment needs -------

HUB_PREFIX = "SDE_HUB_"
#: Managed services the hub declares when ``SDE_HUB_SERVICES`` is on (``sde serve <name>``).
SERVICES: tuple[str, ...] = ("gateway", "airlock", "committee")


class HubSettings(BaseSettings):
    """The hub's section: where JupyterHub keeps its state and which ports it uses.

    ``sde hub`` sets them from its options; a deployment may set them in the environment.
    The registry URL and the secret key are the workbench's (:class:`Settings`).
    """

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
    bootstrap_token: SecretStr | None = Field(
        None,
        description="API token of the hub's `sde-up` service, which may make users and "
        "their API tokens (`sde up` sets a new one on every start). Unset: no such service.",
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
