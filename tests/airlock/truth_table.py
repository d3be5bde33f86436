"""The airlock's permission truth table, written out by hand (not read from the workflow).

:data:`ALLOWED` says in which states each relation may take each action; every other cell
is refused. How it is refused follows: a request the relation cannot see answers as a
missing one (404); a relation that may never take the action is refused (403); one that may,
but not in this state, is told the state is wrong (409). The service test
(``test_truth_table.py``) and the HTTP test check every cell.
"""

from __future__ import annotations

from airlock.workflow import Action, Relation, State

ALL = " ".join(s.value for s in State)
SUBMITTED_ONCE = " ".join(s.value for s in State if s is not State.DRAFT)
EDITABLE = "draft returned"

ALLOWED: dict[Action, dict[Relation, str]] = {
    Action.VIEW: {
        Relation.AUTHOR: ALL,
        Relation.CHECKER: SUBMITTED_ONCE,
        Relation.ADMIN: SUBMITTED_ONCE,
    },
    Action.VIEW_FILE: {Relation.AUTHOR: "released", Relation.CHECKER: SUBMITTED_ONCE},
    Action.ADD_FILE: {Relation.AUTHOR: EDITABLE},
    Action.DELETE_FILE: {Relation.AUTHOR: EDITABLE},
    Action.EDIT_GROUP: {Relation.AUTHOR: EDITABLE},
    Action.SUBMIT: {Relation.AUTHOR: EDITABLE},
    Action.WITHDRAW: {Relation.AUTHOR: EDITABLE},
    Action.VOTE: {Relation.CHECKER: "submitted partially_reviewed"},
    Action.REVIEW: {Relation.CHECKER: "submitted partially_reviewed"},
    Action.COMMENT: {
        Relation.AUTHOR: "draft submitted partially_reviewed reviewed returned approved",
        Relation.CHECKER: "submitted partially_reviewed reviewed returned",
    },
    Action.RETURN: {Relation.CHECKER: "submitted partially_reviewed reviewed"},
    Action.REJECT: {Relation.CHECKER: "reviewed"},
    Action.RELEASE: {Relation.CHECKER: "reviewed approved"},
    Action.DOWNLOAD: {Relation.AUTHOR: "released"},
}
#: Who sees a request in which states (everyone else gets "it does not exist").
SEES: dict[Relation, str] = {
    Relation.AUTHOR: ALL,
    Relation.CHECKER: SUBMITTED_ONCE,
    Relation.ADMIN: SUBMITTED_ONCE,
}
#: Cells the workflow table allows but a rule on votes refuses for the table's request,
#: whose files both checkers approved (a third vote is only for a conflicted file).
GUARDED: set[tuple[Action, Relation, State]] = {
    (Action.VOTE, Relation.CHECKER, State.REVIEWED),
    (Action.REVIEW, Relation.CHECKER, State.REVIEWED),
}


def expected(action: Action, relation: Relation, state: State) -> str:
    """``ok``, ``404``, ``403`` or ``409`` for one cell."""
    if state.value not in SEES.get(relation, "").split():
        return "404"
    allowed = ALLOWED[action]
    if state.value in allowed.get(relation, "").split():
        return "ok"
    return "409" if relation in allowed else "403"
