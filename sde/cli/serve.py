"""``sde serve <service>``: the workbench's HTTP services.

``sde serve gateway`` runs :func:`sde.gateway.create_app` under uvicorn on 127.0.0.1,
``sde serve airlock`` :func:`airlock.app.create_app` and ``sde serve committee``
:func:`access_committee.app.create_app`. As a JupyterHub managed service each listens
where ``JUPYTERHUB_SERVICE_URL`` says and answers under ``JUPYTERHUB_SERVICE_PREFIX``;
standalone, on ``--port`` (default ``SDE_GATEWAY_PORT``). ``sde serve node`` runs a
federation node agent (:mod:`sde.federation.agent`) over one node's store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from sde.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

serve_app = typer.Typer(
    name="serve", help="Run one of the workbench's HTTP services.", no_args_is_help=True
)


def listen_address(settings: Settings, port: int | None) -> tuple[str, int]:
    """Host and port: ``--port``, else the hub's ``JUPYTERHUB_SERVICE_URL``, else the setting.

    >>> listen_address(Settings(SDE_GATEWAY_BIND_URL="http://127.0.0.1:9003"), None)
    ('127.0.0.1', 9003)
    >>> listen_address(Settings(SDE_GATEWAY_BIND_URL="http://127.0.0.1:9003"), 7000)
    ('127.0.0.1', 7000)
    """
    host, default = "127.0.0.1", settings.gateway_port
    if settings.gateway_bind_url:
        bound = urlsplit(settings.gateway_bind_url)
        host = bound.hostname or host
        default = bound.port or default
    return host, port if port is not None else default


@serve_app.command("gateway")
def gateway(
    port: Annotated[
        int | None, typer.Option(help="Port (default: the hub's service URL or SDE_GATEWAY_PORT).")
    ] = None,
) -> None:
    """Run the query gateway (settings: SDE_DATA_DIR, SDE_REGISTRY_URL, SDE_GATEWAY_AUTH)."""
    from sde.gateway import create_app

    _run(create_app, port)


@serve_app.command("airlock")
def airlock(
    port: Annotated[int | None, typer.Option(help="Port (default: the hub's service URL).")] = None,
) -> None:
    """Run the airlock service (settings: SDE_REGISTRY_URL, SDE_GATEWAY_AUTH)."""
    from airlock.app import create_app

    _run(create_app, port)


@serve_app.command("committee")
def committee(
    port: Annotated[int | None, typer.Option(help="Port (default: the hub's service URL).")] = None,
) -> None:
    """Run the data access committee's service (settings: SDE_REGISTRY_URL)."""
    from access_committee.app import create_app

    _run(create_app, port)


@serve_app.command("node")
def node(
    name: Annotated[str, typer.Option(help="This node's name (as projects' scopes list it).")],
    data: Annotated[
        str,
        typer.Option(help="DuckDB node file, PostgreSQL URL, or Spark warehouse folder."),
    ],
    backend: Annotated[str, typer.Option(help="duckdb, postgresql or spark.")],
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")],
    secret_file: Annotated[
        Path, typer.Option(help="The secret shared with the coordinator (mode 0600, >= 32 bytes).")
    ],
    schema: Annotated[
        str | None,
        typer.Option(help="PostgreSQL: the schema of the node's tables (default: NAME)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run a federation node agent: one node's store, answering only signed requests
    (docs/federation.md). Prints `node NAME ready on http://HOST:PORT/` when serving."""
    import logging
    import sys

    import uvicorn

    from sde.federation.agent import create_app
    from sde.federation.node import Node, NodeStore
    from sde.federation.signing import read_secret

    secret = read_secret(secret_file)
    the_node = Node(NodeStore(name, data, backend, schema), secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for logger_name in ("sde.federation.agent", "sde.federation.node"):
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    config = uvicorn.Config(
        create_app(the_node, secret), host=host, port=port, log_level="warning", proxy_headers=False
    )
    _serve_announced(config, f"node {name} ready on http://{{host}}:{{port}}/")


def _serve_announced(config: Any, line: str) -> None:
    """Run uvicorn with ``config``; print ``line`` (with the address it bound) once serving."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                bound = self.servers[0].sockets[0].getsockname()
                print(line.format(host=bound[0], port=bound[1]), flush=True)

    Server(config).run()


def _run(create_app: Callable[[Settings], FastAPI], port: int | None) -> None:
    import uvicorn

    settings = get_settings()
    host, the_port = listen_address(settings, port)
    uvicorn.run(
        create_app(settings), host=host, port=the_port, log_level="info", proxy_headers=False
    )


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command group."""
    app.add_typer(serve_app)
