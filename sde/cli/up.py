"""``sde up``: the whole workbench on one machine (what ``./workbench up`` runs; API.md).

In order, each step reusing what an earlier run made:

1. the demo population (three nodes, DuckDB) in ``DIR/data``, synthesised if missing;
2. the registry (SQLite ``DIR/registry.sqlite``, or ``--registry``), migrated, holding the
   demo people and projects of :mod:`sde.demo`; the workbench secret in ``DIR/secret_key``;
3. configurable-http-proxy from npm (into a cache folder) if missing;
4. a node agent per node, then JupyterHub on ``127.0.0.1:PORT`` with the gateway (the
   agents' coordinator), airlock and committee as managed services; its log in
   ``DIR/hub.log``, the agents' in ``DIR/nodes/<node>.log``;
5. once everything answers: an API token per demo user, ``DIR/credentials.json`` (0600),
   the users' table with their TOTP secrets as QR codes, and the line
   ``SDE Workbench ready at http://127.0.0.1:PORT/``.

Before the hub, one node agent per node starts as its own process (:mod:`sde.cli.nodes`:
``sde serve node`` on a free loopback port, signing with ``DIR/node_secret``, made once,
mode 0600); the gateway is their coordinator (``SDE_NODES``, ``SDE_NODE_SECRET_FILE`` in
its environment), so every query goes through the nodes. ``sde up`` is ready once the
hub, its services and every agent's ``/healthz`` answer; an agent that fails to start is
an error naming its node.

Ctrl-C or SIGTERM stops the hub, which stops its proxy, services and notebook servers,
then the node agents: everything ``sde up`` started and nothing else.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from jupyter_config.spawner import NOT_ROOT_WARNING
from sde.accounts import AccountStore
from sde.cli.credentials import credentials, read_known, show_users, write_private_json
from sde.cli.hub import ensure_chp, hub_environment, start_hub, stop_hub
from sde.cli.hub_api import HubAdmin, wait_until_ready
from sde.cli.nodes import (
    NodeAgent,
    node_secret,
    nodes_setting,
    start_agents,
    stop_agents,
    wait_healthy,
)
from sde.cli.reaper import become_subreaper, stop_orphans
from sde.cli.tour import synthesise_once
from sde.demo import DemoUser, load_demo
from sde.errors import ConfigurationError
from sde.settings import SERVICES

#: How long the hub may take to stop its services and servers before it is killed (what
#: it leaves is stopped after it either way).
STOP_TIMEOUT_S = 90
#: Ports from PORT that the hub, its proxy's API and the services use.
PORTS_USED = 3 + len(SERVICES)


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def up(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of the demo's data, registry and hub state.")
    ] = Path("demo"),
    port: Annotated[int, typer.Option(min=1, max=65530, help="Port of the hub's URL.")] = 8000,
    persons: Annotated[int, typer.Option(min=100, help="Persons in the demo population.")] = 20000,
    registry: Annotated[
        str | None, typer.Option(help="Registry URL (default: SQLite in DIR).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the demo population.")] = 1,
    qr: Annotated[bool, typer.Option(help="Print the TOTP secrets as QR codes too.")] = True,
) -> None:
    """Start the whole workbench (JupyterHub, gateway, airlock, committee) with demo users."""
    console = Console()
    if not console.is_terminal:  # a log file: never cut a password to fit 80 columns
        console = Console(width=160)
    _check_ports_free(port)
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o711)  # notebook servers' OS users reach their homes, nothing else
    data = directory / "data"
    manifest = synthesise_once(console, data, persons, seed)
    data.chmod(0o700)
    nodes = [str(node["name"]) for node in manifest["nodes"]]  # type: ignore[attr-defined]
    url = registry or f"sqlite:///{directory / 'registry.sqlite'}"
    secret = _secret(directory)
    store = AccountStore.open(url, secret)
    creds = directory / "credentials.json"
    users = load_demo(store, nodes, read_known(creds))
    console.print(f"registry: {_shown(url)} ({len(users)} demo users)")
    bootstrap = secrets.token_hex(32)
    env = hub_environment(
        directory / "hub",
        port,
        url,
        ensure_chp(),
        services=True,
        extra={
            "SDE_DATA_DIR": str(data),
            "SDE_AIRLOCK_DIR": str(directory / "airlock"),
            "SDE_SECRET_KEY": secret,
            "SDE_GATEWAY_AUTH": "hub",
            "SDE_HUB_BOOTSTRAP_TOKEN": bootstrap,
        },
    )
    if os.geteuid() != 0:
        console.print(f"[red]{NOT_ROOT_WARNING}[/]", highlight=False)
    raise typer.Exit(_run(console, directory, env, bootstrap, users, nodes, port, qr))


def _run(
    console: Console,
    directory: Path,
    env: dict[str, str],
    bootstrap: str,
    users: list[DemoUser],
    nodes: list[str],
    port: int,
    qr: bool,
) -> int:
    """Start the node agents and the hub, finish the set-up once all answer, and wait for
    the end."""
    hub_url = f"http://127.0.0.1:{port}/"
    log_path = directory / "hub.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C stops the workbench even when this was started with SIGINT ignored (as a
    # shell does for a job it puts in the background).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    become_subreaper()
    agents: list[NodeAgent] = []
    proc: subprocess.Popen[bytes] | None = None
    with os.fdopen(fd, "ab") as log:
        try:
            agents = _start_agents(directory, nodes, port)
            env = {**env, **_federation_env(directory, agents)}
            proc = start_hub(directory / "hub", env, log)
            with console.status("starting JupyterHub, the services and the node agents") as s:
                wait_healthy(agents, progress=s.update)
                wait_until_ready(hub_url, SERVICES, proc, progress=s.update)
            _issue_tokens(hub_url, bootstrap, users)
            _announce(console, directory, hub_url, users, agents, qr)
            code = _watch(console, proc, agents)
            console.print(f"[red]JupyterHub exited (code {code}); its log: {log_path}[/]")
            return 1
        except (KeyboardInterrupt, _Stop):
            console.print("stopping the workbench ...")
            code = stop_hub(proc, timeout=STOP_TIMEOUT_S) if proc is not None else 0
            if code == -signal.SIGKILL:
                console.print(f"JupyterHub did not stop within {STOP_TIMEOUT_S} s; it was killed")
            return 0 if code in (0, -signal.SIGTERM, -signal.SIGKILL) else code
        except BaseException:
            console.print(
                f"[red]the workbench did not start; the hub's log: {log_path}, the node "
                f"agents' logs: {directory / 'nodes'}[/]"
            )
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
            if proc is not None:
                stop_hub(proc, timeout=STOP_TIMEOUT_S)
            stop_agents(agents)
            left = stop_orphans()
            if left:
                console.print(f"stopped {len(left)} process(es) the hub left behind")


def _announce(
    console: Console,
    directory: Path,
    url: str,
    users: list[DemoUser],
    agents: list[NodeAgent],
    qr: bool,
) -> None:
    """Write the credentials, show the users and say that the workbench is ready."""
    nodes = [agent.name for agent in agents]
    write_private_json(directory / "credentials.json", credentials(url, nodes, users))
    show_users(console, users, qr=qr)
    shown = ", ".join(f"{agent.name} {agent.url}" for agent in agents)
    console.print(f"node agents: {shown}", highlight=False, soft_wrap=True)
    console.print(
        f"hub log: {directory / 'hub.log'}   node agents' logs: {directory / 'nodes'}   "
        f"credentials: {directory / 'credentials.json'}"
    )
    print(f"SDE Workbench ready at {url}  (Ctrl-C stops it)", flush=True)


def _start_agents(directory: Path, nodes: list[str], port: int) -> list[NodeAgent]:
    """A node agent per node, on free ports other than the hub's; none of the workbench's
    settings (they hold its secret) reach them."""
    files = {name: directory / "data" / f"{name}.duckdb" for name in nodes}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDE_")}
    hub_ports = range(port, port + PORTS_USED)
    return start_agents(
        files, node_secret(directory), directory / "nodes", avoid=hub_ports, env=env
    )


def _federation_env(directory: Path, agents: list[NodeAgent]) -> dict[str, str]:
    """What makes the gateway the agents' coordinator."""
    return {
        "SDE_NODES": nodes_setting(agents),
        "SDE_NODE_SECRET_FILE": str(directory / "node_secret"),
    }


