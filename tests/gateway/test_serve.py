"""``sde serve gateway`` through the entry point: settings from the environment, the
token table for a gateway without a hub, a client query, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from sde.client import GatewayConnection
from tests.gateway.conftest import World


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_gateway_answers_and_stops(world: World, tmp_path_factory: object) -> None:
    root = world.settings.extract_cache_dir
    assert root is not None
    tokens = root.parent / "tokens.json"
    tokens.write_text(json.dumps({"serve-token": "ada"}))
    tokens.chmod(0o600)
    port = _free_port()
    env = {
        **os.environ,
        "SDE_DATA_DIR": str(world.data),
        "SDE_REGISTRY_URL": world.registry,
        "SDE_EXTRACT_CACHE_DIR": str(root),
        "SDE_GATEWAY_AUTH": "tokens",
        "SDE_GATEWAY_TOKENS": str(tokens),
    }
    command = [sys.executable, "-m", "sde.cli", "serve", "gateway", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                if httpx.get(f"{url}healthz", timeout=1).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)
        with GatewayConnection(url, "serve-token", "htn") as conn:
            assert conn.sql("SELECT COUNT(*) AS n FROM person")["n"][0] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the signal it caught (a SIGTERM exit status)
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "serve-token" not in output
