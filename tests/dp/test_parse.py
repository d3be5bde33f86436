"""DP queries are read by the proxy's parser: its refusals stand, DP's shape checks follow."""

from __future__ import annotations

import pytest

from sde.dp.analyse import analyse
from sde.errors import DPRefusal, ScopeViolation, SDEError

REFUSED = [
    # the parser's own refusals, with its rule ids, as in every access mode
    ("SELECT COUNT(*) FROM pers\u043en", ScopeViolation, "parse.non-ascii"),
    ("SELECT COUNT(*) FROM person WHERE 1 = 1\x0b", ScopeViolation, "parse.control-character"),
    (
        "SELECT COUNT(*) FROM person WHERE 1 = 1" + " " * 100_000,
        ScopeViolation,
        "limits.query-size",
    ),
    ("EXPLAIN SELECT COUNT(*) FROM person", ScopeViolation, "parse.unsupported"),
    # not one query: DP's rule
    ("", DPRefusal, "dp.parse"),
    ("SELECT COUNT(*) FROM person; SELECT 1", DPRefusal, "dp.parse"),
    # DP's shape checks after parsing
    ("SELECT COUNT(*) FROM person UNION SELECT COUNT(*) FROM death", DPRefusal, "dp.set-operation"),
]


@pytest.mark.parametrize(("sql", "error", "rule"), REFUSED)
def test_refused(sql: str, error: type[Exception], rule: str) -> None:
    with pytest.raises(SDEError) as info:
        analyse(sql)
    assert type(info.value) is error
    assert info.value.rule == rule


def test_identifiers_are_read_as_the_dialect_resolves_them() -> None:
    a = analyse("SELECT COUNT(DISTINCT PERSON_ID) AS Persons FROM Person /* a note */")
    assert [(g.name, g.kind) for g in a.aggregates] == [("persons", "count_persons")]
    assert "note" not in a.tree.sql()
