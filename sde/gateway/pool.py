"""The gateway's open connections: one per project, approval version and user.

A connection is the embedded :class:`~sde.connection.Connection` over the node files, or,
when the gateway coordinates node agents (``SDE_NODES``), a
:class:`~sde.federation.coordinator.FederatedConnection` over them; both have the same
surface (:data:`ProjectConnection`).

Every connection of a project and version leases the same extract from the process's
:mod:`sde.proxy.barrier.cache` (built once, shared by that project's users); the
connection itself is per user so that the audit log and the DP ledger name the caller.
A newer approval version closes the older version's connections; at most ``size``
connections stay open (least recently used closed first).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from sde.accounts import ProjectAccess
from sde.connection import Connection

if TYPE_CHECKING:
    from sde.federation.coordinator import FederatedConnection

#: A project's connection: embedded, or federated over node agents.
ProjectConnection: TypeAlias = "Connection | FederatedConnection"
#: (project, approval version, user)
PoolKey = tuple[str, int, str]
Opener = Callable[[ProjectAccess, str], ProjectConnection]


class ConnectionPool:
    """Thread-safe; ``open`` builds a connection (``sde.connect`` in the gateway)."""

    def __init__(self, open: Opener, size: int = 256) -> None:
        self._open = open
        self.size = size
        self._conns: OrderedDict[PoolKey, ProjectConnection] = OrderedDict()
        self._locks: dict[PoolKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._conns)

    def get(self, access: ProjectAccess, user: str) -> ProjectConnection:
        """The caller's connection for ``access`` (opened on first use)."""
        key = (access.project.slug, access.version, user)
        with self._lock:
            conn = self._conns.get(key)
            if conn is not None:
                self._conns.move_to_end(key)
                return conn
            build_lock = self._locks.setdefault(key, threading.Lock())
        with build_lock:  # one build per key; other keys go on meanwhile
            with self._lock:
                conn = self._conns.get(key)
            if conn is None:
                conn = self._open(access, user)
                self._add(key, conn)
            return conn

    def get_open(self, project: str, version: int, user: str) -> ProjectConnection | None:
        """The open connection for that key, if any (nothing is opened)."""
        with self._lock:
            return self._conns.get((project, version, user))

    def _add(self, key: PoolKey, conn: ProjectConnection) -> None:
        stale: list[ProjectConnection] = []
        with self._lock:
            self._conns[key] = conn
            self._locks.pop(key, None)
            for other in list(self._conns):
                if other[0] == key[0] and other[1] < key[1]:
                    stale.append(self._conns.pop(other))
            while len(self._conns) > self.size:
                stale.append(self._conns.popitem(last=False)[1])
        for old in stale:
            old.close()

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            conn.close()


_DP_LOCKS: weakref.WeakKeyDictionary[ProjectConnection, threading.Lock] = (
    weakref.WeakKeyDictionary()
)
_DP_LOCKS_LOCK = threading.Lock()


def dp_lock(conn: ProjectConnection) -> threading.Lock:
    """One caller's DP calls run one at a time on their connection (its DP engine keeps
    per-connection state; the ledger itself is safe across connections and processes)."""
    with _DP_LOCKS_LOCK:
        lock = _DP_LOCKS.get(conn)
        if lock is None:
            lock = _DP_LOCKS[conn] = threading.Lock()
        return lock
