"""Node agents as real processes, for tests: ``start_agent(...)`` runs ``sde serve node``.

Each agent is a child process of the test (``python -m sde.cli serve node ... --port 0``)
listening on a free loopback port; :func:`start_agent` returns once it has printed its
ready line and answered ``GET /healthz``. Its stdout and stderr go to files (the agent
logs every request on stderr: :meth:`RunningAgent.log`). Stop it with
:meth:`RunningAgent.stop` (SIGTERM, then SIGKILL) or :meth:`RunningAgent.kill` (a node
dying mid-query); both wait for the process, so no zombie is left.

>>> agent = start_agent("lth", synth_dir / "lth.duckdb", "duckdb", secret_file)  # doctest: +SKIP
>>> agent.url  # doctest: +SKIP
'http://127.0.0.1:40123'
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: Seconds an agent may take to be ready (a Spark node starts a JVM first).
READY_S = 240.0
_READY = re.compile(r"^node (\S+) ready on (http://[^/\s]+)/$", re.MULTILINE)


@dataclass
class RunningAgent:
    """One ``sde serve node`` process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    folder: Path
    _closed: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What the agent wrote on stderr so far (its request log and errors)."""
        return (self.folder / "stderr").read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the agent to stop (SIGTERM); kill it if it has not stopped in ``timeout_s``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.wait()

    def kill(self) -> None:
        """Kill the agent at once (SIGKILL), as a node that dies mid-query."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self) -> RunningAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_agent(
    name: str,
    data: str | Path,
    backend: str,
    secret_file: str | Path,
    *,
    schema: str | None = None,
    env: dict[str, str] | None = None,
    ready_s: float = READY_S,
) -> RunningAgent:
    """Start ``sde serve node`` for one node and wait until it answers ``/healthz``.

    ``data``: the DuckDB node file, PostgreSQL URL or Spark warehouse folder; ``env``:
    variables added to this process's environment. Raises ``RuntimeError`` with the
    agent's stderr if it exits or is not ready within ``ready_s`` seconds.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"sde-agent-{name}-"))
    command = [
        sys.executable, "-m", "sde.cli", "serve", "node",
        "--name", name, "--data", str(data), "--backend", backend,
        "--port", "0", "--secret-file", str(secret_file),
    ]  # fmt: skip
    if schema is not None:
        command += ["--schema", schema]
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", **(env or {})}
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT, env=environment
        )
    agent = RunningAgent(name, "", process, folder)
    try:
        agent.url = _wait_ready(agent, ready_s)
    except BaseException:
        agent.kill()
        raise
    return agent


def _wait_ready(agent: RunningAgent, ready_s: float) -> str:
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if agent.process.poll() is not None:
            code = agent.process.returncode
            raise RuntimeError(f"node agent {agent.name} exited ({code}): {agent.log()[-2000:]}")
        found = _READY.search((agent.folder / "stdout").read_text(errors="replace"))
        if found and found.group(1) == agent.name and _healthy(found.group(2), agent.name):
            return found.group(2)
        time.sleep(0.1)
    raise RuntimeError(f"node agent {agent.name} not ready in {ready_s:g} s: {agent.log()[-2000:]}")


def _healthy(url: str, name: str) -> bool:
    try:
        answer = httpx.get(f"{url}/healthz", timeout=5.0)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json() == {"status": "ok", "node": name}


__all__ = ["READY_S", "RunningAgent", "start_agent"]
