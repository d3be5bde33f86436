"""The airlock's workflow as data: states, transitions, who may act, what each action logs.

Everything that decides whether an action is allowed reads the tables here:

* :data:`TRANSITIONS`: the actions that move a request, from which states, to which;
* :data:`PERMISSIONS`: for every action, the states in which each relation to the request
  (:class:`Relation`: the author, another project member, an output checker, ...) may take it;
* :data:`OWNERS`: whose move it is in each state (the queues and pages show it);
* :data:`EVENTS`: the audit event each action writes.

:func:`check_can` raises with a reason (``AccessDenied`` naming the relation, or
``InvalidTransition`` naming the state and the action) and :func:`can` is derived from it,
so the API, the pages and the tests all get the same answer. Rules that depend on more than
the state and the relation (votes, reviews, files) live in :mod:`airlock.requests` and are
checked after these.

>>> check_can(Action.SUBMIT, Relation.AUTHOR, State.DRAFT)
>>> can(Action.SUBMIT, Relation.CHECKER, State.DRAFT)
False
>>> check_can(Action.REJECT, Relation.CHECKER, State.SUBMITTED)
Traceback (most recent call last):
...
sde.errors.InvalidTransition: the request is submitted: it cannot be rejected (only when reviewed)
"""

from __future__ import annotations

from enum import StrEnum

from sde.web.workflow import Rulebook


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PARTIALLY_REVIEWED = "partially_reviewed"
    REVIEWED = "reviewed"
    RETURNED = "returned"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Relation(StrEnum):
    """How the caller stands to a request (the truth table's rows)."""

    AUTHOR = "author"
    #: Another member of the request's project (an output checker who is one included).
    MEMBER = "member"
    #: An output checker who is neither the author nor a member of the project.
    CHECKER = "checker"
    COMMITTEE = "committee"
    ADMIN = "admin"
    #: Logged in, with none of the above.
    OTHER = "other"


class Action(StrEnum):
    VIEW = "view"
    VIEW_FILE = "view_file"
    ADD_FILE = "add_file"
    DELETE_FILE = "delete_file"
    EDIT_GROUP = "edit_group"
    SUBMIT = "submit"
    WITHDRAW = "withdraw"
    VOTE = "vote"
    REVIEW = "review"
    COMMENT = "comment"
    RETURN = "return"
    REJECT = "reject"
    RELEASE = "release"
    DOWNLOAD = "download"


FINAL: frozenset[State] = frozenset({State.RELEASED, State.REJECTED, State.WITHDRAWN})
OPEN: frozenset[State] = frozenset(State) - FINAL
EDITABLE: frozenset[State] = frozenset({State.DRAFT, State.RETURNED})
UNDER_REVIEW: frozenset[State] = frozenset({State.SUBMITTED, State.PARTIALLY_REVIEWED})
#: States a checker can see (a request that was never submitted stays the author's).
SEEN_BY_CHECKERS: frozenset[State] = frozenset(State) - {State.DRAFT}

#: Every move a request can make: (action, from, to). REVIEW moves ``submitted`` to
#: ``partially_reviewed`` at a turn's first review (to ``reviewed`` when the request needs
#: one review) and on to ``reviewed`` at the second; a third checker settling a conflicted
#: file reviews a ``reviewed`` request again. RELEASE passes through ``approved`` (a release
#: cut short resumes from there).
TRANSITIONS: tuple[tuple[Action, State, State], ...] = (
    (Action.SUBMIT, State.DRAFT, State.SUBMITTED),
    (Action.SUBMIT, State.RETURNED, State.SUBMITTED),
    (Action.WITHDRAW, State.DRAFT, State.WITHDRAWN),
    (Action.WITHDRAW, State.RETURNED, State.WITHDRAWN),
    (Action.REVIEW, State.SUBMITTED, State.PARTIALLY_REVIEWED),
    (Action.REVIEW, State.SUBMITTED, State.REVIEWED),
    (Action.REVIEW, State.PARTIALLY_REVIEWED, State.REVIEWED),
    (Action.REVIEW, State.REVIEWED, State.REVIEWED),
    (Action.RETURN, State.SUBMITTED, State.RETURNED),
    (Action.RETURN, State.PARTIALLY_REVIEWED, State.RETURNED),
    (Action.RETURN, State.REVIEWED, State.RETURNED),
    (Action.REJECT, State.REVIEWED, State.REJECTED),
    (Action.RELEASE, State.REVIEWED, State.APPROVED),
    (Action.RELEASE, State.APPROVED, State.RELEASED),
)


def targets(action: Action, state: State) -> frozenset[State]:
    """The states ``action`` may move a request in ``state`` to (empty: it does not move)."""
    return frozenset(to for act, source, to in TRANSITIONS if act == action and source == state)


_CHECKER_WORK = UNDER_REVIEW | {State.REVIEWED}

