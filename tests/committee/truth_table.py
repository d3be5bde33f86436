"""The committee's permission truth table, written by hand (role x action x state)."""

from __future__ import annotations

from access_committee.workflow import Action, Relation, State

ALL = " ".join(s.value for s in State)
SUBMITTED_ONCE = " ".join(s.value for s in State if s is not State.DRAFT)
IN_REVIEW = "submitted under_review"

ALLOWED: dict[Action, dict[Relation, str]] = {
    Action.VIEW: {
        Relation.APPLICANT: ALL,
        Relation.MEMBER: ALL,
        Relation.COMMITTEE: SUBMITTED_ONCE,
        Relation.CUSTODIAN: SUBMITTED_ONCE,
        Relation.ADMIN: SUBMITTED_ONCE,
    },
    Action.EDIT: {Relation.APPLICANT: "draft deferred"},
    Action.SUBMIT: {Relation.APPLICANT: "draft deferred"},
    Action.WITHDRAW: {Relation.APPLICANT: "draft submitted under_review deferred"},
    Action.DECLARE: {Relation.COMMITTEE: IN_REVIEW},
    Action.VOTE: {Relation.COMMITTEE: IN_REVIEW},
    Action.NODE_DECISION: {Relation.CUSTODIAN: IN_REVIEW},
}


def expected(action: Action, relation: Relation, state: State) -> str:
    if state.value not in ALLOWED[Action.VIEW].get(relation, "").split():
        return "404"
    allowed = ALLOWED[action]
    if state.value in allowed.get(relation, "").split():
        return "ok"
    return "409" if relation in allowed else "403"
