"""Release requests: every action of the airlock, each one transaction with its audit entry.

:class:`Airlock` is what the API, the pages and ``sde.airlock`` call. Every method takes the
acting user first and works the same way: in one registry transaction (which holds the
registry's write lock, so two actions on one request never interleave) it loads the
request, works out the caller's :class:`~airlock.workflow.Relation` to it, asks
:func:`~airlock.workflow.check_can` and the rules that need more than the state (votes,
reviews, files), changes what the action changes and writes the action's audit event. A
refusal changes nothing and is audited on its own with its rule. A request the caller may
not see looks exactly like a missing one (rule ``airlock.unknown``).

File bytes go to the content-addressed store before the transaction that names them; the
automatic checks run before the submission's transaction: a crash at any point leaves the
whole change or none of it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from airlock import views
from airlock.checks import CheckResult, check_file
from airlock.files import FileStore, check_group_name, check_name, check_size
from airlock.rules import VOTES, relation_of, visible
from airlock.workflow import (
    CREATE_EVENT,
    EVENTS,
    LIST_EVENT,
    OPEN,
    Action,
    Relation,
    State,
    check_can,
    targets,
)
from sde.accounts import AccountStore
from sde.accounts.access import check_may_use_data, check_project_usable
from sde.accounts.model import SLUG, utc
from sde.accounts.store import Tx, project_info, require_project, require_user, user_info
from sde.errors import AccessDenied, DisclosureRisk, InvalidInput, InvalidTransition
from sde.registry.airlock import (
    AirlockComment,
    AirlockFile,
    AirlockGroup,
    AirlockRequest,
    AirlockReview,
    AirlockVote,
)
from sde.registry.people import UserRole
from sde.registry.projects import ApprovalVersion, Membership
from sde.scope import Scope
from sde.sdc.config import SDCConfig

T = TypeVar("T")
MAX_TEXT = 10_000
#: Actions still allowed on a request whose project is suspended, revoked or expired.
WHEN_INACTIVE = frozenset({Action.VIEW, Action.VIEW_FILE, Action.REJECT})


@dataclass
class Ctx:
    """One action in progress: the transaction, the request, the caller and who they are."""

    tx: Tx
    request: AirlockRequest
    user: str
    relation: Relation

    @property
    def session(self) -> Session:
        return self.tx.session

    def audit(self, action: Action | str, **details: Any) -> None:
        event = EVENTS[action] if isinstance(action, Action) else action
        self.tx.audit(
            self.user,
            event,
            f"airlock-request:{self.request.id}",
            project=self.request.project,
            details=details,
        )

    def move(self, action: Action, to: State, now: dt.datetime) -> None:
        if to not in targets(action, State(self.request.state)):  # the table is the law
            raise InvalidTransition(
                "airlock.invalid-transition", f"{self.request.state} cannot go to {to}"
            )
        before = self.request.state
        self.request.state = to
        self.request.state_changed_at = now
        self.audit(action, before=before, after=str(to), turn=self.request.turn)


class Airlock:
    """The airlock over a registry (:class:`AccountStore`) and a file store."""

    def __init__(
        self,
        store: AccountStore,
        files: FileStore,
        *,
        file_types: tuple[str, ...],
        max_file_mb: float,
        clock: Callable[[], dt.datetime] | None = None,
        on_release: Callable[[str, int, list[tuple[str, bytes]]], None] | None = None,
    ) -> None:
        self.store = store
        #: Called with (project, request id, [(file name, bytes)]) as a request is released.
        self.on_release = on_release or (lambda project, request_id, files: None)
        self.files = files
        self.file_types = file_types
        self.max_file_mb = max_file_mb
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return utc(self._clock())

    # -- the author's actions --------------------------------------------------------------

    def create(self, user: str, project: str) -> dict[str, Any]:
        """A new draft for a member of ``project`` (one open request per member and project)."""
        with (
            self.store.refusals_audited(user, "airlock.request.create", "project"),
            self.store.write() as tx,
        ):
            if not SLUG.fullmatch(project) or tx.session.get(Membership, (project, user)) is None:
                raise AccessDenied("project.unknown", f"there is no project {project!r}")
            check_may_use_data(
                user_info(tx.session, require_user(tx.session, user)), self.now().date()
            )
            check_project_usable(
                project_info(tx.session, require_project(tx.session, project)),
                self.now().date(),
            )
            open_one = tx.session.scalar(
                select(AirlockRequest.id).where(
                    AirlockRequest.project == project,
                    AirlockRequest.author == user,
                    AirlockRequest.state.in_([s.value for s in OPEN]),
                )
            )
            if open_one is not None:
                raise InvalidTransition(
                    "airlock.open-request",
                    f"you already have an open request ({open_one}) for {project}: "
                    "add to it, or withdraw it first",
                )
            now = self.now()
            request = AirlockRequest(
                project=project,
                author=user,
                state=State.DRAFT.value,
                turn=0,
                reviews_needed=2,
                created_at=now,
                state_changed_at=now,
            )
            tx.session.add(request)
            tx.session.flush()
            Ctx(tx, request, user, Relation.AUTHOR).audit(CREATE_EVENT)
            return views.request_view(tx.session, request, user, Relation.AUTHOR)

    def add_file(
        self, user: str, request_id: int, group: str, name: str, data: bytes, kind: str = "output"
    ) -> dict[str, Any]:
        """Add (or replace) a file in a group (made if new); the file's view.

        The caller's right is checked before the bytes are stored (refused uploads leave
        nothing behind), and again in the transaction that names them.
        """
        with self.store.refusals_audited(user, EVENTS[Action.ADD_FILE], _obj(request_id)):
            check_name(name, self.file_types)
            check_size(name, len(data), self.max_file_mb)
            check_group_name(group)
            if kind not in ("output", "supporting"):
                raise InvalidInput("airlock.file-kind", "a file's kind is output or supporting")
            with self.store.read() as session:
                self._check(session, user, request_id, Action.ADD_FILE)
        sha256 = self.files.put(data)  # content-addressed and idempotent
        with self._act(user, request_id, Action.ADD_FILE) as ctx:
            row = _group(ctx.session, ctx.request.id, group, create=True)
            file = ctx.session.scalar(
                select(AirlockFile).where(AirlockFile.group_id == row.id, AirlockFile.name == name)
            )
            replaced = file is not None
            if file is None:
                file = AirlockFile(group_id=row.id, name=name)
                ctx.session.add(file)
            file.kind, file.sha256, file.size = kind, sha256, len(data)
            file.added_at, file.checks_status, file.checks_report = self.now(), "none", None
            ctx.audit(
                Action.ADD_FILE,
                group=group,
                name=name,
                sha256=sha256,
                size=len(data),
                kind=kind,
                replaced=replaced,
            )
            ctx.session.flush()
            return views.file_view(ctx.session, ctx.request, file, ctx.relation)

    def delete_file(self, user: str, request_id: int, group: str, name: str) -> None:
        with self._act(user, request_id, Action.DELETE_FILE) as ctx:
            file = _file(ctx.session, ctx.request.id, group, name)
            ctx.session.delete(file)
            ctx.audit(Action.DELETE_FILE, group=group, name=name, sha256=file.sha256)

    def edit_group(
        self, user: str, request_id: int, group: str, *, context: str | None, controls: str | None
    ) -> dict[str, Any]:
        """Set a group's context and disclosure controls (the group is made if new)."""
        with self.store.refusals_audited(user, EVENTS[Action.EDIT_GROUP], _obj(request_id)):
            check_group_name(group)
            for field, text in (("context", context), ("controls", controls)):
                _check_no_nul(field, text)
                if text is not None and len(text) > MAX_TEXT:
                    raise InvalidInput(
                        "airlock.text-too-long", f"{field}: at most {MAX_TEXT:,} characters"
                    )
        with self._act(user, request_id, Action.EDIT_GROUP) as ctx:
            row = _group(ctx.session, ctx.request.id, group, create=True)
            if context is not None:
                row.context = context.strip()
            if controls is not None:
                row.controls = controls.strip()
            ctx.audit(Action.EDIT_GROUP, group=group, context=row.context, controls=row.controls)
            ctx.session.flush()
            return views.group_view(ctx.session, ctx.request, row, ctx.relation)

    def submit(self, user: str, request_id: int) -> dict[str, Any]:
        """Check every file and submit: the request goes to the output checkers."""
        results = self._check_files(user, request_id)
        with self._act(user, request_id, Action.SUBMIT) as ctx:
            files = _files(ctx.session, ctx.request.id)
            _check_submittable(ctx.session, ctx.request, files)
            blocking: list[str] = []
            for file in files:
                result = results.get((file.id, file.sha256, file.kind))
                if result is None:
                    raise InvalidTransition(
                        "airlock.files-changed",
                        "the files changed while they were checked; submit again",
                    )
                file.checks_status = result.status
                file.checks_report = (
                    json.dumps(result.report) if result.report is not None else None
                )
                blocking += result.blocking
            if blocking:
                raise DisclosureRisk("airlock.identifiers", "; ".join(blocking))
            ctx.request.turn += 1
            ctx.request.reviews_needed = _reviews_needed(ctx.session, ctx.request.project, files)
            ctx.move(Action.SUBMIT, State.SUBMITTED, self.now())
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    def withdraw(self, user: str, request_id: int) -> dict[str, Any]:
        with self._act(user, request_id, Action.WITHDRAW) as ctx:
            ctx.move(Action.WITHDRAW, State.WITHDRAWN, self.now())
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    # -- the output checkers' actions -------------------------------------------------------

    def vote(
        self,
        user: str,
        request_id: int,
        group: str,
        name: str,
        vote: str,
        *,
        sha256: str | None = None,
    ) -> dict[str, Any]:
        """Record (or change, until the review is submitted) a checker's vote on a file."""
        with self.store.refusals_audited(user, EVENTS[Action.VOTE], _obj(request_id)):
            if vote not in VOTES:
                raise InvalidInput("airlock.vote", f"a vote is {' or '.join(VOTES)}, not {vote!r}")
        with self._act(user, request_id, Action.VOTE) as ctx:
            _check_not_reviewed(ctx)
            file = _file(ctx.session, ctx.request.id, group, name)
            if sha256 is not None and sha256 != file.sha256:
                raise InvalidTransition(
                    "airlock.stale-file",
                    f"{name} was replaced since you opened it: open it again before voting",
                )
            if file.kind != "output":
                raise InvalidInput(
                    "airlock.vote-supporting",
                    f"{name} is a supporting file: it is not released, so not voted on",
                )
            if (
                State(ctx.request.state) is State.REVIEWED
                and _decision(ctx.session, ctx.request, file) != "conflicted"
            ):
                raise InvalidTransition(
                    "airlock.not-conflicted",
                    f"{name} is decided; only conflicted files take a third vote",
                )
            row = ctx.session.scalar(
                select(AirlockVote).where(
                    AirlockVote.file_id == file.id,
                    AirlockVote.turn == ctx.request.turn,
                    AirlockVote.reviewer == user,
                )
            )
            if row is None:
                row = AirlockVote(file_id=file.id, turn=ctx.request.turn, reviewer=user)
                ctx.session.add(row)
            row.vote, row.voted_at = vote, self.now()
            ctx.audit(Action.VOTE, group=group, name=name, vote=vote, turn=ctx.request.turn)
            ctx.session.flush()
            return views.file_view(ctx.session, ctx.request, file, ctx.relation, viewer=user)

    def review(self, user: str, request_id: int) -> dict[str, Any]:
        """Submit the checker's review of this turn (every file they must vote on voted)."""
        with self._act(user, request_id, Action.REVIEW) as ctx:
            _check_not_reviewed(ctx)
            state = State(ctx.request.state)
            files = [f for f in _files(ctx.session, ctx.request.id) if f.kind == "output"]
            if state is State.REVIEWED:
                files = [f for f in files if _decision(ctx.session, ctx.request, f) == "conflicted"]
                if not files:
                    raise InvalidTransition(
                        "airlock.nothing-to-settle", "every file is decided: the review is complete"
                    )
            voted = set(
                ctx.session.scalars(
                    select(AirlockVote.file_id).where(
                        AirlockVote.turn == ctx.request.turn, AirlockVote.reviewer == user
                    )
                )
            )
            missing = [f.name for f in files if f.id not in voted]
            if missing:
                raise InvalidTransition(
                    "airlock.votes-missing",
                    f"vote on every output file first: {', '.join(missing)}",
                )
            ctx.session.add(
                AirlockReview(
                    request_id=ctx.request.id,
                    turn=ctx.request.turn,
                    reviewer=user,
                    submitted_at=self.now(),
                )
            )
            ctx.session.flush()
            reviews = _reviews(ctx.session, ctx.request)
            to = (
                State.REVIEWED
                if state is State.REVIEWED or len(reviews) >= ctx.request.reviews_needed
                else State.PARTIALLY_REVIEWED
            )
            ctx.move(Action.REVIEW, to, self.now())
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    def comment(
        self,
        user: str,
        request_id: int,
        text: str,
        *,
        visibility: str = "public",
        group: str | None = None,
    ) -> dict[str, Any]:
        with self.store.refusals_audited(user, EVENTS[Action.COMMENT], _obj(request_id)):
            if visibility not in ("public", "private"):
                raise InvalidInput("airlock.visibility", "a comment is public or private")
            _check_text("comment", text)
            if group is not None:
                check_group_name(group)
        with self._act(user, request_id, Action.COMMENT) as ctx:
            if ctx.relation is Relation.AUTHOR and visibility != "public":
                raise AccessDenied(
                    "airlock.author-comments-public", "the author's comments are public"
                )
            if group is not None:
                _group(ctx.session, ctx.request.id, group, create=False)
            row = AirlockComment(
                request_id=ctx.request.id,
                group_name=group,
                turn=ctx.request.turn,
                author=user,
                text=text.strip(),
                visibility=visibility,
                created_at=self.now(),
            )
            ctx.session.add(row)
            ctx.audit(Action.COMMENT, group=group, visibility=visibility, turn=ctx.request.turn)
            ctx.session.flush()
            return views.comment_view(row)

    def return_request(self, user: str, request_id: int, comment: str) -> dict[str, Any]:
        """Back to the author with a public comment saying what to change."""
        return self._close_turn(user, request_id, comment, Action.RETURN, State.RETURNED)

    def reject(self, user: str, request_id: int, comment: str) -> dict[str, Any]:
        return self._close_turn(user, request_id, comment, Action.REJECT, State.REJECTED)

    def release(self, user: str, request_id: int) -> dict[str, Any]:
        """Approve (every output file approved), then release the files to the author.

        Between the two the released tables are given to :attr:`on_release` (the project's
        differencing ledger); if that fails the request stays ``approved`` and releasing it
        again resumes there.
        """
        with self._act(user, request_id, Action.RELEASE) as ctx:
            outputs = [f for f in _files(ctx.session, ctx.request.id) if f.kind == "output"]
            if State(ctx.request.state) is State.REVIEWED:
                pending = [
                    f.name for f in outputs if _decision(ctx.session, ctx.request, f) != "approved"
                ]
                if pending or not outputs:
                    raise InvalidTransition(
                        "airlock.not-approved",
                        f"not every output file is approved: {', '.join(pending) or 'none'}",
                    )
                ctx.move(Action.RELEASE, State.APPROVED, self.now())
            project = ctx.request.project
            released = [(f.name, f.sha256) for f in outputs]
        self.on_release(project, request_id, [(n, self.files.get(h)) for n, h in released])
        with self._act(user, request_id, Action.RELEASE) as ctx:
            if State(ctx.request.state) is not State.APPROVED:
                raise InvalidTransition(
                    "airlock.invalid-transition", f"the request is {ctx.request.state}"
                )
            ctx.move(Action.RELEASE, State.RELEASED, self.now())
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    # -- reading ----------------------------------------------------------------------------

    def get(self, user: str, request_id: int) -> dict[str, Any]:
        """The request as the caller may see it (the view is audited)."""
        with self._act(user, request_id, Action.VIEW) as ctx:
            ctx.audit(Action.VIEW)
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    def read_file(
        self, user: str, request_id: int, group: str, name: str, *, download: bool = False
    ) -> tuple[AirlockFile, bytes]:
        """A file's row and bytes (checked against their hash); the read is audited."""
        action = Action.DOWNLOAD if download else Action.VIEW_FILE
        with self._act(user, request_id, action) as ctx:
            file = _file(ctx.session, ctx.request.id, group, name)
            if ctx.relation is Relation.AUTHOR and file.kind != "output":
                raise AccessDenied(
                    "airlock.not-released", f"{name} is a supporting file: it was not released"
                )
            data = self.files.get(file.sha256)
            ctx.audit(action, group=group, name=name, sha256=file.sha256)
            return file, data

    def list_for(self, user: str) -> list[dict[str, Any]]:
        """Summaries of the requests the caller may see, newest first."""
        with self.store.write() as tx:
            shown = views.visible_requests(tx.session, user)
            tx.audit(user, LIST_EVENT, "airlock-requests", details={"shown": len(shown)})
            return shown

    # -- plumbing ---------------------------------------------------------------------------

    def _close_turn(
        self, user: str, request_id: int, comment: str, action: Action, to: State
    ) -> dict[str, Any]:
        with self.store.refusals_audited(user, EVENTS[action], _obj(request_id)):
            _check_text("comment", comment)
        with self._act(user, request_id, action) as ctx:
            ctx.session.add(
                AirlockComment(
                    request_id=ctx.request.id,
                    group_name=None,
                    turn=ctx.request.turn,
                    author=user,
                    text=comment.strip(),
                    visibility="public",
                    created_at=self.now(),
                )
            )
            ctx.audit(Action.COMMENT, visibility="public", turn=ctx.request.turn)
            ctx.move(action, to, self.now())
            return views.request_view(ctx.session, ctx.request, user, ctx.relation)

    def _check_files(self, user: str, request_id: int) -> dict[tuple[int, str, str], CheckResult]:
        """Every file's automatic checks, before the submission's transaction.

        Output and supporting files alike (identifiers block both: checkers outside the
        project must not be shown them), each beside the other files of its group (a
        notebook's report is recognised there) and against the tables the project released
        before (differencing). Keyed by id, hash and kind: a file changed in any of them
        while the checks ran is refused in the transaction.
        """
        with self.store.read() as session:
            request = session.get(AirlockRequest, request_id)
            if request is None or request.author != user:
                return {}  # the transaction refuses it with the right rule
            rules = _rules(session, request.project)
            files = _files(session, request_id)
            earlier = [
                (f.name, self.files.get(f.sha256)) for f in _released(session, request.project)
            ]
        data = {f.id: self.files.get(f.sha256) for f in files}
        results = {}
        for file in files:
            companions = {
                f.name: data[f.id] for f in files if f.group_id == file.group_id and f.id != file.id
            }
            results[(file.id, file.sha256, file.kind)] = check_file(
                file.name, data[file.id], rules, companions=companions, earlier=earlier
            )
        return results

    @contextmanager
    def _act(self, user: str, request_id: int, action: Action) -> Iterator[Ctx]:
        with (
            self.store.refusals_audited(user, EVENTS[action], _obj(request_id)),
            self.store.write() as tx,
        ):
            request, relation = self._check(tx.session, user, request_id, action, lock=True)
            yield Ctx(tx, request, user, relation)

    def _check(
        self, session: Session, user: str, request_id: int, action: Action, *, lock: bool = False
    ) -> tuple[AirlockRequest, Relation]:
        """The request and the caller's relation to it, if they may take ``action`` now."""
        request = session.get(AirlockRequest, request_id, with_for_update=lock)
        if request is None:
            raise _unknown(request_id)
        relation = _relation(session, user, request)
        if not visible(relation, request):
            raise _unknown(request_id)
        check_can(action, relation, State(request.state))
        today = self.now().date()
        if relation is Relation.AUTHOR:  # still a member, accredited, agreement signed
            if session.get(Membership, (request.project, user)) is None:
                raise AccessDenied(
                    "access.not-member", f"you are no longer a member of {request.project}"
                )
            check_may_use_data(user_info(session, require_user(session, user)), today)
        if not (action in WHEN_INACTIVE and relation is not Relation.AUTHOR):
            project = require_project(session, request.project)
            check_project_usable(project_info(session, project), today)
        return request, relation


