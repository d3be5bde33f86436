"""The airlock's rules beyond the truth table: blind reviews, conflicts, turns, the risk
tier, identifiers, project status, the audit trail and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.workflow import State
from sde.accounts import add_member, change_status, create_project
from sde.audit import AuditLog
from sde.errors import AccessDenied, DisclosureRisk, InvalidTransition
from tests.airlock.world import TABLE, World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _votes(world: World, viewer: str, rid: int) -> set[tuple[str, str]]:
    return {(v["reviewer"], v["vote"]) for v in world.airlock.get(viewer, rid)["votes"]}


def test_reviews_are_blind_until_both_are_in(world: World) -> None:
    rid = world.reach(State.SUBMITTED)
    world.vote_all("olu", rid, "approve")
    world.vote_all("pia", rid, "request_changes")
    assert _votes(world, "pia", rid) == {("pia", "request_changes")}
    world.airlock.comment("olu", rid, "looks fine", visibility="private")
    assert not world.airlock.get("pia", rid)["comments"]
    world.airlock.review("olu", rid)
    assert _votes(world, "pia", rid) == {("pia", "request_changes")}  # still blind
    assert _votes(world, "olu", rid) == {("olu", "approve")}
    world.airlock.review("pia", rid)
    both = {("olu", "approve"), ("pia", "request_changes")}
    assert _votes(world, "pia", rid) == both
    assert _votes(world, "olu", rid) == both
    assert [c["text"] for c in world.airlock.get("pia", rid)["comments"]] == ["looks fine"]
    author = world.airlock.get("ada", rid)
    assert author["votes"] == []
    assert author["comments"] == []  # private, and the turn is not over for ada
    decisions = {f["name"]: f["decision"] for f in author["groups"][0]["files"]}
    assert decisions["by-decile.csv"] == "conflicted"


def test_a_third_checker_settles_a_conflict(world: World) -> None:
    rid = world.reach(State.SUBMITTED)
    world.vote_all("olu", rid, "approve")
    world.airlock.review("olu", rid)
    world.vote_all("pia", rid, "request_changes")
    world.airlock.review("pia", rid)
    with pytest.raises(InvalidTransition, match="submitted your review"):
        world.airlock.vote("olu", rid, "tables", "by-decile.csv", "request_changes")
    with pytest.raises(InvalidTransition, match="not every output file is approved"):
        world.airlock.release("olu", rid)
    world.vote_all("raj", rid, "approve")
    after = world.airlock.review("raj", rid)
    assert after["state"] == "reviewed"
    files = {f["name"]: f["decision"] for f in after["groups"][0]["files"]}
    assert files == {"by-decile.csv": "approved", "figure.png": "approved", "notes.txt": None}
    assert world.airlock.release("olu", rid)["state"] == "released"


def test_a_return_starts_a_new_turn_reviewed_afresh(world: World) -> None:
    rid = world.reach(State.RETURNED)
    seen = world.airlock.get("ada", rid)
    assert [c["text"] for c in seen["comments"]] == ["Please round the counts to 5."]
    world.airlock.add_file("ada", rid, "tables", "by-decile.csv", b"decile,persons\n1,120\n2,135\n")
    again = world.airlock.submit("ada", rid)
    assert (again["state"], again["turn"]) == ("submitted", 2)
    assert {f["decision"] for f in again["groups"][0]["files"] if f["kind"] == "output"} == {
        "incomplete"
    }
    world.vote_all("olu", rid)
    world.airlock.review("olu", rid)  # olu reviewed turn 1 too: each turn is its own
    assert world.airlock.get("olu", rid)["state"] == "partially_reviewed"


def test_members_never_review_their_own_project(world: World) -> None:
    rid = world.reach(State.SUBMITTED)
    with pytest.raises(AccessDenied) as hidden:
        world.airlock.vote("ben", rid, "tables", "by-decile.csv", "approve")  # member + checker
    assert hidden.value.rule == "airlock.unknown"
    with pytest.raises(AccessDenied) as author:
        world.airlock.review("ada", rid)
    assert author.value.rule == "airlock.not-permitted"


def test_one_review_where_the_project_allows_it_and_every_check_passes(world: World) -> None:
    create_project(
        world.store,
        "tests",
        "lowrisk",
        title="Low risk",
        scope={
            "project": "lowrisk",
            "access": "rows",
            "tables": {"person": "*"},
            "sdc": {"threshold": 10, "single_review": True},
            "expires": "2099-01-01",
        },
    )
    add_member(world.store, "tests", "lowrisk", "ada")
    rid = world.airlock.create("ada", "lowrisk")["id"]
    world.airlock.add_file("ada", rid, "t", "counts.csv", TABLE)
    world.airlock.edit_group("ada", rid, "t", context="c", controls="k")
    submitted = world.airlock.submit("ada", rid)
    checks = submitted["groups"][0]["files"][0]["checks"]["status"]
    assert checks == "pass", submitted
    assert submitted["reviews_needed"] == 1
    world.airlock.vote("olu", rid, "t", "counts.csv", "approve")
    assert world.airlock.review("olu", rid)["state"] == "reviewed"
    assert world.airlock.release("pia", rid)["state"] == "released"


def test_two_reviews_when_a_check_does_not_pass(world: World) -> None:
    rid = world.reach(State.DRAFT)
    world.airlock.add_file("ada", rid, "tables", "small.csv", b"decile,persons\n1,3\n2,140\n")
    submitted = world.airlock.submit("ada", rid)
    small = next(f for f in submitted["groups"][0]["files"] if f["name"] == "small.csv")
    assert small["checks"]["status"] == "fail"
    assert submitted["reviews_needed"] == 2


def test_identifiers_block_submission_and_change_nothing(world: World) -> None:
    rid = world.reach(State.DRAFT)
    world.airlock.add_file("ada", rid, "tables", "people.csv", b"person_id,decile\n1,3\n2,4\n")
    with pytest.raises(DisclosureRisk) as blocked:
        world.airlock.submit("ada", rid)
    assert blocked.value.rule == "airlock.identifiers"
    assert "people.csv" in blocked.value.message
    after = world.airlock.get("ada", rid)
    assert after["state"] == "draft"
    assert {f["checks"]["status"] for f in after["groups"][0]["files"]} == {"none"}


def test_a_suspended_project_stops_the_airlock_at_once(world: World) -> None:
    rid = world.reach(State.REVIEWED)
    draft_owner = world.airlock.get("ada", rid)
    assert draft_owner["state"] == "reviewed"
    change_status(world.store, "tests", "htn", "suspend", "ethics review")
    with pytest.raises(AccessDenied) as author:
        world.airlock.get("ada", rid)
    assert author.value.rule == "access.suspended"
    with pytest.raises(AccessDenied) as release:
        world.airlock.release("olu", rid)
    assert release.value.rule == "access.suspended"
    assert world.airlock.get("olu", rid)["state"] == "reviewed"  # checkers still see it
    assert world.airlock.reject("olu", rid, "project suspended")["state"] == "rejected"


def test_every_action_and_refusal_is_in_the_audit_trail(world: World) -> None:
    rid = world.reach(State.RELEASED)
    world.airlock.read_file("ada", rid, "tables", "by-decile.csv", download=True)
    with pytest.raises(AccessDenied):
        world.airlock.get("tom", rid)
    log = AuditLog(world.store.engine)
    entries = [e for e in log.entries("htn") if e.object == f"airlock-request:{rid}"]
    events = [e.action for e in entries if e.outcome == "ok"]
    for event in (
        "airlock.request.create",
        "airlock.file.add",
        "airlock.group.edit",
        "airlock.request.submit",
        "airlock.file.vote",
        "airlock.request.review",
        "airlock.request.release",
        "airlock.file.download",
    ):
        assert event in events, event
    refused = [e for e in log.entries() if e.outcome == "refused" and e.user == "tom"]
    assert refused
    assert refused[-1].rule == "airlock.unknown"
    assert log.verify().ok


CRASH = """
import os, signal, sys
from pathlib import Path
from airlock.requests import Ctx
from tests.airlock.world import make_world_on

world = make_world_on(Path(sys.argv[1]))
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
Ctx.move = die
world.airlock.submit("ada", int(sys.argv[2]))
"""


def test_a_submission_killed_half_way_leaves_the_request_as_it_was(
    world: World, tmp_path: Path
) -> None:
    rid = world.reach(State.DRAFT)
    before = world.airlock.get("ada", rid)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path), str(rid)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    after = world.airlock.get("ada", rid)
    assert after["state"] == "draft"
    assert after["groups"] == before["groups"]  # no check status half-written
    assert world.airlock.submit("ada", rid)["state"] == "submitted"