def _watch(console: Console, proc: subprocess.Popen[bytes], agents: list[NodeAgent]) -> int:
    """Wait for the hub to exit (its code); say so once if a node agent stops meanwhile."""
    told: set[str] = set()
    while proc.poll() is None:
        for agent in agents:
            if agent.name not in told and agent.proc.poll() is not None:
                told.add(agent.name)
                console.print(
                    f"[red]the node agent of {agent.name} exited (code {agent.proc.returncode});"
                    f" queries fail until the workbench restarts; its log: {agent.log}[/]"
                )
        time.sleep(0.5)
    return proc.returncode


def _issue_tokens(url: str, bootstrap: str, users: list[DemoUser]) -> None:
    """Give every user a live hub API token (keeping the ones that still work)."""
    with HubAdmin(url, bootstrap) as hub:
        hub.ensure_users(user.name for user in users)
        for user in users:
            if user.token is None or not hub.token_works(user.name, user.token):
                user.token = hub.new_token(user.name)


def _secret(directory: Path) -> str:
    """The workbench secret: ``SDE_SECRET_KEY`` if set, else ``DIR/secret_key`` (made once)."""
    given = os.environ.get("SDE_SECRET_KEY")
    if given:
        return given
    path = directory / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _check_ports_free(port: int) -> None:
    for candidate in range(port, port + PORTS_USED):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                raise ConfigurationError(
                    "up.port-busy",
                    f"port {candidate} is in use; the workbench needs ports {port}-"
                    f"{port + PORTS_USED - 1} (choose others with --port)",
                ) from None


def _shown(url: str) -> str:
    """A registry URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
