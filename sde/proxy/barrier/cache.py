"""Built project extracts, shared by every connection of one process that needs the same one.

An extract is expensive (seconds at 100k persons) and its content is fully determined by
its source (the node files and their fingerprints, a database and schema, a warehouse and
node), the scope's version, the project key and the engine's build version:
:class:`ExtractKey` is exactly that. :class:`ExtractCache` keeps one built extract per key
and hands out :class:`Lease`\\ s (reference counts): a connection's ``close()`` releases
its lease, the last release closes the extract, and :meth:`ExtractCache.evict` /
:meth:`~ExtractCache.clear` close extracts at once (queries running on them finish first;
later ones are refused with ``extract.closed``).

- Concurrent first users build once: the first builds, the others wait for it (a build
  holds no lock but its own key's).
- A failed build is not cached: it raises for the builder and every waiter, and the next
  lease builds again.
- A new scope version is a new key, never served by an extract of the old version.
- The cache holds at most ``max_entries`` extracts for sharing (least recently leased
  first out); one pushed out stays open for the connections that lease it and is closed
  by their last release.
- A lease that is garbage-collected unreleased (a connection nobody closed) is released
  by the next call to the cache.

Every engine's extract takes concurrent queries (DuckDB: a cursor per query;
PostgreSQL: a small pool of connections as the project role; Spark: one query at a time
on the session).

>>> cache = ExtractCache(max_entries=2)
>>> key = ExtractKey(("duckdb", "example"), "demo", "v1", "f1")
>>> len(cache), cache.builds
(0, 0)
"""

from __future__ import annotations

import copy
import hashlib
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sde.errors import AccessDenied, SDEError
from sde.proxy.barrier import Extract
from sde.scope import Scope


def key_fingerprint(key: bytes) -> str:
    """A one-way name for a project key (never the key itself)."""
    return hashlib.sha256(b"fingerprint" + key).hexdigest()


@dataclass(frozen=True)
class ExtractKey:
    """Everything that determines an extract's content."""

    #: Engine, its build version and the source's identity (paths and fingerprints, ...).
    source: tuple[str, ...]
    project: str
    scope_version: str
    #: :func:`key_fingerprint` of the project key.
    key_fingerprint: str

    @classmethod
    def of(cls, source: tuple[str, ...], scope: Scope, key: bytes) -> ExtractKey:
        return cls(source, scope.project, scope.version, key_fingerprint(key))


@dataclass(eq=False)
class _Entry:
    """One extract of the cache, from the start of its build to its close."""

    key: ExtractKey
    ready: threading.Event = field(default_factory=threading.Event)
    extract: Extract | None = None
    error: BaseException | None = None
    #: Leases (and waiters for the build) holding it.
    refs: int = 0
    #: Queries running on it now.
    active: int = 0
    #: No new query may start; the extract closes when ``active`` reaches 0.
    closing: bool = False
    closed: bool = False

    @property
    def built(self) -> Extract:
        if self.extract is None:  # a lease exists only for a built entry
            raise SDEError("extract.not-built", "the project's extract is not built")
        return self.extract


