"""Applications to the data access committee, from draft to a provisioned project.

:class:`Committee` is what the API and the pages call; every method takes the acting user
first, runs in one registry transaction with its audit entry, and refuses with a rule
(an application the caller may not see looks missing: ``committee.unknown``). The rules
beyond :mod:`access_committee.workflow`:

* only accredited users apply; a draft holds whatever was typed and lists its problems;
  submitting needs none;
* committee members declare a conflict (or none) before voting; a conflicted member's vote
  does not count; members named in an application never vote on it;
* a decision needs a quorum of votes (``SDE_COMMITTEE_QUORUM``) and a majority of them;
  approvals with and without conditions count together, conditions are kept;
* each requested node's custodian agrees or declines (with a reason the applicant sees);
  an approval waits for every node, and a node that declines is left out of the scope;
* an approval compiles the application into a scope and provisions it in the same
  transaction: a new project (or, for an amendment, version N+1), its members, and the
  project is queryable through the gateway at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from access_committee import forms
from access_committee.workflow import (
    CREATE_EVENT,
    DECIDE_EVENT,
    DECISIONS,
    EVENTS,
    LIST_EVENT,
    STATE_EVENT,
    Action,
    Relation,
    State,
    can,
    check_can,
    targets,
    visible,
)
from sde.accounts import AccountStore
from sde.accounts.model import SLUG, utc
from sde.accounts.projects import add_member_in, add_version_in, create_project_in
from sde.accounts.store import Tx, latest_version
from sde.errors import AccessDenied, InvalidInput, InvalidTransition
from sde.registry.committee import (
    TEXT_LIMITS,
    Application,
    CommitteeVote,
    ConflictDeclaration,
    NodeDecision,
    text_problem,
)
from sde.registry.people import NodeCustodian, User, UserRole
from sde.registry.projects import Membership, Project
from sde.scope import Scope

VOTES = tuple(DECISIONS)


@dataclass
class Ctx:
    tx: Tx
    app: Application
    user: str
    relation: Relation

    @property
    def session(self) -> Session:
        return self.tx.session

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.app.body)
        return body

    def audit(self, event: str, **details: Any) -> None:
        self.tx.audit(
            self.user,
            event,
            f"application:{self.app.id}",
            project=self.app.project,
            details=details,
        )

    def move(self, action: Action, to: State, now: dt.datetime) -> None:
        if to not in targets(action, State(self.app.state)):
            raise InvalidTransition(
                "committee.invalid-transition", f"{self.app.state} cannot go to {to}"
            )
        before, self.app.state, self.app.state_changed_at = self.app.state, to.value, now
        self.audit(
            STATE_EVENT, action=action.value, before=before, after=to.value, round=self.app.round
        )


class Committee:
    """The committee's workflow over the registry."""

    def __init__(
        self,
        store: AccountStore,
        *,
        quorum: int = 3,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.quorum = quorum
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return utc(self._clock())

    # -- applicants ------------------------------------------------------------------------

    def create(self, user: str, fields: Mapping[str, Any], *, kind: str = "new") -> dict[str, Any]:
        """A draft application by ``user`` (who must hold current accreditation)."""
        with (
            self.store.refusals_audited(user, CREATE_EVENT, "application:new"),
            self.store.write() as tx,
        ):
            body = forms.clean(fields)  # refused (and audited) by the field it names
            person = tx.session.get(User, user)
            today = self.now().date()
            if person is None or not (person.accredited_until and person.accredited_until >= today):
                raise AccessDenied(
                    "committee.not-accredited",
                    "only researchers with current safe-researcher accreditation may apply",
                )
            now = self.now()
            based_on = None
            if kind == "amendment":
                latest = latest_version(tx.session, str(body.get("project") or ""))
                based_on = latest.version if latest is not None else None
            app = Application(
                kind=kind,
                based_on=based_on,
                project=str(body.get("project") or ""),
                applicant=user,
                state=State.DRAFT.value,
                round=0,
                body=json.dumps(body, sort_keys=True),
                created_at=now,
                state_changed_at=now,
            )
            tx.session.add(app)
            tx.session.flush()
            Ctx(tx, app, user, Relation.APPLICANT).audit(CREATE_EVENT, kind=kind)
            return self._view(tx.session, app, user, Relation.APPLICANT)

    def update(self, user: str, app_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change fields of a draft (or deferred) application; its problems are listed."""
        with self._act(user, app_id, Action.EDIT) as ctx:
            changes = forms.clean(fields)
            body = {**ctx.body, **changes}
            if ctx.app.kind == "amendment" and body.get("project") != ctx.app.project:
                raise InvalidInput(
                    "application.project", "an amendment stays with its project", field="project"
                )
            ctx.app.body = json.dumps(body, sort_keys=True)
            ctx.app.project = str(body.get("project") or "")
            ctx.audit(EVENTS[Action.EDIT], fields=sorted(changes))
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def submit(self, user: str, app_id: int) -> dict[str, Any]:
        with self._act(user, app_id, Action.SUBMIT) as ctx:
            found = self._problems(ctx.session, ctx.app, ctx.body)
            if found:
                raise forms.first_problem(found)
            ctx.app.round += 1
            ctx.app.submitted_at = self.now()
            ctx.move(Action.SUBMIT, State.SUBMITTED, self.now())
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def withdraw(self, user: str, app_id: int) -> dict[str, Any]:
        with self._act(user, app_id, Action.WITHDRAW) as ctx:
            ctx.move(Action.WITHDRAW, State.WITHDRAWN, self.now())
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def amend(self, user: str, slug: str) -> dict[str, Any]:
        """A draft amendment of ``slug`` by its PI, filled in from the project as approved."""
        with (
            self.store.refusals_audited(user, CREATE_EVENT, f"project:{slug}"),
            self.store.read() as session,
        ):
            if not SLUG.fullmatch(slug):  # from a page's path, say: no such project
                raise AccessDenied("project.unknown", f"there is no project {slug[:70]!r}")
            member = session.get(Membership, (slug, user))
            if member is None:
                raise AccessDenied("project.unknown", f"there is no project {slug!r}")
            if member.role != "pi":
                raise AccessDenied("committee.pi-only", "only the project's PI amends it")
            project = session.get(Project, slug)
            latest = latest_version(session, slug)
            members = list(
                session.scalars(select(Membership.username).where(Membership.project == slug))
            )
            approved = session.scalar(
                select(Application).where(
                    Application.project == slug,
                    Application.version == (latest.version if latest is not None else -1),
                )
            )
        assert project is not None  # noqa: S101 (a membership's project exists)
        current = json.loads(latest.scope) if latest is not None else {"project": slug}
        body = {k: v for k, v in current.items() if v is not None and k in forms.FIELDS}
        if approved is not None:  # the approved application's own words, to edit not retype
            words = json.loads(approved.body)
            body.update({k: words[k] for k in forms.TEXT_FIELDS if words.get(k)})
        body.update(title=project.title, pi=user, members=[m for m in members if m != user])
        return self.create(user, body, kind="amendment")

    # -- the committee and the custodians --------------------------------------------------

    def declare(self, user: str, app_id: int, *, conflict: bool, note: str = "") -> dict[str, Any]:
        """Declare a conflict of interest in this round (or that there is none)."""
        with self.store.refusals_audited(user, EVENTS[Action.DECLARE], f"application:{app_id}"):
            if conflict and not note.strip():
                raise InvalidInput("committee.conflict-note", "say what the conflict is")
            _check_text("committee.conflict-note", "note", note)
        with self._act(user, app_id, Action.DECLARE) as ctx:
            row = ctx.session.get(ConflictDeclaration, (ctx.app.id, ctx.app.round, user))
            if row is not None and row.conflict and not conflict:
                raise InvalidTransition(
                    "committee.conflict-final",
                    "a declared conflict stands for this round; it cannot be taken back",
                )
            if row is None:
                row = ConflictDeclaration(
                    application_id=ctx.app.id, round=ctx.app.round, member=user
                )
                ctx.session.add(row)
            row.conflict, row.note, row.declared_at = conflict, note.strip(), self.now()
            if conflict:
                vote = ctx.session.get(CommitteeVote, (ctx.app.id, ctx.app.round, user))
                if vote is not None:
                    ctx.session.delete(vote)
            ctx.audit(EVENTS[Action.DECLARE], conflict=conflict, round=ctx.app.round)
            self._open(ctx, Action.DECLARE)
            self._maybe_decide(ctx, Action.DECLARE)
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def vote(
        self,
        user: str,
        app_id: int,
        vote: str,
        *,
        conditions: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        with self.store.refusals_audited(user, EVENTS[Action.VOTE], f"application:{app_id}"):
            if vote not in VOTES:
                raise InvalidInput("committee.vote", f"a vote is one of {', '.join(VOTES)}")
            if vote == "approve_with_conditions" and not (conditions or "").strip():
                raise InvalidInput("committee.conditions", "an approval with conditions names them")
            _check_text("committee.conditions", "conditions", conditions)
            _check_text("committee.comment", "comment", comment)
        with self._act(user, app_id, Action.VOTE) as ctx:
            declared = ctx.session.get(ConflictDeclaration, (ctx.app.id, ctx.app.round, user))
            if declared is None:
                raise InvalidTransition(
                    "committee.declare-first", "declare any conflict of interest before voting"
                )
            if declared.conflict:
                raise AccessDenied(
                    "committee.conflicted", "you declared a conflict: you cannot vote"
                )
            row = ctx.session.get(CommitteeVote, (ctx.app.id, ctx.app.round, user))
            if row is None:
                row = CommitteeVote(application_id=ctx.app.id, round=ctx.app.round, member=user)
                ctx.session.add(row)
            row.vote, row.conditions, row.comment = (
                vote,
                (conditions or "").strip() or None,
                comment,
            )
            row.voted_at = self.now()
            ctx.audit(EVENTS[Action.VOTE], vote=vote, round=ctx.app.round)
            self._open(ctx, Action.VOTE)
            self._maybe_decide(ctx, Action.VOTE)
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def node_decision(
        self, user: str, app_id: int, node: str, *, agree: bool, reason: str = ""
    ) -> dict[str, Any]:
        """A custodian agrees or declines for their node (a refusal needs a reason)."""
        with self.store.refusals_audited(
            user, EVENTS[Action.NODE_DECISION], f"application:{app_id}"
        ):
            if not agree and not reason.strip():
                raise InvalidInput("committee.node-reason", "say why the node declines")
            _check_text("committee.node-reason", "reason", reason)
            _check_text("committee.unknown-node", "node", node)
        with self._act(user, app_id, Action.NODE_DECISION) as ctx:
            if node not in (ctx.body.get("nodes") or []):
                raise InvalidInput(
                    "committee.unknown-node", f"the application does not ask for {node!r}"
                )
            if ctx.session.get(NodeCustodian, (node, user)) is None:
                raise AccessDenied("committee.not-custodian", f"you are not a custodian of {node}")
            key = (ctx.app.id, ctx.app.round, node)
            row = ctx.session.get(NodeDecision, key) or NodeDecision(
                application_id=ctx.app.id, round=ctx.app.round, node=node
            )
            ctx.session.add(row)
            row.custodian, row.agree, row.reason, row.decided_at = (
                user,
                agree,
                reason.strip(),
                self.now(),
            )
            ctx.audit(EVENTS[Action.NODE_DECISION], node=node, agree=agree, round=ctx.app.round)
            self._open(ctx, Action.NODE_DECISION)
            self._maybe_decide(ctx, Action.NODE_DECISION)
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    # -- reading ---------------------------------------------------------------------------

    def get(self, user: str, app_id: int) -> dict[str, Any]:
        with self._act(user, app_id, Action.VIEW) as ctx:
            ctx.audit(EVENTS[Action.VIEW])
            return self._view(ctx.session, ctx.app, user, ctx.relation)

    def list_for(self, user: str) -> list[dict[str, Any]]:
        with self.store.write() as tx:
            shown = []
            for app in tx.session.scalars(select(Application).order_by(Application.id.desc())):
                relations = _relations(tx.session, user, app)
                if any(visible(r, State(app.state), submitted=app.round > 0) for r in relations):
                    shown.append(_summary(app))
            tx.audit(user, LIST_EVENT, "applications", details={"shown": len(shown)})
            return shown

    # -- plumbing --------------------------------------------------------------------------

    def _open(self, ctx: Ctx, action: Action) -> None:
        if State(ctx.app.state) is State.SUBMITTED:
            ctx.move(action, State.UNDER_REVIEW, self.now())

    def _maybe_decide(self, ctx: Ctx, action: Action) -> None:
        """Decide once a quorum has voted with a majority (and every node has decided)."""
        ctx.session.flush()
        counted = _counted_votes(ctx.session, ctx.app)
        if len(counted) < self.quorum:
            return
        decision, conditions = _majority(counted)
        if decision is None:
            return
        nodes = _node_decisions(ctx.session, ctx.app)
        asked = list(ctx.body.get("nodes") or [])
        stale = _unapprovable(ctx) if decision.startswith("approve") else None
        if stale:
            decision, conditions = "defer", stale
        elif decision.startswith("approve"):
            if any(n not in nodes for n in asked):
                return  # waiting for custodians
            agreed = [n for n in asked if nodes[n].agree]
            if not agreed:
                decision, conditions = "defer", "every node declined"
            else:
                ctx.app.version = self._provision(ctx, agreed)
        ctx.app.conditions = conditions
        ctx.app.decided_at = self.now()
        ctx.audit(DECIDE_EVENT, decision=decision, conditions=conditions, version=ctx.app.version)
        ctx.move(action, DECISIONS[decision], self.now())

    def _provision(self, ctx: Ctx, agreed: list[str]) -> int:
        """Compile the scope and make it the project's (new project or version N+1)."""
        body = ctx.body
        scope = Scope.from_dict(forms.compile_scope(body, agreed_nodes=agreed))
        note = f"application:{ctx.app.id}"
        now = self.now()
        if ctx.app.kind == "new":
            create_project_in(
                ctx.tx, ctx.user, scope.project, str(body["title"]).strip(), scope, note, now
            )
        else:
            add_version_in(ctx.tx, ctx.user, scope.project, scope, note, now)
        _sync_members(ctx, scope.project, str(body["pi"]), body.get("members") or [], now)
        project = ctx.session.get(Project, scope.project)
        assert project is not None  # noqa: S101 (just made or amended)
        latest = latest_version(ctx.session, scope.project)
        assert latest is not None  # noqa: S101
        return latest.version

    def _problems(
        self, session: Session, app: Application, body: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        today = self.now().date()
        users = {u.username: u for u in session.scalars(select(User))}
        researchers = set(
            session.scalars(select(UserRole.username).where(UserRole.role == "researcher"))
        )
        accredited = {
            n for n, u in users.items() if u.accredited_until and u.accredited_until >= today
        }
        nodes = set(session.scalars(select(NodeCustodian.node)))
        found = forms.problems(
            body, accredited=accredited, researchers=researchers, known_nodes=nodes, today=today
        )
        exists = session.get(Project, str(body.get("project") or "")) is not None
        if app.kind == "new" and exists:
            found.insert(0, ("project", f"a project {body.get('project')!r} exists already"))
        if app.kind == "amendment" and not exists:
            found.insert(0, ("project", f"there is no project {body.get('project')!r} to amend"))
        stale = _stale(session, app)
        if stale:
            found.insert(0, ("project", stale))
        return found

    def _view(
        self, session: Session, app: Application, user: str, relation: Relation
    ) -> dict[str, Any]:
        from access_committee.views import application_view

        problems = (
            self._problems(session, app, json.loads(app.body))
            if relation is Relation.APPLICANT
            else []
        )
        return application_view(
            session, app, relation, problems, relations=_relations(session, user, app)
        )

    @contextmanager
    def _act(self, user: str, app_id: int, action: Action) -> Iterator[Ctx]:
        obj = f"application:{app_id}"
        with self.store.refusals_audited(user, EVENTS[action], obj), self.store.write() as tx:
            app = tx.session.get(Application, app_id, with_for_update=True)
            if app is None:
                raise _unknown(app_id)
            relations, state = _relations(tx.session, user, app), State(app.state)
            if not any(visible(r, state, submitted=app.round > 0) for r in relations):
                raise _unknown(app_id)
            acting = next((r for r in relations if can(action, r, state)), relations[0])
            check_can(action, acting, state)
            yield Ctx(tx, app, user, relations[0])


def _sync_members(ctx: Ctx, slug: str, pi: str, members: list[str], at: dt.datetime) -> None:
    """The project's members become exactly the approved application's: the PI, then the
    members it names; anyone else (a member an amendment drops, a former PI) loses access."""
    wanted = {pi: "pi", **{m: "member" for m in members if m != pi}}
    for row in ctx.session.scalars(select(Membership).where(Membership.project == slug)):
        if row.username not in wanted:
            ctx.session.delete(row)
            details = {"user": row.username}
            ctx.tx.audit(
                ctx.user, "project.member.remove", f"project:{slug}", project=slug, details=details
            )
    ctx.session.flush()
    for name, role in wanted.items():
        add_member_in(ctx.tx, ctx.user, slug, name, role, at)


def _stale(session: Session, app: Application) -> str | None:
    """Why an amendment no longer applies: its project was approved again since it was
    drafted (approving it would undo that approval)."""
    if app.kind != "amendment" or app.based_on is None:
        return None
    latest = latest_version(session, app.project)
    if latest is None or latest.version == app.based_on:
        return None
    return (
        f"the project changed since this amendment was drafted (version {app.based_on}, now "
        f"{latest.version}): start a new amendment from the current version"
    )


def _check_text(rule: str, field: str, value: str | None) -> None:
    """Refuse text the registry cannot hold (:data:`TEXT_LIMITS`), naming its field."""
    problem = text_problem(value or "", TEXT_LIMITS[field])
    if problem is not None:
        raise InvalidInput(rule, f"{field}: {problem}", field=field)


def _unapprovable(ctx: Ctx) -> str | None:
    """Why an approval cannot be provisioned: a stale amendment, or text the project's
    registry rows cannot hold (an application stored before :func:`forms.clean` refused it):
    the application is deferred with the reason rather than left unapprovable."""
    found = forms.unstorable(ctx.body)
    if found:
        return f"{found[0][0]}: {found[0][1]}"
    return _stale(ctx.session, ctx.app)


def _unknown(app_id: int) -> AccessDenied:
    return AccessDenied("committee.unknown", f"there is no application {app_id}")


def _relation(session: Session, user: str, app: Application) -> Relation:
    """The part of ``user`` in ``app`` that decides what they see (the first of
    :func:`_relations`)."""
    return _relations(session, user, app)[0]


def _relations(session: Session, user: str, app: Application) -> list[Relation]:
    """Every part ``user`` has in ``app``, the one that decides what they see first. The
    applicant and the members it names have no other (they never judge it); a committee
    member who is also a requested node's custodian (or an administrator) is each of them:
    they vote as a member and answer for their node as its custodian."""
    if user == app.applicant:
        return [Relation.APPLICANT]
    body = json.loads(app.body)
    if user == body.get("pi") or user in (body.get("members") or []):
        return [Relation.MEMBER]
    if app.kind == "amendment" and session.get(Membership, (app.project, user)) is not None:
        return [Relation.MEMBER]  # a member of the project amended never judges it
    roles = set(session.scalars(select(UserRole.role).where(UserRole.username == user)))
    nodes = set(session.scalars(select(NodeCustodian.node).where(NodeCustodian.username == user)))
    found = [
        relation
        for relation, holds in (
            (Relation.COMMITTEE, "committee" in roles),
            (Relation.CUSTODIAN, bool(nodes & set(body.get("nodes") or []))),
            (Relation.ADMIN, "admin" in roles),
        )
        if holds
    ]
    return found or [Relation.OTHER]


def _counted_votes(session: Session, app: Application) -> list[CommitteeVote]:
    conflicted = set(
        session.scalars(
            select(ConflictDeclaration.member).where(
                ConflictDeclaration.application_id == app.id,
                ConflictDeclaration.round == app.round,
                ConflictDeclaration.conflict.is_(True),
            )
        )
    )
    votes = session.scalars(
        select(CommitteeVote).where(
            CommitteeVote.application_id == app.id, CommitteeVote.round == app.round
        )
    )
    committee = set(session.scalars(select(UserRole.username).where(UserRole.role == "committee")))
    return [v for v in votes if v.member not in conflicted and v.member in committee]


def _majority(votes: list[CommitteeVote]) -> tuple[str | None, str | None]:
    """The decision more than half of ``votes`` make (approvals counted together)."""
    approvals = [v for v in votes if v.vote.startswith("approve")]
    half = len(votes) / 2
    if len(approvals) > half:
        conditions = [v.conditions for v in approvals if v.conditions]
        if conditions:
            return "approve_with_conditions", "\n".join(dict.fromkeys(conditions))
        return "approve", None
    for option in ("defer", "reject"):
        if sum(v.vote == option for v in votes) > half:
            return option, None
    return None, None


def _node_decisions(session: Session, app: Application) -> dict[str, NodeDecision]:
    """This round's node answers, from custodians who still hold their node."""
    rows = session.scalars(
        select(NodeDecision).where(
            NodeDecision.application_id == app.id, NodeDecision.round == app.round
        )
    )
    return {
        row.node: row
        for row in rows
        if session.get(NodeCustodian, (row.node, row.custodian)) is not None
    }


def _summary(app: Application) -> dict[str, Any]:
    return {
        "id": app.id,
        "kind": app.kind,
        "project": app.project,
        "applicant": app.applicant,
        "state": app.state,
        "round": app.round,
        "created_at": app.created_at.isoformat(),
        "state_changed_at": app.state_changed_at.isoformat(),
    }