#: action -> relation -> the states in which that relation may take the action.
PERMISSIONS: dict[Action, dict[Relation, frozenset[State]]] = {
    Action.VIEW: {
        Relation.AUTHOR: frozenset(State),
        Relation.CHECKER: SEEN_BY_CHECKERS,
        Relation.ADMIN: SEEN_BY_CHECKERS,
    },
    # The author's browser is outside the environment: bytes reach it only once released.
    Action.VIEW_FILE: {
        Relation.AUTHOR: frozenset({State.RELEASED}),
        Relation.CHECKER: SEEN_BY_CHECKERS,
    },
    Action.ADD_FILE: {Relation.AUTHOR: EDITABLE},
    Action.DELETE_FILE: {Relation.AUTHOR: EDITABLE},
    Action.EDIT_GROUP: {Relation.AUTHOR: EDITABLE},
    Action.SUBMIT: {Relation.AUTHOR: EDITABLE},
    Action.WITHDRAW: {Relation.AUTHOR: EDITABLE},
    Action.VOTE: {Relation.CHECKER: _CHECKER_WORK},
    Action.REVIEW: {Relation.CHECKER: _CHECKER_WORK},
    Action.COMMENT: {Relation.AUTHOR: OPEN, Relation.CHECKER: _CHECKER_WORK | {State.RETURNED}},
    Action.RETURN: {Relation.CHECKER: _CHECKER_WORK},
    Action.REJECT: {Relation.CHECKER: frozenset({State.REVIEWED})},
    Action.RELEASE: {Relation.CHECKER: frozenset({State.REVIEWED, State.APPROVED})},
    Action.DOWNLOAD: {Relation.AUTHOR: frozenset({State.RELEASED})},
}

#: Whose move it is in each state.
OWNERS: dict[State, frozenset[Relation]] = {
    State.DRAFT: frozenset({Relation.AUTHOR}),
    State.SUBMITTED: frozenset({Relation.CHECKER}),
    State.PARTIALLY_REVIEWED: frozenset({Relation.CHECKER}),
    State.REVIEWED: frozenset({Relation.CHECKER}),
    State.RETURNED: frozenset({Relation.AUTHOR}),
    State.APPROVED: frozenset({Relation.CHECKER}),
    State.RELEASED: frozenset(),
    State.REJECTED: frozenset(),
    State.WITHDRAWN: frozenset(),
}

#: The audit event each action writes (creating a request writes ``airlock.request.create``).
EVENTS: dict[Action, str] = {
    Action.VIEW: "airlock.request.view",
    Action.VIEW_FILE: "airlock.file.view",
    Action.ADD_FILE: "airlock.file.add",
    Action.DELETE_FILE: "airlock.file.delete",
    Action.EDIT_GROUP: "airlock.group.edit",
    Action.SUBMIT: "airlock.request.submit",
    Action.WITHDRAW: "airlock.request.withdraw",
    Action.VOTE: "airlock.file.vote",
    Action.REVIEW: "airlock.request.review",
    Action.COMMENT: "airlock.comment.add",
    Action.RETURN: "airlock.request.return",
    Action.REJECT: "airlock.request.reject",
    Action.RELEASE: "airlock.request.release",
    Action.DOWNLOAD: "airlock.file.download",
}
CREATE_EVENT = "airlock.request.create"
LIST_EVENT = "airlock.request.list"

_DONE = {
    Action.VIEW: "viewed",
    Action.VIEW_FILE: "opened",
    Action.ADD_FILE: "given files",
    Action.DELETE_FILE: "have files removed",
    Action.EDIT_GROUP: "edited",
    Action.SUBMIT: "submitted",
    Action.WITHDRAW: "withdrawn",
    Action.VOTE: "voted on",
    Action.REVIEW: "reviewed",
    Action.COMMENT: "commented on",
    Action.RETURN: "returned",
    Action.REJECT: "rejected",
    Action.RELEASE: "released",
    Action.DOWNLOAD: "downloaded",
}
_WHO = {
    Relation.AUTHOR: "its author",
    Relation.MEMBER: "a member of its project",
    Relation.CHECKER: "an output checker",
    Relation.COMMITTEE: "a committee member",
    Relation.ADMIN: "an administrator",
    Relation.OTHER: "someone with no part in it",
}


RULEBOOK = Rulebook("airlock", "a request", PERMISSIONS, _WHO, _DONE, tuple(State))


def check_can(action: Action, relation: Relation, state: State) -> None:
    """Raise unless ``relation`` may take ``action`` on a request in ``state``.

    ``AccessDenied`` (rule ``airlock.not-permitted``) when the relation may never take it;
    ``InvalidTransition`` (rule ``airlock.invalid-transition``) when it may, but not now.
    """
    RULEBOOK.check(action, relation, state)


def can(action: Action, relation: Relation, state: State) -> bool:
    """Whether :func:`check_can` would allow it."""
    return RULEBOOK.can(action, relation, state)


def actions_for(relation: Relation, state: State) -> list[Action]:
    """What ``relation`` may do to a request in ``state`` (the page's buttons)."""
    return [action for action in Action if can(action, relation, state)]


def state_diagram() -> str:
    """The transitions as a Mermaid state diagram (``docs/airlock-states.md`` holds it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.DRAFT}"]
    lines += [f"    {source} --> {to}: {action}" for action, source, to in TRANSITIONS]
    lines += [f"    {state} --> [*]" for state in State if state in FINAL]
    return "\n".join(lines) + "\n"


def state_page() -> str:
    """``docs/airlock-states.md``: the diagram with a word on where it comes from."""
    return (
        "# The airlock's states\n\n"
        "Generated from `airlock/workflow.py` (`TRANSITIONS`) by `python -m airlock.workflow`; "
        "a test\nfails when this page is stale. Who may take each action in each state is\n"
        "`PERMISSIONS` in the same module (and the truth table in "
        "`tests/airlock/truth_table.py`).\n\n"
        f"```mermaid\n{state_diagram()}```\n"
    )


if __name__ == "__main__":
    print(state_page(), end="")
