"""The registry behind the account services: transactions that carry their audit entries.

:class:`AccountStore` is the one object the services take. A change runs in
:meth:`AccountStore.write`: it takes the audit chain's lock first (every registry writer
queues there, so two changes to one user never interleave), and the change and its audit
entries commit together or not at all. Reads use :meth:`AccountStore.read`. The helpers
below turn rows into the snapshots of :mod:`sde.accounts.model`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session

from sde.accounts.crypto import Passwords, TotpCipher
from sde.accounts.model import Member, ProjectInfo, UserInfo, utc
from sde.audit import AuditLog, AuditRecord
from sde.errors import InvalidInput, SDEError
from sde.registry import open_registry
from sde.registry.audit_log import AuditEntry
from sde.registry.committee import CONTROL_CHARACTERS, column_length
from sde.registry.people import NodeCustodian, User, UserRole
from sde.registry.projects import ApprovalVersion, Membership, Project
from sde.settings import get_settings


@dataclass
class Tx:
    """One write transaction: an ORM session and the audit log, on one connection."""

    session: Session
    conn: Connection
    log: AuditLog

    def audit(
        self,
        actor: str,
        event: str,
        obj: str,
        *,
        project: str = "",
        details: Mapping[str, Any] | None = None,
        outcome: str = "ok",
        rule: str | None = None,
    ) -> None:
        """Write an audit entry that commits (or not) with this transaction's change."""
        self.session.flush()
        record = AuditRecord.event(
            actor, event, obj, project=project, details=details, outcome=outcome, rule=rule
        )
        self.log.append(record, conn=self.conn)


class AccountStore:
    """People and projects in one registry database (SQLite or PostgreSQL).

    ``secret`` is the workbench secret the TOTP key is derived from; by default it is
    read from the settings when first needed, so commands that touch no TOTP secret run
    without it. ``passwords`` hashes passwords (default: argon2id, default parameters).
    """

    def __init__(
        self,
        engine: Engine,
        secret: str | Callable[[], str] | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        self.engine = engine
        self.passwords = passwords or Passwords()
        self._secret = secret
        self._cipher: TotpCipher | None = None

    @classmethod
    def open(cls, url: str, secret: str | Callable[[], str] | None = None) -> AccountStore:
        """The store of the registry at ``url``, its schema brought to the newest revision."""
        return cls(open_registry(url), secret)

    @property
    def cipher(self) -> TotpCipher:
        if self._cipher is None:
            secret = self._secret if self._secret is not None else get_settings().secret
            self._cipher = TotpCipher(secret() if callable(secret) else secret)
        return self._cipher

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A transaction holding the registry's write lock; committed if no error."""
        with self.engine.connect() as conn:
            AuditLog.lock(conn)
            session = Session(bind=conn, expire_on_commit=False)
            try:
                yield Tx(session, conn, AuditLog(self.engine))
                session.flush()
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def refusals_audited(self, actor: str, event: str, obj: str) -> Iterator[None]:
        """Write a refusal (an :class:`SDEError`) raised inside to the audit log with its
        rule, in a transaction of its own (the refused change rolled back), then raise it."""
        try:
            yield
        except SDEError as err:
            with self.write() as tx:
                tx.audit(
                    actor,
                    fit_audit_text(event, AuditEntry.action),
                    fit_audit_text(obj, AuditEntry.object),
                    outcome="refused",
                    rule=fit_audit_text(err.rule, AuditEntry.rule),
                )
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    def __repr__(self) -> str:
        return f"AccountStore({self.engine.url.render_as_string(hide_password=True)!r})"


def fit_audit_text(text: str, column: Any) -> str:
    """``text`` as the audit ``column`` can hold it: control characters as ``?``, clipped to
    the column's length with ``…``. What a refusal names often comes from a request (a
    slug or user name in a page's path), and a refusal is never lost to its own entry.

    >>> fit_audit_text("project:" + "a" * 300 + "\\x00", AuditEntry.object)[-3:]
    'aa…'
    """
    length = column_length(column)
    text = CONTROL_CHARACTERS.sub("?", text)
    return text if len(text) <= length else text[: length - 1] + "…"


# -- rows ---------------------------------------------------------------------------------


def find_user(session: Session, username: str) -> User | None:
    return session.get(User, username)


def require_user(session: Session, username: str) -> User:
    user = session.get(User, username)
    if user is None:
        raise InvalidInput("user.unknown", f"there is no user {username!r}", user=username)
    return user


def require_project(session: Session, slug: str) -> Project:
    project = session.get(Project, slug)
    if project is None:
        raise InvalidInput("project.unknown", f"there is no project {slug!r}", project=slug)
    return project


def user_info(session: Session, row: User) -> UserInfo:
    roles = session.scalars(select(UserRole.role).where(UserRole.username == row.username))
    nodes = session.scalars(
        select(NodeCustodian.node).where(NodeCustodian.username == row.username)
    )
    return UserInfo(
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        organisation=row.organisation,
        roles=frozenset(roles),
        nodes=frozenset(nodes),
        accredited_until=row.accredited_until,
        accreditation_ref=row.accreditation_ref,
        daa_signed_at=_aware(row.daa_signed_at),
        daa_version=row.daa_version,
        has_password=row.password_hash is not None,
        has_totp=row.totp_secret is not None,
        failed_logins=row.failed_logins,
        locked_until=_aware(row.locked_until),
        last_login_at=_aware(row.last_login_at),
        created_at=utc(row.created_at),
    )


def latest_version(session: Session, slug: str) -> ApprovalVersion | None:
    newest = (
        select(func.max(ApprovalVersion.version))
        .where(ApprovalVersion.project == slug)
        .scalar_subquery()
    )
    return session.scalar(
        select(ApprovalVersion).where(
            ApprovalVersion.project == slug, ApprovalVersion.version == newest
        )
    )


def project_info(session: Session, row: Project) -> ProjectInfo:
    members = session.execute(
        select(Membership.username, Membership.role)
        .where(Membership.project == row.slug)
        .order_by(Membership.username)
    ).all()
    version = latest_version(session, row.slug)
    access = json.loads(version.scope)["access"] if version is not None else None
    return ProjectInfo(
        slug=row.slug,
        title=row.title,
        status=row.status,
        status_reason=row.status_reason,
        expires=row.expires,
        version=version.version if version is not None else 0,
        members=tuple(Member(name, role) for name, role in members),
        access=access,
    )


def _aware(value: Any) -> Any:
    return utc(value) if value is not None else None
