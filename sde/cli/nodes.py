"""The demo's node agents for ``sde up``: one ``sde serve node`` process per node.

Each agent holds one node's DuckDB file and answers only requests signed with the node
secret, a file made once in the demo folder (``DIR/node_secret``, mode 0600) and reused.
They listen on free loopback ports, run in ``DIR/nodes`` (their logs are
``DIR/nodes/<node>.log``, mode 0600) and each in a session of its own, so a Ctrl-C reaches
``sde up``, which stops them (:func:`stop_agents`) with everything else.

:func:`start_agents` starts them all at once, before the hub, so they start while the hub
does; :func:`wait_healthy` then waits for each one's ``GET /healthz`` and names the node
whose agent exits or does not answer in time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from sde.errors import ConfigurationError
from sde.federation.signing import create_secret, read_secret

#: Seconds the agents have to answer ``/healthz`` after they were started.
START_TIMEOUT_S = 120.0
#: Seconds an agent has to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0


@dataclass
class NodeAgent:
    """One running agent: its node, port, process and log."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def node_secret(directory: Path) -> Path:
    """``DIR/node_secret``: made once (mode 0600), then reused; checked either way."""
    path = directory / "node_secret"
    if not path.exists():
        create_secret(path)
    read_secret(path)  # refuses a file others may read, or too short a secret
    return path


def free_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` distinct free loopback ports, none in ``avoid`` (the hub's own)."""
    taken = set(avoid)
    found: list[int] = []
    sockets: list[socket.socket] = []
    try:
        while len(found) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)  # held open until all are chosen: no port twice
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                found.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return found


@dataclass(frozen=True)
class NodeSpec:
    """What one agent serves: a DuckDB node file, a PostgreSQL URL (its tables in
    ``schema``, default the node's name) or a Spark warehouse folder."""

    data: str | Path
    backend: str = "duckdb"
    schema: str | None = None


def agent_command(name: str, spec: NodeSpec, port: int, secret_file: Path) -> list[str]:
    """The command line of one node's agent (API.md, "Node agents")."""
    command = [
        *(sys.executable, "-m", "sde.cli", "serve", "node"),
        *("--name", name, "--data", str(spec.data), "--backend", spec.backend),
        *("--port", str(port), "--secret-file", str(secret_file)),
    ]
    if spec.schema is not None:
        command += ["--schema", spec.schema]
    return command


def start_agents(
    nodes: Mapping[str, Path | NodeSpec],
    secret_file: Path,
    directory: Path,
    *,
    avoid: Iterable[int] = (),
    env: Mapping[str, str] | None = None,
) -> list[NodeAgent]:
    """Start an agent per node (``name -> node file`` or :class:`NodeSpec`); they run in
    ``directory``, where their logs are."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ports = free_ports(len(nodes), avoid)
    environment = dict(env if env is not None else os.environ)
    agents: list[NodeAgent] = []
    try:
        for (name, given), port in zip(nodes.items(), ports, strict=True):
            spec = given if isinstance(given, NodeSpec) else NodeSpec(given)
            log = directory / f"{name}.log"
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as sink:
                proc = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                    agent_command(name, spec, port, secret_file),
                    cwd=directory,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            agents.append(NodeAgent(name, port, proc, log))
    except BaseException:
        stop_agents(agents)
        raise
    return agents


def nodes_setting(agents: Iterable[NodeAgent]) -> str:
    """``SDE_NODES`` for the gateway: JSON ``{"<node>": "<URL>"}``."""
    return json.dumps({agent.name: agent.url for agent in agents})


def wait_healthy(
    agents: list[NodeAgent],
    timeout_s: float = START_TIMEOUT_S,
    *,
    progress: Callable[[str], object] | None = None,
) -> None:
    """Return once every agent answers ``GET /healthz``; a ConfigurationError naming the
    node if its agent exits first or does not answer within ``timeout_s``."""
    waiting = {agent.name: agent for agent in agents}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while waiting:
            for name, agent in list(waiting.items()):
                if agent.proc.poll() is not None:
                    raise ConfigurationError(
                        "up.node-failed",
                        f"the node agent of {name} exited (code {agent.proc.returncode}) "
                        f"before it answered; its log: {agent.log}",
                    )
                if _healthy(http, agent):
                    del waiting[name]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(sorted(waiting))
                raise ConfigurationError(
                    "up.node-timeout",
                    f"the node agent(s) of {names} did not answer /healthz within "
                    f"{timeout_s:g} s; their logs are in {agents[0].log.parent}",
                )
            if progress is not None:
                progress(f"starting the node agents ({', '.join(sorted(waiting))})")
            time.sleep(0.2)


def _healthy(http: httpx.Client, agent: NodeAgent) -> bool:
    try:
        return http.get(f"{agent.url}healthz").status_code == 200
    except httpx.HTTPError:
        return False


def stop_agents(agents: Iterable[NodeAgent], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every agent, then SIGKILL those still running after ``timeout_s``; reaped."""
    running = [agent for agent in agents if agent.proc.poll() is None]
    for agent in running:
        agent.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for agent in running:
        try:
            agent.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()


__all__ = [
    "NodeAgent",
    "NodeSpec",
    "agent_command",
    "free_ports",
    "node_secret",
    "nodes_setting",
    "start_agents",
    "stop_agents",
    "wait_healthy",
]
