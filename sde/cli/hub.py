"""``sde hub``: JupyterHub with the workbench's configuration, on one machine.

It installs configurable-http-proxy with npm into a cache folder if it is missing
(``~/.cache/sde/chp``, or ``$XDG_CACHE_HOME/sde/chp``), then runs ``jupyterhub -f
jupyter_config/jupyterhub_config.py`` as a child process with the settings in its
environment, and stops it (and so the proxy and every notebook server it started) on
Ctrl-C or SIGTERM. Nothing secret is written to stdout: the hub's log goes to stderr,
and JupyterHub keeps tokens out of it.

:func:`ensure_chp`, :func:`start_hub` and :func:`stop_hub` are for ``sde up`` and the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import IO, Annotated

import typer

import jupyter_config
from sde.errors import ConfigurationError

CHP_PACKAGE = "configurable-http-proxy@5"
CONFIG_FILE = Path(jupyter_config.__file__).parent / "jupyterhub_config.py"


def chp_cache() -> Path:
    """Where ``npm install`` puts configurable-http-proxy for the workbench."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sde" / "chp"


def find_chp(cache: Path | None = None) -> Path | None:
    """configurable-http-proxy from the cache folder, else from PATH; None if neither."""
    cached = (cache or chp_cache()) / "node_modules" / ".bin" / "configurable-http-proxy"
    if cached.exists():
        return cached
    found = shutil.which("configurable-http-proxy")
    return Path(found) if found else None


def ensure_chp(cache: Path | None = None) -> Path:
    """configurable-http-proxy, installed with npm into ``cache`` if it is missing."""
    cache = cache or chp_cache()
    found = find_chp(cache)
    if found is not None:
        return found
    npm = shutil.which("npm")
    hint = (
        f"install it once while online (npm install --prefix {cache} {CHP_PACKAGE}), "
        "or put configurable-http-proxy on PATH"
    )
    if npm is None:
        raise ConfigurationError("hub.no-proxy", f"npm is missing, so JupyterHub's proxy: {hint}")
    cache.mkdir(parents=True, exist_ok=True)
    typer.echo(f"installing {CHP_PACKAGE} into {cache} (once)", err=True)
    done = subprocess.run(  # noqa: S603 (npm from PATH, fixed arguments)
        [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", CHP_PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    found = find_chp(cache)
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigurationError(
            "hub.no-proxy",
            f"npm could not install JupyterHub's proxy (offline? npm said: {last}): {hint}",
        )
    return found


def hub_environment(
    directory: Path,
    port: int,
    registry: str | None = None,
    chp: Path | None = None,
    *,
    services: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment ``jupyterhub -f jupyter_config/jupyterhub_config.py`` reads."""
    env = dict(os.environ)
    env.update({"SDE_HUB_DIR": str(directory.resolve()), "SDE_HUB_PORT": str(port)})
    env["SDE_HUB_SERVICES"] = "true" if services else "false"
    if registry:
        env["SDE_REGISTRY_URL"] = registry
    if chp is not None:
        env["SDE_HUB_CHP"] = str(chp)
    env.update(extra or {})
    return env


def start_hub(
    directory: Path, env: dict[str, str], log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """JupyterHub as a child process in its own session (signals go through us); its
    output goes to ``log``, or to our stderr (never stdout)."""
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)],
        cwd=directory,
        env=env,
        stdout=log if log is not None else sys.stderr.fileno(),
        stderr=log,
        start_new_session=True,
    )


def stop_hub(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """Ask the hub to stop (it stops its proxy and servers), kill it if it will not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def hub(
    registry: Annotated[
        str | None, typer.Option(help="Registry URL (default: SDE_REGISTRY_URL, or DIR's).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the hub's public URL.")] = 8000,
    directory: Annotated[Path, typer.Option("--dir", help="Folder of the hub's state.")] = Path(
        "hub"
    ),
    services: Annotated[
        bool, typer.Option(help="Start the gateway, airlock and committee services.")
    ] = False,
) -> None:
    """Run JupyterHub with the workbench's authenticator and spawner until stopped."""
    env = hub_environment(directory, port, registry, ensure_chp(), services=services)
    proc = start_hub(directory, env)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    typer.echo(f"JupyterHub starting at http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    try:
        code = proc.wait()
    except (KeyboardInterrupt, _Stop):
        typer.echo("stopping JupyterHub", err=True)
        code = stop_hub(proc)
        code = 0 if code in (0, -signal.SIGTERM) else code
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_hub(proc)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``hub`` command."""
    app.command("hub")(hub)
