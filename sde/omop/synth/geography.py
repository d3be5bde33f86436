"""Lancashire & South Cumbria: districts, synthetic LSOAs with IMD 2019 deciles, nodes.

The map is fixed (it does not depend on the seed): the same LSOA codes, towns
and deciles in every run, so that locations compare across populations. LSOA
codes have the ONS shape (``E01`` and six digits) but are synthetic: a code
here does not carry the decile of the real area with that code.

>>> geo = geography()
>>> len(geo.lsoa_code) > 1000 and all(len(c) == 9 for c in geo.lsoa_code)
True
>>> node_names(3)
('lth', 'elht', 'umbh')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from sde.errors import ConfigurationError

#: Persons per LSOA, roughly as in England.
PERSONS_PER_LSOA = 1500
#: Seed of the fixed map (not the population seed).
MAP_SEED = 20_190_926  # publication date of IMD 2019
#: Spread of LSOA deciles around their district's mean decile.
DECILE_SPREAD = 2.0


@dataclass(frozen=True)
class District:
    """A local authority district (pre-2023 boundaries, as IMD 2019 uses).

    ``county`` is the name as stored in ``location.county`` (CDM varchar(20)).
    """

    name: str
    county: str
    population: int
    mean_decile: float
    asian_share: float
    black_share: float
    trust: str
    towns: tuple[str, ...]
    lat: float
    lon: float


# fmt: off
DISTRICTS: tuple[District, ...] = (
    # name, county (varchar 20), population, mean decile, Asian, Black, trust, towns, lat, lon
    District("Blackburn with Darwen", "Blackburn w Darwen", 149_700, 2.6, 0.33, 0.005,
             "elht", ("Blackburn", "Darwen"), 53.75, -2.48),
    District("Blackpool", "Blackpool", 139_400, 1.6, 0.03, 0.004,
             "bfw", ("Blackpool",), 53.81, -3.05),
    District("Burnley", "Burnley", 88_900, 2.4, 0.11, 0.003,
             "elht", ("Burnley", "Padiham"), 53.79, -2.24),
    District("Chorley", "Chorley", 118_200, 6.2, 0.02, 0.003,
             "lth", ("Chorley", "Adlington", "Euxton"), 53.65, -2.63),
    District("Fylde", "Fylde", 80_800, 6.6, 0.02, 0.002,
             "bfw", ("Lytham St Annes", "Kirkham"), 53.75, -2.96),
    District("Hyndburn", "Hyndburn", 81_000, 2.8, 0.13, 0.003,
             "elht", ("Accrington", "Oswaldtwistle", "Great Harwood"), 53.75, -2.36),
    District("Lancaster", "Lancaster", 146_000, 4.8, 0.03, 0.005,
             "umbh", ("Lancaster", "Morecambe", "Carnforth", "Heysham"), 54.05, -2.8),
    District("Pendle", "Pendle", 92_100, 3.4, 0.2, 0.002,
             "elht", ("Nelson", "Colne", "Barnoldswick"), 53.84, -2.22),
    District("Preston", "Preston", 143_100, 3.8, 0.15, 0.012,
             "lth", ("Preston", "Fulwood"), 53.76, -2.7),
    District("Ribble Valley", "Ribble Valley", 60_900, 8.6, 0.02, 0.001,
             "elht", ("Clitheroe", "Longridge", "Whalley"), 53.87, -2.39),
    District("Rossendale", "Rossendale", 71_500, 4.4, 0.04, 0.002,
             "elht", ("Rawtenstall", "Bacup", "Haslingden"), 53.7, -2.29),
    District("South Ribble", "South Ribble", 110_800, 6.7, 0.02, 0.003,
             "lth", ("Leyland", "Penwortham", "Bamber Bridge"), 53.7, -2.7),
    District("West Lancashire", "West Lancashire", 114_300, 5.4, 0.01, 0.003,
             "lth", ("Ormskirk", "Skelmersdale", "Burscough"), 53.57, -2.88),
    District("Wyre", "Wyre", 112_100, 5.2, 0.01, 0.002,
             "bfw", ("Fleetwood", "Thornton-Cleveleys", "Poulton-le-Fylde", "Garstang"),
             53.87, -2.99),
    District("Barrow-in-Furness", "Barrow-in-Furness", 67_100, 3.4, 0.01, 0.002,
             "umbh", ("Barrow-in-Furness", "Dalton-in-Furness"), 54.11, -3.23),
    District("South Lakeland", "South Lakeland", 105_100, 7.9, 0.01, 0.001,
             "umbh", ("Kendal", "Windermere", "Ulverston", "Grange-over-Sands"), 54.33, -2.75),
)
# fmt: on


@dataclass(frozen=True)
class Node:
    """A data node: one NHS trust's database."""

    slug: str
    title: str


