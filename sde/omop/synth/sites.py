"""Care sites: the five NHS trusts of the region, the same rows in every node.

``care_site_id`` is the trust's position in :data:`~sde.omop.synth.geography.NODES`
plus one, whichever nodes a run writes: a hospital visit happens at the acute
trust serving the person's district even when that trust is not a node.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa

from sde.omop.synth.geography import DISTRICTS, MENTAL_HEALTH_NODE, NODES, geography


def site_id(slug: str) -> int:
    """The care_site_id of a trust."""
    return [n.slug for n in NODES].index(slug) + 1


MENTAL_HEALTH_SITE = site_id(MENTAL_HEALTH_NODE)


@cache
def _site_of_lsoa() -> np.ndarray:
    by_district = np.array([site_id(d.trust) for d in DISTRICTS], dtype=np.int64)
    return by_district[geography().district]


def acute_site(location: np.ndarray) -> np.ndarray:
    """The acute trust's care_site_id for persons living in LSOAs ``location``."""
    return _site_of_lsoa()[location]


def care_site_table() -> pa.Table:
    """The ``care_site`` rows."""
    return pa.table(
        {
            "care_site_id": [site_id(n.slug) for n in NODES],
            "care_site_name": [n.title for n in NODES],
            "care_site_source_value": [n.slug for n in NODES],
        }
    )