def _obj(request_id: int) -> str:
    return f"airlock-request:{request_id}"


def _unknown(request_id: int) -> AccessDenied:
    return AccessDenied("airlock.unknown", f"there is no request {request_id}")


def _relation(session: Session, user: str, request: AirlockRequest) -> Relation:
    members = set(
        session.scalars(select(Membership.username).where(Membership.project == request.project))
    )
    roles = set(session.scalars(select(UserRole.role).where(UserRole.username == user)))
    return relation_of(user, request, members, roles)


def _rules(session: Session, project: str) -> SDCConfig:
    version = session.scalar(
        select(ApprovalVersion)
        .where(ApprovalVersion.project == project)
        .order_by(ApprovalVersion.version.desc())
        .limit(1)
    )
    if version is None:
        return SDCConfig()
    return Scope.from_dict(json.loads(version.scope)).sdc


def _files(session: Session, request_id: int) -> list[AirlockFile]:
    return list(
        session.scalars(
            select(AirlockFile)
            .join(AirlockGroup)
            .where(AirlockGroup.request_id == request_id)
            .order_by(AirlockGroup.name, AirlockFile.name)
        )
    )


def _reviews_needed(session: Session, project: str, files: list[AirlockFile]) -> int:
    """One review where the project allows it and every output file's checks passed."""
    outputs = [f for f in files if f.kind == "output"]
    passed = bool(outputs) and all(f.checks_status == "pass" for f in outputs)
    return 1 if _rules(session, project).single_review and passed else 2