#: Nodes in the order they are added as ``--nodes`` grows.
NODES: tuple[Node, ...] = (
    Node("lth", "Lancashire Teaching Hospitals NHS Foundation Trust"),
    Node("elht", "East Lancashire Hospitals NHS Trust"),
    Node("umbh", "University Hospitals of Morecambe Bay NHS Foundation Trust"),
    Node("bfw", "Blackpool Teaching Hospitals NHS Foundation Trust"),
    Node("lscft", "Lancashire & South Cumbria NHS Foundation Trust"),
)
MAX_NODES = len(NODES)
#: The mental health trust: with five nodes it holds some persons with a mental
#: health diagnosis (see :data:`MENTAL_HEALTH_NODE_SHARE`).
MENTAL_HEALTH_NODE = "lscft"
MENTAL_HEALTH_NODE_SHARE = 0.5


def node_names(count: int) -> tuple[str, ...]:
    """The node slugs for ``count`` nodes (1 to 5)."""
    if not 1 <= count <= MAX_NODES:
        raise ConfigurationError(
            "synth.nodes",
            f"nodes must be between 1 and {MAX_NODES} "
            f"({', '.join(n.slug for n in NODES)}); got {count}",
        )
    return tuple(n.slug for n in NODES[:count])


def district_node(count: int) -> np.ndarray:
    """For ``count`` nodes, the node index holding each district's persons: the
    district's acute trust if it is a node, else the first node (``lth``)."""
    names = node_names(count)
    return np.array([names.index(d.trust) if d.trust in names else 0 for d in DISTRICTS])


@dataclass(frozen=True)
class Geography:
    """The fixed map: one entry per LSOA (index = ``location_id - 1``)."""

    lsoa_code: tuple[str, ...]
    lsoa_name: tuple[str, ...]
    district: np.ndarray  # index into DISTRICTS
    decile: np.ndarray  # IMD 2019 decile, 1 = most deprived
    town: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray

    @property
    def size(self) -> int:
        return len(self.lsoa_code)


@cache
def geography() -> Geography:
    """Build the fixed map of LSOAs."""
    rng = np.random.default_rng(MAP_SEED)
    codes: list[str] = []
    names: list[str] = []
    towns: list[str] = []
    district_ix: list[int] = []
    deciles: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    lons: list[np.ndarray] = []
    next_code = 24_000
    for i, d in enumerate(DISTRICTS):
        n = max(1, round(d.population / PERSONS_PER_LSOA))
        raw = d.mean_decile + rng.normal(0.0, DECILE_SPREAD, n)
        deciles.append(np.clip(np.rint(raw), 1, 10).astype(np.int8))
        # Towns: the first (largest) town gets about half the areas.
        weights = np.array([2.0 if t == 0 else 1.0 for t in range(len(d.towns))])
        town_ix = rng.choice(len(d.towns), size=n, p=weights / weights.sum())
        for k in range(n):
            codes.append(f"E01{next_code:06d}")
            next_code += 1
            # ONS names an LSOA by district, MSOA number and a letter ("Preston 014A").
            names.append(f"{d.name} {k // 4 + 1:03d}{'ABCD'[k % 4]}")
            towns.append(d.towns[town_ix[k]])
            district_ix.append(i)
        lats.append(np.round(d.lat + rng.uniform(-0.04, 0.04, n), 4))
        lons.append(np.round(d.lon + rng.uniform(-0.05, 0.05, n), 4))
    return Geography(
        lsoa_code=tuple(codes),
        lsoa_name=tuple(names),
        district=np.array(district_ix, dtype=np.int16),
        decile=np.concatenate(deciles),
        town=tuple(towns),
        lat=np.concatenate(lats),
        lon=np.concatenate(lons),
    )
