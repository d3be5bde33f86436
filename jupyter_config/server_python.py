"""The Python the notebook servers run with, usable by their OS users.

A server running as ``sde-ada`` must be able to execute its interpreter and read the
workbench's packages. The hub's own interpreter often cannot be used that way (pyenv under
``/root``, mode 0700). :func:`server_python` then makes a small shim environment from the
system's Python of the same version (``python3 -m venv --without-pip``) whose one ``.pth``
file adds the hub's site-packages: the same packages, an interpreter every user may run.
A deployment builds an image instead (docs/deploy.md).
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
from pathlib import Path

from sde.errors import ConfigurationError


def usable_by_others(path: Path) -> bool:
    """Whether users other than the owner may run ``path`` (every folder above searchable).

    >>> usable_by_others(Path("/bin/sh"))
    True
    """
    target = path.resolve()
    if not target.exists() or not target.stat().st_mode & stat.S_IXOTH:
        return False
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in target.parents)


def server_python(folder: Path) -> Path:
    """This interpreter if other users may run it and read its packages, else a shim in
    ``folder`` (made once) over the system's Python of the same version."""
    here = Path(sys.executable)
    packages = [Path(p) for p in site.getsitepackages()]
    if usable_by_others(here) and all(usable_by_others(p) for p in packages):
        return here
    if not all(usable_by_others(p) for p in packages):
        raise ConfigurationError(
            "hub.server-python",
            f"the workbench's packages ({packages[0]}) are private to {os.getuid()}: "
            "install the workbench where the notebook servers' users can read it",
        )
    return _shim(folder, packages)


def _shim(folder: Path, packages: list[Path]) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = folder / "bin" / "python"
    if python.exists():
        return python
    base = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if base is None or not usable_by_others(Path(base)):
        raise ConfigurationError(
            "hub.server-python",
            f"{sys.executable} cannot be run by the notebook servers' users and there is "
            f"no system {version} to make them an environment from: install {version} "
            "or set SDE_HUB_SERVER_PYTHON",
        )
    subprocess.run(  # noqa: S603 (a system interpreter, fixed arguments)
        [base, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True
    )
    lines = "".join(f"import site; site.addsitedir({str(p)!r})\n" for p in packages)
    (folder / "lib" / version / "site-packages" / "sde_workbench.pth").write_text(lines)
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
    return python
