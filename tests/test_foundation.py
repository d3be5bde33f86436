"""The shared foundation: error hierarchy, CDM reference data, DDL, docstrings."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import access_committee
import airlock
import jupyter_config
import sde
from sde import errors
from sde.omop.cdm import CDM
from sde.omop.ddl import all_tables, create_table_sql


def _error_classes() -> list[type[errors.SDEError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.SDEError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_has_a_rule_and_a_sentence(cls: type[errors.SDEError]) -> None:
    err = cls(None, "something was wrong")
    assert err.rule == cls.default_rule
    assert err.rule
    assert str(err) == "something was wrong"
    assert isinstance(err, errors.SDEError)
    assert err.to_dict()["rule"] == cls.default_rule


def test_error_names_the_rule_given() -> None:
    err = errors.ScopeViolation("tables.not-allowed", "table note is not available", table="note")
    assert err.rule == "tables.not-allowed"
    assert err.to_dict() == {
        "error": "ScopeViolation",
        "rule": "tables.not-allowed",
        "message": "table note is not available",
        "details": {"table": "note"},
    }


def test_cdm_has_the_54_tables_and_never_exposed_columns_exist() -> None:
    tables = CDM.tables()
    assert len(tables) == 39
    assert {"person", "measurement", "concept_ancestor", "episode_event"} <= set(tables)
    for table, hidden in CDM.NEVER_EXPOSED.items():
        for column in hidden:
            assert CDM.table(table).has_column(column), (table, column)
            assert column not in CDM.exposable_columns(table)
    for table, column in CDM.EVENT_DATES.items():
        assert CDM.table(table).column(column).type == "date", (table, column)


def test_unknown_table_and_column_are_refused_by_name() -> None:
    with pytest.raises(errors.ConfigurationError, match="patients is not a table"):
        CDM.table("patients")
    with pytest.raises(errors.ConfigurationError, match="no column nhs_number"):
        CDM.table("person").column("nhs_number")


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
def test_ddl_creates_every_table_in_duckdb_syntax_check(dialect: str) -> None:
    import sqlglot

    for table in all_tables():
        sql = create_table_sql(table, dialect)
        parsed = sqlglot.parse_one(sql, read=dialect)
        assert parsed.key == "create", table


def test_ddl_runs_on_duckdb() -> None:
    import duckdb

    con = duckdb.connect()
    for table in all_tables():
        con.execute(create_table_sql(table, "duckdb"))
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'measurement' ORDER BY ordinal_position"
    ).fetchall()
    assert cols[0] == ("measurement_id", "INTEGER")
    assert ("value_as_number", "DOUBLE") in cols


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(errors.ConfigurationError, match="unknown dialect 'oracle'"):
        create_table_sql("person", "oracle")


def _modules_with_doctests() -> list[str]:
    names = []
    packages = [sde, airlock, access_committee, jupyter_config]
    infos = [i for p in packages for i in pkgutil.walk_packages(p.__path__, f"{p.__name__}.")]
    for info in infos:
        if ".cli" in info.name or info.name.endswith(("__main__", ".jupyterhub_config")):
            continue
        if ".registry.migrations" in info.name:  # scripts Alembic runs, not importable alone
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules_with_doctests())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
