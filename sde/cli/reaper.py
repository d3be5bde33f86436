"""Stop every process a command started, even those its children left behind (Linux).

JupyterHub starts its proxy, its services and the notebook servers each in a session of
their own, so when the hub crashes they live on. :func:`become_subreaper` makes this
process the "child subreaper" of everything it starts (``prctl(PR_SET_CHILD_SUBREAPER)``):
a descendant whose parent dies is re-parented to us instead of to init. After the hub has
stopped, :func:`stop_orphans` ends what is left: those processes, and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants; False where the kernel cannot (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(parent: int | None = None) -> list[int]:
    """Live processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and state != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def stop_orphans(timeout_s: float = 10) -> list[int]:
    """SIGTERM this process's remaining children, SIGKILL those still alive after
    ``timeout_s``, and reap them all; the pids that were stopped."""
    stopped = children()
    for pid in stopped:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while children() and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    for pid in children():
        _signal(pid, signal.SIGKILL)
    time.sleep(0.1)
    _reap()
    return stopped


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
