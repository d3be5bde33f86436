"""CREATE TABLE statements for the OMOP CDM v5.4 on each engine.

Types follow the CDM with two deliberate choices, the same on every engine so
that answers agree: ``numeric`` columns are double precision (engines disagree
on decimal scale and pandas turns decimals into objects), and ``varchar(n)``
keeps its length where the engine has one. Custodian tables (``sde_*``) are
not part of the CDM and are declared in :data:`CUSTODIAN_TABLES`.

>>> print(create_table_sql("death", "duckdb").splitlines()[1])
  person_id INTEGER NOT NULL,
"""

from __future__ import annotations

from sde.errors import ConfigurationError
from sde.omop.cdm import CDM, Column

DIALECTS = ("duckdb", "postgres", "spark")

#: Tables the data custodian adds beside the CDM, never visible to researchers
#: except through the proxy's rules (column name -> CDM-style type).
CUSTODIAN_TABLES: dict[str, tuple[Column, ...]] = {
    # Persons who registered a National Data Opt-out: excluded from every project.
    "sde_opt_out": (Column("person_id", "integer", True),),
}

_SCALAR = {
    "duckdb": {
        "integer": "INTEGER",
        "numeric": "DOUBLE",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "text": "VARCHAR",
        "varchar": "VARCHAR",
    },
    "postgres": {
        "integer": "INTEGER",
        "numeric": "DOUBLE PRECISION",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "text": "TEXT",
        "varchar": "VARCHAR",
    },
    "spark": {
        "integer": "INT",
        "numeric": "DOUBLE",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "text": "STRING",
        "varchar": "STRING",
    },
}


def column_type(column: Column, dialect: str) -> str:
    """The engine type of a CDM column."""
    try:
        mapping = _SCALAR[dialect]
    except KeyError:
        raise ConfigurationError(
            "ddl.unknown-dialect", f"unknown dialect {dialect!r}; expected one of {DIALECTS}"
        ) from None
    base = column.base_type
    engine_type = mapping.get(base, mapping["text"])
    if base == "varchar" and dialect != "spark" and "(" in column.type:
        engine_type += column.type[column.type.index("(") :]
    return engine_type


def columns_of(table: str) -> tuple[Column, ...]:
    """The columns of a CDM or custodian table."""
    if table in CUSTODIAN_TABLES:
        return CUSTODIAN_TABLES[table]
    return CDM.table(table).columns


def create_table_sql(table: str, dialect: str = "duckdb", *, if_not_exists: bool = True) -> str:
    """``CREATE TABLE`` for a CDM or custodian table in ``dialect``."""
    cols = columns_of(table)
    lines = []
    for c in cols:
        null = " NOT NULL" if c.required and dialect != "spark" else ""
        lines.append(f"  {c.name} {column_type(c, dialect)}{null}")
    guard = "IF NOT EXISTS " if if_not_exists else ""
    using = " USING parquet" if dialect == "spark" else ""
    return f"CREATE TABLE {guard}{table} (\n" + ",\n".join(lines) + f"\n){using}"


def all_tables() -> tuple[str, ...]:
    """Every CDM table, then the custodian tables."""
    return (*CDM.tables(), *CUSTODIAN_TABLES)