def _released(session: Session, project: str) -> list[AirlockFile]:
    """The output files the project has released so far."""
    return list(
        session.scalars(
            select(AirlockFile)
            .join(AirlockGroup)
            .join(AirlockRequest)
            .where(
                AirlockRequest.project == project,
                AirlockRequest.state == State.RELEASED.value,
                AirlockFile.kind == "output",
            )
        )
    )


def _group(session: Session, request_id: int, name: str, *, create: bool) -> AirlockGroup:
    row = session.scalar(
        select(AirlockGroup).where(AirlockGroup.request_id == request_id, AirlockGroup.name == name)
    )
    if row is None:
        if not create:
            raise InvalidInput("airlock.unknown-group", f"the request has no group {name!r}")
        row = AirlockGroup(request_id=request_id, name=name, context="", controls="")
        session.add(row)
        session.flush()
    return row


def _file(session: Session, request_id: int, group: str, name: str) -> AirlockFile:
    row = session.scalar(
        select(AirlockFile)
        .join(AirlockGroup)
        .where(
            AirlockGroup.request_id == request_id,
            AirlockGroup.name == group,
            AirlockFile.name == name,
        )
    )
    if row is None:
        raise InvalidInput(
            "airlock.unknown-file", f"the request has no file {name!r} in group {group!r}"
        )
    return row


