"""The caller's access to a project, checked on every request, cheaply.

:func:`sde.accounts.check_project_access` decides; it reads a handful of registry rows
through the ORM and parses the approved scope, about 2.5 ms of one core per request. The
decision is a function of those rows and of the day, so :class:`AccessChecker` reads the
same rows on every request with a few plain SELECTs (well under a millisecond), hashes
them into a stamp, and reuses the previous decision only when the stamp is unchanged:

- the project's row (status, expiry, ...), its newest approval version and its members;
- the caller's row, roles and nodes, and their membership of the project;
- today's date (a project or an accreditation that expires at midnight).

A suspension, a revocation, an expiry, a new approval version, a removed member, a lapsed
accreditation or a withdrawn role changes the stamp, so the very next request is decided
afresh by ``check_project_access``: nothing is cached for a time. Refusals are never
cached. Only the stamp's digest is kept (the rows hold password hashes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict

from sqlalchemy import Engine, text

from sde.accounts import AccountStore, ProjectAccess, check_project_access
from sde.accounts.model import now_utc

#: The rows ``check_project_access`` reads (:mod:`sde.registry.people`, ``.projects``), over
#: ``:p`` (the project) and ``:u`` (the caller). Plain SQL: a fraction of the ORM's cost.
_ROWS = tuple(
    text(sql)
    for sql in (
        "SELECT * FROM memberships WHERE project = :p AND username = :u",
        "SELECT * FROM users WHERE username = :u",
        "SELECT role FROM user_roles WHERE username = :u ORDER BY role",
        "SELECT node FROM node_custodians WHERE username = :u ORDER BY node",
        "SELECT * FROM projects WHERE slug = :p",
        "SELECT username, role FROM memberships WHERE project = :p ORDER BY username",
        "SELECT version, scope_sha256 FROM approval_versions WHERE project = :p ORDER BY version",
    )
)


def registry_stamp(engine: Engine, project: str, user: str, today: dt.date) -> str:
    """A digest of every registry row that decides ``user``'s access to ``project`` today."""
    digest = hashlib.sha256(today.isoformat().encode())
    with engine.connect() as conn:
        for query in _ROWS:
            rows = conn.execute(query, {"p": project, "u": user}).all()
            digest.update(repr([tuple(row) for row in rows]).encode())
            digest.update(b"\0")
    return digest.hexdigest()


class AccessChecker:
    """``check_project_access`` on every request, its answer reused while the rows it
    read are unchanged (:func:`registry_stamp`). Thread-safe."""

    def __init__(self, store: AccountStore, size: int = 4096) -> None:
        self.store = store
        self.size = size
        self._decided: OrderedDict[tuple[str, str], tuple[str, ProjectAccess]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, user: str, project: str, now: dt.datetime | None = None) -> ProjectAccess:
        """The caller's access to ``project`` now, or :class:`~sde.errors.AccessDenied`."""
        today = now_utc(now).date()
        key = (user, project)
        stamp = registry_stamp(self.store.engine, project, user, today)
        with self._lock:
            known = self._decided.get(key)
            if known is not None and known[0] == stamp:
                self._decided.move_to_end(key)
                return known[1]
        # Decided afresh; a refusal (AccessDenied) propagates and leaves nothing behind.
        self.forget(user, project)
        access = check_project_access(self.store, user, project, now)
        with self._lock:
            self._decided[key] = (stamp, access)
            while len(self._decided) > self.size:
                self._decided.popitem(last=False)
        return access

    def forget(self, user: str, project: str) -> None:
        with self._lock:
            self._decided.pop((user, project), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._decided)
