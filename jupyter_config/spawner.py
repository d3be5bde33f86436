"""Notebook servers as local processes, each as its own OS user when the hub runs as root.

:class:`SDESpawner` is JupyterHub's ``LocalProcessSpawner`` with one change of identity:
the hub user ``ada`` runs as the OS user ``sde-ada`` (the prefix keeps registry names clear
of system accounts such as ``admin`` or ``daemon``). On the first spawn the account is made
with ``useradd --system`` (no password, no login shell), and its home folder
``<hub dir>/homes/sde-ada`` (mode 0700) is its notebook folder. The hub's own files (its
database, cookie secret, the registry) stay owned by the hub's account with mode 0600, so
the servers cannot read them.

When the hub does not run as root it cannot switch users: every server then runs as the
hub's own account and can read whatever the hub can, the registry and the data included.
That is for a developer's machine only, and the hub says so loudly at start. A deployment
uses DockerSpawner or KubeSpawner (docs/deploy.md).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Unicode

OS_USER_PREFIX = "sde-"
NOT_ROOT_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! The hub is not running as root: every notebook server runs as the hub's own OS\n"
    "!! user and can read everything the hub can, the registry and the data included.\n"
    "!! Use this for development only; see docs/deploy.md for a deployment.\n" + "!" * 78
)


def os_user(hub_user: str) -> str:
    """The OS account a hub user's servers run as.

    >>> os_user("ada")
    'sde-ada'
    """
    return f"{OS_USER_PREFIX}{hub_user}"


def ensure_os_user(name: str, home: Path) -> pwd.struct_passwd:
    """The system account ``name`` with home ``home`` (mode 0700, its own); made if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(  # noqa: S603 (fixed arguments, a validated name)
            [
                _tool("useradd"),
                "--system",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    if Path(entry.pw_dir) != home:
        subprocess.run(  # noqa: S603
            [_tool("usermod"), "--home", str(home), name], check=True, capture_output=True
        )
        entry = pwd.getpwnam(name)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o700)
    return entry


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is missing: cannot make the notebook servers' OS users")
    return found


class SDESpawner(LocalProcessSpawner):
    """LocalProcessSpawner, each hub user as the OS user ``sde-<name>`` when root."""

    homes_dir = Unicode("", help="Folder of the OS users' home folders.").tag(config=True)
    as_os_users = Bool(
        True, help="Run servers as their own OS users (needs root; see module docstring)."
    ).tag(config=True)

    def _home(self) -> Path:
        return Path(self.homes_dir).resolve() / os_user(self.user.name)

    def make_preexec_fn(self, name: str) -> Callable[[], None] | None:
        if not self.as_os_users:
            return None
        preexec: Callable[[], None] = super().make_preexec_fn(os_user(name))
        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        if not self.as_os_users:
            return env
        env["USER"] = os_user(self.user.name)
        env["HOME"] = str(self._home())
        env["SHELL"] = "/bin/sh"
        return env

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        home = env.get("HOME") or str(Path.home())
        # The lab's page config (downloads off, locked) from a folder the user cannot
        # change; their own settings and workspaces stay in their home folder.
        env["JUPYTER_CONFIG_DIR"] = str(Path(__file__).parent / "server")
        # The hub's environment's Jupyter folders (server extensions such as JupyterLab,
        # lab assets, kernels), also when the server runs a shim interpreter.
        env["JUPYTER_CONFIG_PATH"] = str(Path(sys.prefix) / "etc" / "jupyter")
        env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
        env["JUPYTERLAB_SETTINGS_DIR"] = f"{home}/.jupyter/lab/user-settings"
        env["JUPYTERLAB_WORKSPACES_DIR"] = f"{home}/.jupyter/lab/workspaces"
        return env

    async def start(self) -> Any:
        if self.as_os_users:
            ensure_os_user(os_user(self.user.name), self._home())
            self.notebook_dir = str(self._home())
        return await super().start()
