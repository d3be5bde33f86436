"""The data access committee's review as data (the airlock's pattern).

* :data:`TRANSITIONS`: every move an application makes, (action, from, to);
* :data:`PERMISSIONS`: for each action, the states in which each relation may take it;
* :data:`EVENTS`: the audit event each action writes.

:func:`check_can` raises ``AccessDenied`` (``committee.not-permitted``) or
``InvalidTransition`` (``committee.invalid-transition``, naming the state and the action);
:func:`can` is derived from it; :func:`visible` reads the view row for an application that
may never have been submitted (then it is a draft, whatever its state). Rules needing more
than state and relation (a conflicted member cannot vote; quorum and majority; a node's
custodian decides for that node only) live in :mod:`access_committee.applications`.

>>> check_can(Action.SUBMIT, Relation.APPLICANT, State.DRAFT)
>>> can(Action.VOTE, Relation.APPLICANT, State.SUBMITTED)
False
"""

from __future__ import annotations

from enum import StrEnum

from sde.web.workflow import Rulebook


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    DEFERRED = "deferred"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Relation(StrEnum):
    APPLICANT = "applicant"
    #: Named in the application as a member (not the applicant).
    MEMBER = "member"
    #: A committee member (who may still have declared a conflict).
    COMMITTEE = "committee"
    #: The custodian of a node the application asks for.
    CUSTODIAN = "custodian"
    ADMIN = "admin"
    OTHER = "other"


class Action(StrEnum):
    VIEW = "view"
    EDIT = "edit"
    SUBMIT = "submit"
    WITHDRAW = "withdraw"
    DECLARE = "declare"
    VOTE = "vote"
    NODE_DECISION = "node_decision"


FINAL: frozenset[State] = frozenset(
    {State.APPROVED, State.APPROVED_WITH_CONDITIONS, State.REJECTED, State.WITHDRAWN}
)
IN_REVIEW: frozenset[State] = frozenset({State.SUBMITTED, State.UNDER_REVIEW})
EDITABLE: frozenset[State] = frozenset({State.DRAFT, State.DEFERRED})
#: Decisions a vote can make, and the state each leads to.
DECISIONS: dict[str, State] = {
    "approve": State.APPROVED,
    "approve_with_conditions": State.APPROVED_WITH_CONDITIONS,
    "defer": State.DEFERRED,
    "reject": State.REJECTED,
}

#: Every move: (action, from, to). A vote or a custodian's decision opens the review
#: (submitted -> under_review); the vote that completes a quorum with a majority decides.
TRANSITIONS: tuple[tuple[Action, State, State], ...] = (
    (Action.SUBMIT, State.DRAFT, State.SUBMITTED),
    (Action.SUBMIT, State.DEFERRED, State.SUBMITTED),
    (Action.WITHDRAW, State.DRAFT, State.WITHDRAWN),
    (Action.WITHDRAW, State.SUBMITTED, State.WITHDRAWN),
    (Action.WITHDRAW, State.UNDER_REVIEW, State.WITHDRAWN),
    (Action.WITHDRAW, State.DEFERRED, State.WITHDRAWN),
    (Action.DECLARE, State.SUBMITTED, State.UNDER_REVIEW),
    (Action.VOTE, State.SUBMITTED, State.UNDER_REVIEW),
    (Action.NODE_DECISION, State.SUBMITTED, State.UNDER_REVIEW),
    *(
        (Action.VOTE, source, to)
        for source in (State.SUBMITTED, State.UNDER_REVIEW)
        for to in DECISIONS.values()
    ),
    *((Action.NODE_DECISION, State.UNDER_REVIEW, to) for to in DECISIONS.values()),
    # A member who declares a conflict takes back their vote, which can settle a majority.
    *((Action.DECLARE, State.UNDER_REVIEW, to) for to in DECISIONS.values()),
)

