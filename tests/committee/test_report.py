"""The committee report: counts by state, median time to decision, open applications by age.

Applications are taken through the real committee with a clock the test moves, so every
submission and decision happens at a time the test knows; the expected medians are worked
out here from those times, not by the report's code.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from access_committee.applications import Committee
from access_committee.report import Report, committee_report, expiry_banners
from sde.accounts import change_status
from tests.committee.http import committee_client, page
from tests.committee.world import World, fields, make_world

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clocked(tmp_path: Path) -> tuple[World, Clock]:
    world = make_world(tmp_path)
    clock = Clock()
    return World(world.store, Committee(world.store, quorum=3, clock=clock)), clock


def _submit(world: World, clock: Clock, at: dt.datetime, slug: str) -> int:
    clock.now = at
    app = world.committee.create("ada", fields(slug))
    world.committee.submit("ada", app["id"])
    return int(app["id"])


def _decide(world: World, clock: Clock, app_id: int, at: dt.datetime, vote: str) -> None:
    clock.now = at
    if vote == "approve":
        world.approve(app_id)
    elif vote == "approve_with_conditions":
        world.approve(app_id, conditions="Publish the code")
    else:
        for member in ("kim", "lee", "max"):
            world.committee.declare(member, app_id, conflict=False)
            world.committee.vote(member, app_id, vote)


def _report(world: World, at: dt.datetime) -> Report:
    with world.store.read() as session:
        return committee_report(session, at)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def test_counts_medians_and_open_applications(clocked: tuple[World, Clock]) -> None:
    world, clock = clocked
    # (submitted after T0, decided after T0, decision): spans of 2, 5, 2.5, 10 and 1 days
    plan = [
        (0 * DAY, 2 * DAY, "approve"),
        (1 * DAY, 6 * DAY, "approve"),
        (2 * DAY, 4.5 * DAY, "approve_with_conditions"),
        (3 * DAY, 13 * DAY, "defer"),
        (4 * DAY, 5 * DAY, "reject"),
    ]
    for i, (submitted, decided, vote) in enumerate(plan):
        _decide(
            world, clock, _submit(world, clock, T0 + submitted, f"done-{i}"), T0 + decided, vote
        )
    now = T0 + 60 * DAY
    waiting = _submit(world, clock, now - 3 * DAY, "wait-a")  # submitted
    reviewed = _submit(world, clock, now - 40 * DAY, "wait-b")
    clock.now = now - 39 * DAY
    world.committee.declare("kim", reviewed, conflict=False)  # under review
    world.committee.create("ada", fields("draft-1"))
    gone = _submit(world, clock, now - DAY, "gone")
    world.committee.withdraw("ada", gone)

    report = _report(world, now)

    assert report.by_state == {
        "draft": 1,
        "submitted": 1,
        "under_review": 1,
        "approved": 2,
        "approved_with_conditions": 1,
        "deferred": 1,
        "rejected": 1,
        "withdrawn": 1,
    }
    assert report.total == 9
    spans: dict[str, list[float]] = {
        v: [] for v in ("approve", "approve_with_conditions", "defer", "reject")
    }
    for submitted, decided, vote in plan:
        spans[vote].append((decided - submitted) / DAY)
    every = [d for group in spans.values() for d in group]
    assert report.median_days == pytest.approx(_median(every)) == pytest.approx(2.5)
    assert report.median_days_by_decision == pytest.approx(
        {
            "approved": _median(spans["approve"]),
            "approved_with_conditions": _median(spans["approve_with_conditions"]),
            "deferred": _median(spans["defer"]),
            "rejected": _median(spans["reject"]),
        }
    )
    assert report.decided == {
        "approved": 2,
        "approved_with_conditions": 1,
        "deferred": 1,
        "rejected": 1,
    }
    assert [(a.id, a.state) for a in report.open] == [
        (reviewed, "under_review"),
        (waiting, "submitted"),
    ]
    assert [round(a.age_days, 6) for a in report.open] == [40, 3]
    assert report.open_by_age == {
        "under 1 week": 1,
        "1 to 4 weeks": 0,
        "4 to 12 weeks": 1,
        "12 weeks or more": 0,
    }


def test_a_resubmitted_deferral_counts_from_its_new_submission(
    clocked: tuple[World, Clock],
) -> None:
    world, clock = clocked
    app_id = _submit(world, clock, T0, "again")
    _decide(world, clock, app_id, T0 + 4 * DAY, "defer")
    clock.now = T0 + 20 * DAY
    world.committee.submit("ada", app_id)  # back with the committee: open, not decided
    report = _report(world, T0 + 21 * DAY)
    assert report.median_days is None
    assert report.decided["deferred"] == 0
    assert [(a.id, round(a.age_days, 6)) for a in report.open] == [(app_id, 1)]
    _decide(world, clock, app_id, T0 + 27 * DAY, "approve")  # round 2: 7 days
    report = _report(world, T0 + 30 * DAY)
    assert report.median_days == pytest.approx(7)
    assert report.median_days_by_decision["approved"] == pytest.approx(7)
    assert report.open == []


def test_an_empty_registry_has_a_report_of_zeros(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    report = _report(world, T0)
    assert set(report.by_state.values()) == {0}
    assert report.median_days is None
    assert set(report.median_days_by_decision.values()) == {None}
    assert report.open == []


@pytest.mark.parametrize(
    ("who", "status"), [("kim", 200), ("sam", 200), ("ada", 404), ("nia", 404)]
)
def test_the_report_page_is_for_the_committee_and_admins(
    clocked: tuple[World, Clock], who: str, status: int
) -> None:
    world, clock = clocked
    _decide(world, clock, _submit(world, clock, T0, "shown"), T0 + 3 * DAY, "reject")
    waiting = _submit(world, clock, T0 + 4 * DAY, "waiting")
    clock.now = T0 + 10 * DAY
    with committee_client(world) as client:
        answer = page(client, who, "report")
    assert answer.status_code == status
    if status == 404:
        assert "[pages.not-found]" in answer.text
        return
    text = answer.text
    assert re.search(
        r"<td>rejected</td><td class=\"num\">1</td><td class=\"num\">3.0 days</td>", text
    )
    assert re.search(
        r"All decisions</th><td class=\"num\">1</td><td class=\"num\">3.0 days</td>", text
    )
    assert f'applications/{waiting}">#{waiting}</a>' in text
    assert '<td class="num">6</td></tr>' in text  # six days open


def _approved(world: World, slug: str, expires: dt.date, pi: str = "ada") -> str:
    app = world.committee.create(pi, fields(slug, pi=pi, expires=expires.isoformat()))
    world.committee.submit(pi, app["id"])
    assert world.approve(app["id"])["state"] == "approved"
    return slug


def test_expiry_banners_for_members_and_the_committee(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    today = dt.datetime.now(dt.UTC).date()
    soon = _approved(world, "soon", today + 10 * DAY)
    _approved(world, "later", today + 31 * DAY)
    edge = _approved(world, "edge", today + 30 * DAY, pi="tom")
    paused = _approved(world, "paused", today + 5 * DAY)
    change_status(world.store, "sam", paused, "suspend", "ethics")

    def banners(user: str, committee: bool) -> list[str]:
        with world.store.read() as session:
            return expiry_banners(session, user, committee, today)

    def expected(slug: str, days: int) -> str:
        return f"project {slug} expires in {days} days ({today + days * DAY})"

    assert banners("ada", committee=False) == [expected(soon, 10)]
    assert banners("ben", committee=False) == [expected(soon, 10), expected(edge, 30)]
    assert banners("kim", committee=True) == [expected(soon, 10), expected(edge, 30)]
    assert banners("una", committee=False) == []


def test_the_report_page_warns_of_projects_near_expiry(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    today = dt.datetime.now(dt.UTC).date()  # the committee's clock is UTC
    soon = _approved(world, "soon", today + 12 * DAY)
    _approved(world, "later", today + 90 * DAY)
    with committee_client(world) as client:
        text = page(client, "kim", "report").text
    banners = re.findall(r'<div class="banner"[^>]*><p>(.*?)</p></div>', text)
    assert banners == [
        f"<strong>Warning:</strong> project {soon} expires in 12 days ({today + 12 * DAY})"
    ]
