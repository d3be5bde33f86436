"""One DP query as asked: the SQL and every option, built once and passed down whole.

:meth:`DPEngine.sql_dp <sde.dp.engine.DPEngine.sql_dp>` and :meth:`~sde.dp.engine.DPEngine.quote`
build a :class:`DPRequest` from their arguments; analysis, planning, the prepared-query cache
and the release hash all read it, so an option is named in one place.

>>> r = DPRequest("SELECT COUNT(*) AS n FROM person", epsilon=0.5)
>>> (r.epsilon, r.noise, r.alpha)
(0.5, 'laplace', 0.05)
>>> r.cache_key("postgres") == DPRequest("SELECT COUNT(*) AS n FROM person", epsilon=0.5,
...     alpha=0.01).cache_key("postgres")  # alpha changes intervals only, not the plan
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DPRequest:
    """What the researcher asked for; the options of ``sql_dp`` (see ``docs/dp.md``)."""

    sql: str
    epsilon: float | None = None
    delta: float | None = None
    accuracy: float | Mapping[str, float] | None = None
    alpha: float = 0.05
    bounds: Mapping[str, Sequence[float]] | None = None
    keys: Mapping[str, Sequence[Any]] | None = None
    max_rows_per_person: int | None = None
    max_groups_per_person: int | None = None
    noise: str = "laplace"
    #: The SQL dialect the query is written in; None: the engine's default.
    dialect: str | None = None

    def cache_key(self, dialect: str) -> str:
        """The prepared-query cache key: every option the analysis and plan depend on
        (``alpha`` only with ``accuracy=``, whose epsilon it sets)."""
        return json.dumps(
            [
                None if self.accuracy is None else self.alpha,
                self.sql,
                dialect,
                self.epsilon,
                self.delta,
                self.accuracy,
                self.bounds,
                self.keys,
                self.max_rows_per_person,
                self.max_groups_per_person,
                self.noise,
            ],
            sort_keys=True,
            default=lambda v: list(v) if isinstance(v, tuple | list | set) else repr(v),
        )
