"""Vectorised helpers for placing events in time, and the book of visits events link to."""

from __future__ import annotations

import numpy as np

from sde.omop.synth import params

#: Reference meaning "no visit".
NO_VISIT = -1


def poisson_days(
    rng: np.random.Generator, rate: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Events at ``rate`` per year, uniformly between days ``lo`` and ``hi`` (inclusive)
    of each person. Returns the owner (person index) and the day of every event."""
    span = np.maximum(hi - lo + 1, 0)
    counts = rng.poisson(np.maximum(rate, 0.0) * span / params.YEAR)
    return scatter(rng, counts, lo, span)


def scatter(
    rng: np.random.Generator, counts: np.ndarray, lo: np.ndarray, span: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[i]`` uniform days in ``[lo[i], lo[i] + span[i])`` for each person ``i``."""
    owner = np.repeat(np.arange(len(counts)), counts)
    days = lo[owner] + np.floor(rng.random(len(owner)) * span[owner]).astype(np.int64)
    return owner, days


def repeats(
    owner: np.ndarray, first: np.ndarray, last: np.ndarray, interval: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regular events every ``interval`` days from ``first`` while not after ``last``.

    Returns the owner, the day and the sequence number (0 for the first) of each.
    """
    n = np.where(last >= first, (last - first) // interval + 1, 0)
    rows = np.repeat(np.arange(len(owner)), n)
    seq = np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)
    return owner[rows], first[rows] + seq * interval[rows], seq


class VisitBook:
    """Visits collected from every module of a chunk; events refer to them by the
    reference :meth:`add` returns, translated to final ids by :meth:`finish`."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._size = 0

    def add(
        self,
        owner: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        concept: int | np.ndarray,
        care_site: int | np.ndarray,
    ) -> np.ndarray:
        """Record visits; returns their references."""
        n = len(owner)
        self._parts.append(
            (
                owner.astype(np.int64),
                start.astype(np.int64),
                end.astype(np.int64),
                np.broadcast_to(np.asarray(concept, dtype=np.int64), (n,)),
                np.broadcast_to(np.asarray(care_site, dtype=np.int64), (n,)),
            )
        )
        refs = np.arange(self._size, self._size + n, dtype=np.int64)
        self._size += n
        return refs

    def finish(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The visits ordered by person, start day and concept, and the map from
        reference to local visit index (position in that order)."""
        if self._parts:
            cols = [np.concatenate(c) for c in zip(*self._parts, strict=True)]
        else:
            cols = [np.zeros(0, dtype=np.int64) for _ in range(5)]
        owner, start, end, concept, care_site = cols
        order = np.lexsort((concept, start, owner))
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        visits = {
            "owner": owner[order],
            "start": start[order],
            "end": end[order],
            "concept": concept[order],
            "care_site": care_site[order],
        }
        return visits, position


def remap(refs: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Translate visit references to local visit indices, keeping NO_VISIT."""
    return np.where(refs >= 0, position[np.maximum(refs, 0)], NO_VISIT)
