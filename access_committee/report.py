"""The committee report: applications by state, time to decision, open applications by age.

Read from the registry's committee tables (:mod:`sde.registry.committee`) for committee
members and administrators. What each figure means:

* **by state**: how many applications are in each state now (every state listed, zeros
  included, drafts too: a count names no one);
* **time to decision**: from an application's latest submission (``submitted_at``) to the
  committee's decision (``decided_at``), for applications whose current state is a decision
  (approved, approved with conditions, deferred, rejected); the median overall and per
  decision. A deferred application that is resubmitted leaves this figure until it is
  decided again (its submission is then the new one);
* **open**: applications with the committee (submitted or under review), oldest first,
  each with its age since submission, and counted in age bands.

>>> import datetime as dt
>>> median_days([dt.timedelta(days=1), dt.timedelta(days=4)])
2.5
>>> median_days([]) is None
True
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from access_committee.workflow import DECISIONS, IN_REVIEW, State
from sde.accounts.model import utc
from sde.registry.committee import Application
from sde.registry.projects import Membership, Project

#: Age bands of open applications: (label, up to this many days, exclusive).
AGE_BANDS: tuple[tuple[str, float], ...] = (
    ("under 1 week", 7),
    ("1 to 4 weeks", 28),
    ("4 to 12 weeks", 84),
    ("12 weeks or more", float("inf")),
)
DECIDED: tuple[State, ...] = tuple(DECISIONS.values())
#: Days before expiry from which members and the committee are warned (API and pages).
WARN_DAYS = 30


@dataclass(frozen=True)
class OpenApplication:
    id: int
    kind: str
    project: str
    state: str
    submitted_at: dt.datetime
    age_days: float


@dataclass(frozen=True)
class Report:
    """The report at ``at``; medians in days (``None`` when nothing was decided)."""

    at: dt.datetime
    by_state: dict[str, int]
    median_days: float | None
    median_days_by_decision: dict[str, float | None]
    decided: dict[str, int]
    open: list[OpenApplication] = field(default_factory=list)

    @property
    def open_by_age(self) -> dict[str, int]:
        bands = {label: 0 for label, _ in AGE_BANDS}
        for app in self.open:
            bands[band_of(app.age_days)] += 1
        return bands

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


def band_of(age_days: float) -> str:
    """The age band of an open application ``age_days`` old.

    >>> band_of(0.5), band_of(7), band_of(100)
    ('under 1 week', '1 to 4 weeks', '12 weeks or more')
    """
    return next(label for label, limit in AGE_BANDS if age_days < limit)


def median_days(spans: Sequence[dt.timedelta]) -> float | None:
    """The median of ``spans`` in days, or ``None`` for none."""
    if not spans:
        return None
    return statistics.median(s.total_seconds() for s in spans) / 86_400


def in_words(days: float | None) -> str:
    """A median time in words: days with one decimal, hours below a day.

    >>> in_words(None), in_words(0.01), in_words(0.25), in_words(2.5)
    ('-', 'under an hour', '6 hours', '2.5 days')
    """
    if days is None:
        return "-"
    hours = days * 24
    if hours < 1:
        return "under an hour"
    if days < 1:
        return f"{hours:.0f} hour{'s' * (round(hours) != 1)}"
    return f"{days:.1f} days"


def committee_report(session: Session, now: dt.datetime) -> Report:
    """The report from the registry's applications, as of ``now``."""
    rows = session.execute(
        select(
            Application.id,
            Application.kind,
            Application.project,
            Application.state,
            Application.submitted_at,
            Application.decided_at,
        )
    ).all()
    by_state = {state.value: 0 for state in State}
    spans: dict[str, list[dt.timedelta]] = {state.value: [] for state in DECIDED}
    still_open = []
    for app_id, kind, project, state, submitted, decided in rows:
        by_state[state] = by_state.get(state, 0) + 1
        if state in spans and submitted is not None and decided is not None:
            span = utc(decided) - utc(submitted)
            if span >= dt.timedelta(0):
                spans[state].append(span)
        elif State(state) in IN_REVIEW and submitted is not None:
            age = (utc(now) - utc(submitted)).total_seconds() / 86_400
            still_open.append(OpenApplication(app_id, kind, project, state, utc(submitted), age))
    every = [s for group in spans.values() for s in group]
    return Report(
        at=utc(now),
        by_state=by_state,
        median_days=median_days(every),
        median_days_by_decision={state: median_days(group) for state, group in spans.items()},
        decided={state: len(group) for state, group in spans.items()},
        open=sorted(still_open, key=lambda a: a.submitted_at),
    )


# -- expiry warnings ----------------------------------------------------------------------


def expiry_warning(slug: str, expires: dt.date | None, today: dt.date) -> str | None:
    """The warning for project ``slug`` expiring on ``expires``, when it is within
    :data:`WARN_DAYS` of ``today`` (the API's ``warnings`` and the pages' banner).

    >>> expiry_warning("htn", dt.date(2026, 1, 31), dt.date(2026, 1, 30))
    'project htn expires in 1 day (2026-01-31)'
    >>> expiry_warning("htn", dt.date(2026, 3, 31), dt.date(2026, 1, 30)) is None
    True
    """
    if expires is None or not 0 <= (expires - today).days <= WARN_DAYS:
        return None
    days = (expires - today).days
    return f"project {slug} expires in {days} day{'s' * (days != 1)} ({expires})"


def expiry_banners(session: Session, user: str, committee: bool, today: dt.date) -> list[str]:
    """Warnings for the active projects ``user`` is a member of (every active project for a
    committee member) that expire within :data:`WARN_DAYS`, soonest first."""
    query = select(Project.slug, Project.expires).where(
        Project.status == "active",
        Project.expires >= today,
        Project.expires <= today + dt.timedelta(days=WARN_DAYS),
    )
    if not committee:
        query = query.join(Membership, Membership.project == Project.slug).where(
            Membership.username == user
        )
    rows = session.execute(query.order_by(Project.expires, Project.slug)).all()
    return [w for slug, expires in rows if (w := expiry_warning(slug, expires, today))]
