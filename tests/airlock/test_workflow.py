"""The workflow table itself: its diagram is current, and it is consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.workflow import (
    EVENTS,
    FINAL,
    OWNERS,
    PERMISSIONS,
    TRANSITIONS,
    Action,
    Relation,
    State,
    can,
    check_can,
    state_page,
    targets,
)
from sde.errors import AccessDenied, InvalidTransition

DOCS = Path(__file__).resolve().parents[2] / "docs" / "airlock-states.md"


def test_the_state_diagram_in_the_docs_is_current() -> None:
    assert DOCS.read_text() == state_page(), (
        "stale: python -m airlock.workflow > docs/airlock-states.md"
    )


def test_every_action_has_an_audit_event_and_a_permission_row() -> None:
    assert set(EVENTS) == set(Action)
    assert set(PERMISSIONS) == set(Action)
    assert len(set(EVENTS.values())) == len(EVENTS)
    assert set(OWNERS) == set(State)


def test_final_states_have_no_way_out_and_no_owner() -> None:
    for action, source, _ in TRANSITIONS:
        assert source not in FINAL, (action, source)
    for state in FINAL:
        assert not OWNERS[state]


def test_every_state_is_reachable_from_a_draft() -> None:
    reached, frontier = {State.DRAFT}, [State.DRAFT]
    while frontier:
        state = frontier.pop()
        for action in Action:
            for to in targets(action, state) - reached:
                reached.add(to)
                frontier.append(to)
    assert reached == set(State)


def test_a_move_is_permitted_to_someone_in_its_source_state() -> None:
    for action, source, _ in TRANSITIONS:
        assert any(can(action, r, source) for r in Relation), (action, source)


def test_refusals_name_the_rule_the_state_and_the_action() -> None:
    with pytest.raises(InvalidTransition) as wrong_state:
        check_can(Action.RELEASE, Relation.CHECKER, State.SUBMITTED)
    assert wrong_state.value.rule == "airlock.invalid-transition"
    assert "submitted" in wrong_state.value.message
    assert "released" in wrong_state.value.message
    with pytest.raises(AccessDenied) as never:
        check_can(Action.VOTE, Relation.AUTHOR, State.SUBMITTED)
    assert never.value.rule == "airlock.not-permitted"
    assert "author" in never.value.message
