"""OMOP CDM v5.4: the schema, the bundled vocabulary subset and the synthetic population."""

from sde.omop.cdm import CDM, Column, Table

__all__ = ["CDM", "Column", "Table"]
