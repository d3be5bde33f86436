"""The CDM tables' columns as Arrow and Spark schemas (from :mod:`sde.omop.ddl`).

Loading moves rows as Arrow record batches whose schema is the table's CDM
schema, so every engine receives the same types the DDL declares.

>>> arrow_schema("death").field("person_id").type
DataType(int32)
>>> spark_schema("sde_opt_out")
'`person_id` INT'
>>> "offset" in arrow_schema("note_nlp").names  # the CDM quotes this reserved word
True
"""

from __future__ import annotations

import pyarrow as pa

from sde.errors import InvalidInput
from sde.omop.ddl import column_type, columns_of

_ARROW = {
    "integer": pa.int32(),
    "numeric": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}


def bare(name: str) -> str:
    """A column name without the double quotes the CDM puts round reserved words."""
    return name.strip('"')


def column_names(table: str) -> tuple[str, ...]:
    """The columns of a CDM or custodian table in CDM order, double-quoted for SQL."""
    return tuple(f'"{bare(c.name)}"' for c in columns_of(table))


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema matching the table's DDL on every engine."""
    return pa.schema(
        [(bare(c.name), _ARROW.get(c.base_type, pa.string())) for c in columns_of(table)]
    )


def spark_schema(table: str) -> str:
    """The table's columns as a Spark DDL schema string (names in backticks)."""
    return ", ".join(f"`{bare(c.name)}` {column_type(c, 'spark')}" for c in columns_of(table))


def conform(batch: pa.RecordBatch, table: str) -> pa.RecordBatch:
    """``batch`` with exactly the table's columns and types (missing columns are null)."""
    schema = arrow_schema(table)
    unknown = sorted(set(batch.schema.names) - set(schema.names))
    if unknown:
        raise InvalidInput(
            "load.unknown-columns", f"table {table} has no column(s) {', '.join(unknown)}"
        )
    arrays = []
    for field in schema:
        if field.name in batch.schema.names:
            arrays.append(batch.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
