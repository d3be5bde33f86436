"""``sde up`` runs one node agent per demo node, and the hub's gateway queries through them.

The agents' addresses are the ``node agents:`` line ``sde up`` prints; each is a process
of its own in ``DIR/nodes`` (its log ``DIR/nodes/<node>.log``, one line per request).
"""

from __future__ import annotations

import io
import re
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from sde.cli.nodes import NodeAgent, node_secret, start_agents, stop_agents, wait_healthy
from sde.cli.up import _watch
from sde.errors import ConfigurationError
from tests.fixtures.workbench import Workbench

NODES = ["elht", "lth", "umbh"]
_AGENTS = re.compile(r"^node agents: (.*)$", re.MULTILINE)
_AGENT = re.compile(r"(\w+) (http://127\.0\.0\.1:\d+/)")


def agents(workbench: Workbench) -> dict[str, str]:
    """node -> URL, as the running ``sde up`` printed them."""
    line = _AGENTS.findall(workbench.second.text())[-1]
    return dict(_AGENT.findall(line))


def agent_processes(folder: Path) -> dict[str, int]:
    """node -> pid of every ``sde serve node`` process running in ``folder``."""
    found: dict[str, int] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(proc / "cwd").readlink() != folder:
                continue
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, UnicodeDecodeError):
            continue
        if "serve" in argv and "node" in argv and "--name" in argv:
            found[argv[argv.index("--name") + 1]] = int(proc.name)
    return found


def answered(workbench: Workbench, node: str, project: str) -> int:
    """Queries of ``project`` the node's agent has answered, from its log."""
    log = (workbench.dir / "nodes" / f"{node}.log").read_text(errors="replace")
    return len(re.findall(rf"query project={project} kind=\w+ nonce=\w+ outcome=ok", log))


def test_each_demo_node_has_its_own_agent_answering_healthz(workbench: Workbench) -> None:
    urls = agents(workbench)
    assert sorted(urls) == NODES
    for node, url in urls.items():
        assert httpx.get(f"{url}healthz", timeout=10).json() == {"status": "ok", "node": node}
    pids = agent_processes(workbench.dir / "nodes")
    assert sorted(pids) == NODES
    assert len(set(pids.values())) == 3


def test_the_agents_refuse_unsigned_requests(workbench: Workbench) -> None:
    for url in agents(workbench).values():
        answer = httpx.post(f"{url}v1/query", json={"sql": "SELECT 1"}, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["rule"] == "federation.unsigned"


def test_the_node_secret_is_private_and_made_once(workbench: Workbench) -> None:
    secret = workbench.dir / "node_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # Made by the first run (before it stopped and wrote its last line), kept by the second.
    assert secret.stat().st_mtime <= workbench.first.out.stat().st_mtime
    assert stat.S_IMODE((workbench.dir / "nodes").stat().st_mode) == 0o700


def test_a_query_through_the_hubs_gateway_reaches_every_node(workbench: Workbench) -> None:
    before = {node: answered(workbench, node, "htn-deprivation") for node in NODES}
    api = f"{workbench.service('gateway')}api/projects/htn-deprivation/"
    query = {"sql": "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"}
    answer = httpx.post(f"{api}sql", json=query, headers=workbench.headers("ben"), timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["attrs"]["sde"]["nodes"] == ["lth", "elht", "umbh"]
    after = {node: answered(workbench, node, "htn-deprivation") for node in NODES}
    assert all(after[node] > before[node] for node in NODES), (before, after)
    plans = httpx.post(f"{api}explain", json=query, headers=workbench.headers("ben"), timeout=120)
    assert plans.status_code == 200, plans.text
    assert set(NODES) <= set(plans.json()["plans"])


def test_an_agent_that_cannot_start_is_an_error_naming_its_node(tmp_path: Path) -> None:
    secret = node_secret(tmp_path)
    started = start_agents(
        {"lth": tmp_path / "missing" / "lth.duckdb"}, secret, tmp_path / "nodes", env=None
    )
    try:
        with pytest.raises(ConfigurationError) as info:
            wait_healthy(started, timeout_s=120)
    finally:
        stop_agents(started)
    assert info.value.rule == "up.node-failed"
    assert "node agent of lth exited" in info.value.message
    assert str(tmp_path / "nodes" / "lth.log") in info.value.message
    assert all(agent.proc.poll() is not None for agent in started)


def test_the_node_secret_is_made_once_and_an_open_one_is_refused(tmp_path: Path) -> None:
    first = node_secret(tmp_path).read_bytes()
    assert node_secret(tmp_path).read_bytes() == first
    (tmp_path / "node_secret").chmod(0o644)
    with pytest.raises(ConfigurationError) as info:
        node_secret(tmp_path)
    assert info.value.rule == "federation.secret"


def test_an_agent_that_stops_while_the_hub_runs_is_reported(tmp_path: Path) -> None:
    hub = subprocess.Popen(["sleep", "3"])  # stands in for the hub: a process that ends
    dead = subprocess.Popen(["sh", "-c", "exit 3"])
    out = io.StringIO()
    code = _watch(Console(file=out, width=200), hub, [NodeAgent("elht", 1, dead, tmp_path)])
    assert code == 0
    assert "the node agent of elht exited (code 3)" in out.getvalue()
    assert out.getvalue().count("elht exited") == 1  # said once, not every half second