class ExtractCache:
    """A thread-safe cache of built extracts with reference-counted leases."""

    def __init__(self, max_entries: int = 16) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        #: Extracts built (successfully) and failed builds since the cache was made.
        self.builds = 0
        self.failures = 0
        self._entries: OrderedDict[ExtractKey, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        #: Entries of leases collected unreleased (appended by their finalizers).
        self._orphans: deque[_Entry] = deque()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def shared_keys(self) -> list[ExtractKey]:
        """The keys shared now (built or building), least recently leased first."""
        self._reap()
        with self._lock:
            return list(self._entries)

    def lease(
        self, key: ExtractKey, build: Callable[[], Extract], *, refresh: bool = False
    ) -> Lease:
        """A lease on the extract for ``key``, built with ``build()`` unless shared already.

        ``refresh`` builds a new one even so (the old one stays open for its leases).
        Raises what the build raised (to every caller waiting for that build).
        """
        self._reap()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and refresh and entry.ready.is_set():
                del self._entries[key]
                entry = None
            builder = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry(key)
            self._entries.move_to_end(key)
            entry.refs += 1
        if builder:
            self._build(entry, build)
        entry.ready.wait()
        with self._lock:
            error = entry.error
            if error is None:
                return Lease(self, entry)
            entry.refs -= 1
        if not builder:  # a copy: one exception object is not raised in several threads
            error = _copied(error)
        raise error

    def evict(self, key: ExtractKey) -> bool:
        """Stop sharing ``key``'s extract and close it (after queries running on it);
        False if none is shared. An extract still building is only unshared."""
        self._reap()
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return False
            close = self._closing(entry) if entry.ready.is_set() else False
        if close:
            entry.built.close()
        return True

    def evict_project(self, project: str) -> int:
        """Evict every extract of ``project`` (its scope changed, or its access ended)."""
        return sum(self.evict(k) for k in self.shared_keys() if k.project == project)

    def clear(self) -> None:
        """Evict every extract."""
        for key in self.shared_keys():
            self.evict(key)

    # -- for leases ------------------------------------------------------------

    def _build(self, entry: _Entry, build: Callable[[], Extract]) -> None:
        try:
            extract = build()
        except BaseException as err:
            with self._lock:
                entry.error = err
                self.failures += 1
                if self._entries.get(entry.key) is entry:
                    del self._entries[entry.key]
            entry.ready.set()
            return
        with self._lock:
            entry.extract = extract
            self.builds += 1
            self._bound(keep=entry)
        entry.ready.set()

    def _bound(self, keep: _Entry) -> None:
        """Unshare the least recently leased built extracts beyond ``max_entries`` (under
        the lock; each still has leases, whose last release closes it)."""
        for key, entry in list(self._entries.items()):
            if len(self._entries) <= self.max_entries:
                return
            if entry is not keep and entry.ready.is_set():
                del self._entries[key]

    def _closing(self, entry: _Entry) -> bool:
        """Mark ``entry`` closing (under the lock); True if the caller must close it now."""
        entry.closing = True
        if entry.active or entry.closed:
            return False
        entry.closed = True
        return True

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.refs -= 1
            if entry.refs > 0:
                return
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
            close = self._closing(entry)
        if close:
            entry.built.close()

    def _run(self, entry: _Entry, sql: str, timeout_s: float, max_rows: int) -> pd.DataFrame:
        with self._lock:
            if entry.closing:
                raise AccessDenied(
                    "extract.closed",
                    "the project's extract was closed (the project changed, or an "
                    "administrator closed it); connect again",
                )
            entry.active += 1
        try:
            return entry.built.run(sql, timeout_s=timeout_s, max_rows=max_rows)
        finally:
            with self._lock:
                entry.active -= 1
                close = entry.closing and not entry.active and not entry.closed
                if close:
                    entry.closed = True
            if close:
                entry.built.close()

    def _reap(self) -> None:
        """Release the leases that were garbage-collected unreleased."""
        while True:
            try:
                entry = self._orphans.popleft()
            except IndexError:
                return
            self._release(entry)


class Lease:
    """A connection's hold on a shared extract: an :class:`~sde.proxy.barrier.Extract`
    whose ``close()`` releases it (the last release closes the extract)."""

    def __init__(self, cache: ExtractCache, entry: _Entry) -> None:
        self._cache = cache
        self._entry = entry
        self.dialect: str = entry.built.dialect
        self.nodes: tuple[str, ...] = entry.built.nodes
        # Not a reference to the lease: the finalizer only queues the entry's release.
        self._finalizer = weakref.finalize(self, cache._orphans.append, entry)

    @property
    def extract(self) -> Extract:
        """The shared extract itself."""
        return self._entry.built

    @property
    def released(self) -> bool:
        return not self._finalizer.alive

    def run(self, sql: str, *, timeout_s: float, max_rows: int) -> pd.DataFrame:
        if self.released:
            raise AccessDenied("connection.closed", "this connection is closed")
        return self._cache._run(self._entry, sql, timeout_s, max_rows)

    def close(self) -> None:
        """Release the extract (once; later calls do nothing)."""
        if self._finalizer.detach() is not None:
            self._cache._release(self._entry)

    def __getattr__(self, name: str) -> Any:
        # The engine's own attributes (``backend``, ``role``, ...), for tests and tools.
        if name.startswith("__") or name in {"_entry", "_cache", "_finalizer"}:
            raise AttributeError(name)
        return getattr(self._entry.built, name)

    def __repr__(self) -> str:
        return f"<Lease {self._entry.key.project} nodes={self.nodes} released={self.released}>"


def _copied(error: BaseException) -> BaseException:
    """``error`` again, for another thread: same type and attributes, no traceback."""
    try:
        return copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error


_SHARED: ExtractCache | None = None
_SHARED_LOCK = threading.Lock()


def shared_extracts() -> ExtractCache:
    """The process's cache (``sde.connect()`` uses it unless ``shared=False``), sized by
    the ``extract_cache_size`` setting when first asked for."""
    global _SHARED  # noqa: PLW0603 - one cache per process, made on first use
    with _SHARED_LOCK:
        if _SHARED is None:
            from sde.settings import get_settings

            _SHARED = ExtractCache(get_settings().extract_cache_size)
        return _SHARED


__all__ = ["ExtractCache", "ExtractKey", "Lease", "key_fingerprint", "shared_extracts"]