_ALL = frozenset(State)
_SUBMITTED_ONCE = _ALL - {State.DRAFT}
PERMISSIONS: dict[Action, dict[Relation, frozenset[State]]] = {
    Action.VIEW: {
        Relation.APPLICANT: _ALL,
        Relation.MEMBER: _ALL,
        Relation.COMMITTEE: _SUBMITTED_ONCE,
        Relation.CUSTODIAN: _SUBMITTED_ONCE,
        Relation.ADMIN: _SUBMITTED_ONCE,
    },
    Action.EDIT: {Relation.APPLICANT: EDITABLE},
    Action.SUBMIT: {Relation.APPLICANT: EDITABLE},
    Action.WITHDRAW: {Relation.APPLICANT: EDITABLE | IN_REVIEW},
    Action.DECLARE: {Relation.COMMITTEE: IN_REVIEW},
    Action.VOTE: {Relation.COMMITTEE: IN_REVIEW},
    Action.NODE_DECISION: {Relation.CUSTODIAN: IN_REVIEW},
}

EVENTS: dict[Action, str] = {
    Action.VIEW: "application.view",
    Action.EDIT: "application.edit",
    Action.SUBMIT: "application.submit",
    Action.WITHDRAW: "application.withdraw",
    Action.DECLARE: "application.conflict",
    Action.VOTE: "application.vote",
    Action.NODE_DECISION: "application.node",
}
CREATE_EVENT = "application.create"
DECIDE_EVENT = "application.decide"
STATE_EVENT = "application.state"
LIST_EVENT = "application.list"

_DONE = {
    Action.VIEW: "viewed",
    Action.EDIT: "edited",
    Action.SUBMIT: "submitted",
    Action.WITHDRAW: "withdrawn",
    Action.DECLARE: "given a conflict declaration",
    Action.VOTE: "voted on",
    Action.NODE_DECISION: "decided for a node",
}
_WHO = {
    Relation.APPLICANT: "its applicant",
    Relation.MEMBER: "a member it names",
    Relation.COMMITTEE: "a committee member",
    Relation.CUSTODIAN: "a custodian of a node it asks for",
    Relation.ADMIN: "an administrator",
    Relation.OTHER: "someone with no part in it",
}


RULEBOOK = Rulebook("committee", "an application", PERMISSIONS, _WHO, _DONE, tuple(State))


def check_can(action: Action, relation: Relation, state: State) -> None:
    RULEBOOK.check(action, relation, state)


def can(action: Action, relation: Relation, state: State) -> bool:
    return RULEBOOK.can(action, relation, state)


def visible(relation: Relation, state: State, *, submitted: bool) -> bool:
    """Whether ``relation`` sees an application in ``state``: by :data:`PERMISSIONS`'s
    view row, where an application never submitted counts as a draft whatever its state.
    A draft is its applicant's (and the members it names) alone: withdrawing one that was
    never submitted shows it to no one new.

    >>> visible(Relation.COMMITTEE, State.WITHDRAWN, submitted=False)
    False
    >>> visible(Relation.COMMITTEE, State.WITHDRAWN, submitted=True)
    True
    """
    return can(Action.VIEW, relation, state if submitted else State.DRAFT)


def targets(action: Action, state: State) -> frozenset[State]:
    return frozenset(to for act, source, to in TRANSITIONS if act == action and source == state)


def state_diagram() -> str:
    """The transitions as a Mermaid state diagram (``docs/committee-states.md``)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.DRAFT}"]
    seen: set[tuple[State, State, Action]] = set()
    for action, source, to in TRANSITIONS:
        if (source, to, action) not in seen:
            seen.add((source, to, action))
            lines.append(f"    {source} --> {to}: {action}")
    lines += [f"    {state} --> [*]" for state in State if state in FINAL]
    return "\n".join(lines) + "\n"


def state_page() -> str:
    return (
        "# The committee's application states\n\n"
        "Generated from `access_committee/workflow.py` (`TRANSITIONS`) by "
        "`python -m access_committee.workflow`;\na test fails when this page is stale.\n\n"
        f"```mermaid\n{state_diagram()}```\n"
    )


if __name__ == "__main__":
    print(state_page(), end="")
