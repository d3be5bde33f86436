"""Every action x every relation x every state, through the real workflow (service level)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from airlock.requests import Airlock
from airlock.workflow import Action, Relation, State, can
from sde.errors import AccessDenied, InvalidTransition, SDEError
from tests.airlock.truth_table import GUARDED, expected
from tests.airlock.world import ACTOR, TABLE, World, make_world

#: Actions that change nothing a later cell depends on (no state change, no file change).
READS = {Action.VIEW, Action.VIEW_FILE, Action.DOWNLOAD, Action.COMMENT}


def _review(a: Airlock, user: str, rid: int) -> object:
    for name in ("by-decile.csv", "figure.png"):
        with contextlib.suppress(SDEError):  # the review below says why
            a.vote(user, rid, "tables", name, "approve")
    return a.review(user, rid)


ATTEMPT: dict[Action, Callable[[Airlock, str, int], object]] = {
    Action.VIEW: lambda a, u, r: a.get(u, r),
    Action.VIEW_FILE: lambda a, u, r: a.read_file(u, r, "tables", "by-decile.csv"),
    Action.ADD_FILE: lambda a, u, r: a.add_file(u, r, "tables", "extra.csv", TABLE),
    Action.DELETE_FILE: lambda a, u, r: a.delete_file(u, r, "tables", "figure.png"),
    Action.EDIT_GROUP: lambda a, u, r: a.edit_group(u, r, "tables", context="new", controls=None),
    Action.SUBMIT: lambda a, u, r: a.submit(u, r),
    Action.WITHDRAW: lambda a, u, r: a.withdraw(u, r),
    Action.VOTE: lambda a, u, r: a.vote(u, r, "tables", "by-decile.csv", "approve"),
    Action.REVIEW: _review,
    Action.COMMENT: lambda a, u, r: a.comment(u, r, "a question", visibility="public"),
    Action.RETURN: lambda a, u, r: a.return_request(u, r, "please round to 5"),
    Action.REJECT: lambda a, u, r: a.reject(u, r, "cannot leave"),
    Action.RELEASE: lambda a, u, r: a.release(u, r),
    Action.DOWNLOAD: lambda a, u, r: a.read_file(u, r, "tables", "by-decile.csv", download=True),
}


def outcome(action: Action, world: World, user: str, rid: int) -> str:
    try:
        ATTEMPT[action](world.airlock, user, rid)
    except AccessDenied as err:
        return "404" if err.rule == "airlock.unknown" else "403"
    except InvalidTransition:
        return "409"
    return "ok"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("airlock"))


@pytest.mark.parametrize("state", list(State))
def test_every_cell_of_the_truth_table(world: World, state: State) -> None:
    rid = world.reach(state)
    wrong = []
    for action in Action:
        cells = {relation: expected(action, relation, state) for relation in Relation}
        # Refusals first: they change nothing. Then what is allowed, on a fresh request
        # when it changes the request.
        for relation in sorted(cells, key=lambda r: cells[r] == "ok"):
            target = rid
            if cells[relation] == "ok" and action not in READS:
                target = world.reach(state)
            got = outcome(action, world, ACTOR[relation], target)
            if got != cells[relation]:
                wrong.append(
                    f"{action} by {relation} in {state}: {got}, expected {cells[relation]}"
                )
        if any(cells[r] == "ok" for r in cells) and action not in READS:
            rid = world.reach(state)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("relation", list(Relation))
def test_the_workflow_table_agrees_with_the_written_one(state: State, relation: Relation) -> None:
    for action in Action:
        if (action, relation, state) not in GUARDED:
            allowed = expected(action, relation, state) == "ok"
            assert can(action, relation, state) == allowed, (action, relation, state)
