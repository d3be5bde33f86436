"""The parse stage: thread-safe, and honest about what kind of error it raises.

sqlglot logs a warning when it keeps a statement as a raw ``Command``; the parse
stage refuses those, so the warning is noise. It used to be silenced by changing
the level of the global ``sqlglot`` logger around every call, which races between
threads (one thread restores the level while another is parsing) and hides other
threads' warnings. Now a filter installed once drops only the warnings of a
thread that is inside :func:`sde.proxy.parse.parse`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sde.errors import InvalidInput, ScopeViolation, SDEError
from sde.proxy.context import RuleContext
from sde.proxy.parse import parse
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.proxy.sentinel_data import SCOPE

COMMANDS = (
    ("postgres", "EXPLAIN SELECT year_of_birth FROM person"),
    ("duckdb", "LOAD httpfs"),
    ("postgres", "PREPARE q AS SELECT year_of_birth FROM person"),
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def sqlglot_records() -> Iterator[_Records]:
    logger = logging.getLogger("sqlglot")
    handler = _Records()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _ctx(dialect: str) -> RuleContext:
    return RuleContext(Scope.load(SCOPE), dialect)


def _refusal(dialect: str, sql: str) -> SDEError:
    try:
        parse(sql, _ctx(dialect))
    except SDEError as err:
        return err
    raise AssertionError(f"{sql!r} was not refused")


def test_parsing_does_not_touch_the_global_logger_level(sqlglot_records: _Records) -> None:
    logger = logging.getLogger("sqlglot")
    before = logger.level
    _refusal(*COMMANDS[0])
    assert logger.level == before
    assert not sqlglot_records.records


def test_concurrent_parses_leak_no_warning_and_refuse_every_command(
    sqlglot_records: _Records,
) -> None:
    jobs = [COMMANDS[i % len(COMMANDS)] for i in range(600)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        errors = list(pool.map(lambda job: _refusal(*job), jobs))
    assert all(isinstance(e, ScopeViolation) for e in errors)
    assert {e.rule for e in errors} == {"parse.unsupported"}
    warnings = [r for r in sqlglot_records.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings[0].getMessage()


def test_other_threads_warnings_still_reach_the_log(sqlglot_records: _Records) -> None:
    """The filter is per thread: a warning logged outside parse() is kept."""
    logging.getLogger("sqlglot").warning("a warning of someone else's")
    _refusal(*COMMANDS[0])
    assert [r.getMessage() for r in sqlglot_records.records] == ["a warning of someone else's"]


@pytest.mark.parametrize(
    ("sql", "dialect", "rule"),
    [
        ("", "postgres", "parse.empty"),
        ("   \n ", "postgres", "parse.empty"),
        (";", "postgres", "parse.empty"),
        ("SELECT FROM WHERE (", "postgres", "parse.invalid"),
        ("SELECT 1; SELECT 2", "postgres", "parse.multiple-statements"),
        ("SELECT 1", "oracle", "parse.dialect"),
    ],
)
def test_unreadable_queries_are_invalid_input_not_scope_violations(
    sql: str, dialect: str, rule: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        prepare(sql, _ctx(dialect))
    assert info.value.rule == rule
    assert not isinstance(info.value, ScopeViolation)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT year_of_birth FROM pers\u043en", "parse.non-ascii"),
        ("EXPLAIN SELECT year_of_birth FROM person", "parse.unsupported"),
    ],
)
def test_smuggling_attempts_stay_scope_violations(sql: str, rule: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        prepare(sql, _ctx("postgres"))
    assert info.value.rule == rule
