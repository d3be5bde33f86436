"""OpenDP measurements, each built before any data is read so that it can say what it costs.

A thin wrapper: every mechanism here is an OpenDP 0.16 ``Measurement``; its privacy cost is
OpenDP's own privacy map at the sensitivity we declare, and the noise is OpenDP's sampler.
We never add noise ourselves. Each class carries the short argument for why its release
is private, in terms of the *person* (all of their rows after truncation).

Sensitivities are stated as OpenDP distances: ``l1``/``l2`` for vectors of cells, ``(l0,
l1, linf)`` for maps of counts, ``linf`` for vectors of quantile scores.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp

dp.enable_features("contrib")

_I64 = "i64"


@dataclass(frozen=True)
class Spend:
    """What one mechanism costs and how it noises: enough to state accuracy afterwards."""

    mechanism: str
    scale: float
    epsilon: float
    delta: float = 0.0
    rho: float = 0.0
    threshold: int | None = None


def _fit(
    make: Callable[[float], Any],
    d_in: Any,
    budget: float,
    guess: float,
    cost: Callable[[Any], float] = float,
) -> tuple[Any, float]:
    """The measurement at (about) the smallest scale whose OpenDP map fits ``budget``.

    OpenDP's maps round conservatively, so ``d_in / budget`` can map a hair above budget:
    step the scale up until the map fits, then fall back to OpenDP's own binary search.
    """
    scale = guess
    for _ in range(8):
        m = make(scale)
        if cost(m.map(d_in)) <= budget:
            return m, scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    scale = dp.binary_search(lambda s: cost(make(s).map(d_in)) <= budget, T=float)
    return make(scale), scale


class VectorLaplace:
    """Discrete Laplace noise on a vector of integer cell totals.

    Privacy: after truncation a person adds at most ``linf`` to each of at most ``l0`` cells,
    so the vector's L1 distance between neighbouring datasets is at most ``l1 = l0 * linf``;
    ``make_laplace`` with scale ``b`` is ``(l1 / b)``-DP for that distance (OpenDP's map).
    Totals are integers (values were rounded to a grid before summing), so no floating-point
    summation error can exceed the declared sensitivity.
    """

    def __init__(self, l1: int, epsilon: float) -> None:
        self.l1 = int(l1)
        space = dp.vector_domain(dp.atom_domain(T=_I64)), dp.l1_distance(T=_I64)
        self.meas, self.scale = _fit(
            lambda s: dp.m.make_laplace(*space, scale=s), self.l1, epsilon, self.l1 / epsilon
        )
        self.spend = Spend("discrete_laplace", self.scale, float(self.meas.map(self.l1)))

    def __call__(self, values: Sequence[int]) -> np.ndarray:
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.meas([int(v) for v in values]), dtype=np.int64)


class VectorGaussian:
    """Discrete Gaussian noise on a vector of integer cell totals, accounted in zCDP.

    Privacy: the vector's L2 distance is at most ``l2 = sqrt(l0) * linf``; ``make_gaussian``
    with scale ``s`` is ``(l2^2 / 2s^2)``-zCDP (OpenDP's map). Helps when a person touches
    many cells (L2 grows as sqrt(l0), L1 as l0). The rho of every Gaussian in a query is
    summed and converted once to (epsilon, delta) by :func:`zcdp_to_approx`.
    """

    def __init__(self, l2: float, rho: float) -> None:
        self.l2 = float(l2)
        space = dp.vector_domain(dp.atom_domain(T=_I64)), dp.l2_distance(T=float)
        self.meas, self.scale = _fit(
            lambda s: dp.m.make_gaussian(*space, scale=s),
            self.l2,
            rho,
            self.l2 / math.sqrt(2 * rho),
        )
        self.spend = Spend("discrete_gaussian", self.scale, 0.0, rho=float(self.meas.map(self.l2)))

    def __call__(self, values: Sequence[int]) -> np.ndarray:
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.meas([int(v) for v in values]), dtype=np.int64)


def _rho_probe(delta: float) -> Callable[[float], Any]:
    """An OpenDP measurement whose map at ``sqrt(2 rho)`` is rho, converted to (eps, delta)."""
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    return lambda _: dp.c.make_fix_delta(
        dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=1.0)), delta
    )


@functools.lru_cache(maxsize=1024)
def zcdp_to_approx(rho: float, delta: float) -> float:
    """Epsilon of rho-zCDP at ``delta``, by OpenDP's conversion."""
    m = _rho_probe(delta)(1.0)
    eps, _ = m.map(math.sqrt(2 * rho))
    return float(eps)


@functools.lru_cache(maxsize=1024)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho whose OpenDP conversion at ``delta`` costs at most ``epsilon``."""
    return float(
        dp.binary_search(
            lambda r: r <= 0 or zcdp_to_approx(r, delta) <= epsilon,
            bounds=(0.0, max(epsilon, 1.0) * 10),
            T=float,
        )
    )


class Threshold:
    """Noisy counts per key with keys released only above a noisy threshold.

    Privacy: for keys not known in advance the key set itself is private. After truncation a
    person is in at most ``l0`` groups and adds at most ``linf`` to each, so the map of person
    counts moves by ``(l0, l0 * linf, linf)``; ``make_laplace_threshold`` is
    ``(l1 / b, delta)``-DP for that distance, where delta bounds the chance that a key held
    by one person alone survives the threshold (OpenDP's map; Rogers 2023).
    """

    def __init__(self, l0: int, linf: int, epsilon: float, delta: float) -> None:
        self.d_in = (int(l0), int(l0) * int(linf), int(linf))
        self._space = (
            dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_I64)),
            dp.l01inf_distance(dp.absolute_distance(T=_I64)),
        )
        probe, self.scale = _fit(
            lambda s: dp.m.make_laplace_threshold(*self._space, scale=s, threshold=2**40),
            self.d_in,
            epsilon,
            self.d_in[1] / epsilon,
            cost=lambda ed: ed[0],
        )
        del probe
        self.threshold = int(
            dp.binary_search(
                lambda t: self._make(int(t)).map(self.d_in)[1] <= delta,
                bounds=(1, 2**31 - 1),
                T=int,
            )
        )
        self.meas = self._make(self.threshold)
        eps, dlt = self.meas.map(self.d_in)
        self.spend = Spend(
            "laplace_threshold", self.scale, float(eps), float(dlt), threshold=self.threshold
        )

    def _make(self, threshold: int) -> Any:
        return dp.m.make_laplace_threshold(*self._space, scale=self.scale, threshold=threshold)

    def __call__(self, counts: Mapping[str, int]) -> dict[str, int]:
        if not counts:
            return {}
        return {k: int(v) for k, v in self.meas({k: int(v) for k, v in counts.items()}).items()}


class QuantileSelect:
    """Pick a candidate per cell by report-noisy-max on OpenDP's quantile scores.

    Scores (one per candidate c) are ``|(d - n) * #(x < c) - n * #(x > c)|`` for the quantile
    ``n/d``: the same scores as OpenDP's ``make_quantile_score_candidates`` (the tests check
    it on the same data), computed from a histogram on the candidate grid so that the engine
    returns counts, not rows. Privacy: a person adds at most ``rows`` values to a cell, each
    moving every score by at most ``max(n, d - n)``, so scores move by at most
    ``linf = rows * max(n, d - n)``; ``make_noisy_max`` (Gumbel) is ``2 linf / b``-DP for
    that distance (OpenDP's map; the same as ``make_private_quantile``). A person is in at
    most ``groups`` cells, so the query pays ``groups`` times one cell's epsilon.
    """

    def __init__(self, q: float, rows: int, epsilon_per_cell: float) -> None:
        from fractions import Fraction

        frac = Fraction(q).limit_denominator(1000)
        self.num, self.den = frac.numerator, frac.denominator
        self.linf = int(rows) * max(self.num, self.den - self.num)
        space = dp.vector_domain(dp.atom_domain(T="u64")), dp.linf_distance(T="u64")
        self.meas, self.scale = _fit(
            lambda s: dp.m.make_noisy_max(*space, dp.max_divergence(), scale=s, negate=True),
            self.linf,
            epsilon_per_cell,
            2 * self.linf / epsilon_per_cell,
        )
        self.spend = Spend("noisy_max", self.scale, float(self.meas.map(self.linf)))

    def scores(self, histogram: np.ndarray) -> np.ndarray:
        """Scores of every candidate from counts of values snapped down onto the grid."""
        h = np.asarray(histogram, dtype=np.int64)
        below = np.concatenate(([0], np.cumsum(h)[:-1]))
        above = h.sum() - below - h
        return np.abs((self.den - self.num) * below - self.num * above)

    def __call__(self, histogram: np.ndarray) -> int:
        return int(self.meas([int(s) for s in self.scores(histogram)]))


# -- built once per parameters ---------------------------------------------------------------
# A measurement is a pure function of its parameters and holds no state between calls (each
# call samples fresh noise), so one instance serves every query with the same parameters:
# building it (OpenDP's map, the scale search, the threshold search) is then paid once.


@functools.lru_cache(maxsize=4096)
def vector_laplace(l1: int, epsilon: float) -> VectorLaplace:
    """:class:`VectorLaplace`, built once per ``(l1, epsilon)``."""
    return VectorLaplace(l1, epsilon)


@functools.lru_cache(maxsize=4096)
def vector_gaussian(l2: float, rho: float) -> VectorGaussian:
    """:class:`VectorGaussian`, built once per ``(l2, rho)``."""
    return VectorGaussian(l2, rho)


@functools.lru_cache(maxsize=1024)
def threshold(l0: int, linf: int, epsilon: float, delta: float) -> Threshold:
    """:class:`Threshold`, built once per parameters."""
    return Threshold(l0, linf, epsilon, delta)


@functools.lru_cache(maxsize=1024)
def quantile_select(q: float, rows: int, epsilon_per_cell: float) -> QuantileSelect:
    """:class:`QuantileSelect`, built once per parameters."""
    return QuantileSelect(q, rows, epsilon_per_cell)