def _reviews(session: Session, request: AirlockRequest) -> list[str]:
    return list(
        session.scalars(
            select(AirlockReview.reviewer).where(
                AirlockReview.request_id == request.id, AirlockReview.turn == request.turn
            )
        )
    )


def _decision(session: Session, request: AirlockRequest, file: AirlockFile) -> str:
    return views.file_decision(session, request, file)


def _check_not_reviewed(ctx: Ctx) -> None:
    if ctx.user in _reviews(ctx.session, ctx.request):
        raise InvalidTransition(
            "airlock.already-reviewed", f"you have submitted your review of turn {ctx.request.turn}"
        )


def _check_submittable(session: Session, request: AirlockRequest, files: list[AirlockFile]) -> None:
    if not any(f.kind == "output" for f in files):
        raise InvalidTransition(
            "airlock.no-output", "add at least one output file before submitting"
        )
    groups = session.scalars(select(AirlockGroup).where(AirlockGroup.request_id == request.id))
    used = {f.group_id for f in files}
    for group in groups:
        if group.id in used and not (group.context and group.controls):
            raise InvalidTransition(
                "airlock.group-incomplete",
                f"group {group.name!r} needs its context and the disclosure controls applied",
            )


def _check_no_nul(field: str, text: str | None) -> None:
    """A NUL character cannot be stored by PostgreSQL: refused as input, never a 500."""
    if text is not None and "\x00" in text:
        raise InvalidInput("airlock.text-nul", f"the {field} holds a NUL character")


def _check_text(field: str, text: str) -> None:
    _check_no_nul(field, text)
    if not text.strip():
        raise InvalidInput("airlock.comment-empty", f"the {field} is empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            "airlock.text-too-long", f"the {field} has more than {MAX_TEXT:,} characters"
        )
