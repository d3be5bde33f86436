"""Planted sentinels: present in the raw nodes, absent from everything a project sees."""

from __future__ import annotations

from typing import Any

import pytest

from tests.proxy.sentinel_data import SCOPE, SENTINEL_NUMBERS, sentinel_hits


def test_raw_nodes_carry_every_sentinel(sentinel_nodes: Any) -> None:
    raw = sentinel_nodes.raw["lth"]
    text = " ".join(str(v) for frame in raw.values() for v in frame.astype(str).to_numpy().ravel())
    for planted in (
        "SENTINEL-OOC",
        "SENTINEL-OPTOUT",
        "SENTINEL-PERIOD",
        "SENTINEL-COL",
        "SENTINEL-NOTE",
        "SENTINEL-NPI",
        "9990000001",
    ):
        assert planted in text
    numbers = {
        float(v)
        for frame in raw.values()
        for col in frame.select_dtypes("number")
        for v in frame[col].dropna()
    }
    assert set(SENTINEL_NUMBERS) <= numbers


@pytest.mark.parametrize("table", sorted(SCOPE["tables"]))
def test_whole_tables_hold_no_sentinel(table: str, engine_case: Any) -> None:
    got = engine_case.conn.sql(f"SELECT * FROM {table}")
    assert not sentinel_hits(got)
    expected = engine_case.reference.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    assert len(got) == expected
    assert len(got) > 0
