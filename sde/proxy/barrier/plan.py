"""What a project extract holds, and the SQL that builds it on any engine.

The extract is the optimisation barrier: for each allowlisted table, a
materialised table of the same name holding only the project's rows (cohort
persons minus opt-outs, events dated in the period, observation periods
overlapping it) and only its columns, with every identifier replaced by its
pseudonym. The researcher's SQL then runs where out-of-scope rows do not
exist, so no optimiser can evaluate a user predicate on one.

The SQL here reads the node's tables through ``src(table)`` (a qualified name
the engine module chooses), the padded pseudonym keys from a one-row table
``keys`` (columns ``<namespace>_i``/``<namespace>_o``) and the scoped persons
from a table ``persons(person_id)``; it is plain enough to run on DuckDB,
PostgreSQL and Spark alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sde.omop.cdm import CDM
from sde.pseudonym import NAMESPACES, hmac_sql
from sde.scope import Scope

Source = Callable[[str], str]

#: Column holding the row order key in a pooled build (never in the extract itself).
ORDER_COLUMN = "sde_order_key"


@dataclass(frozen=True)
class TablePlan:
    """One extract table: its columns (CDM order) and which are pseudonymised."""

    name: str
    columns: tuple[str, ...]
    #: column -> namespace, for identifier columns.
    ids: dict[str, str]

    @property
    def person_level(self) -> bool:
        return CDM.table(self.name).has_column("person_id")

    @property
    def own_id(self) -> str:
        """The column naming one row: ``<table>_id``, or ``person_id`` for ``person``."""
        return f"{self.name}_id" if self.name != "person" else "person_id"

    @property
    def keyed(self) -> bool:
        """True when the build reads the pseudonym keys: person-level tables, and shared
        tables with identifier columns (``provider``, ``care_site``)."""
        return self.person_level or bool(self.ids)

    @property
    def row_id(self) -> tuple[str, str]:
        """The raw column naming one row of a keyed table, and its namespace.

        Its keyed pseudonym orders the extract (:meth:`ExtractPlan.order_sql`), whether
        the column is exposed or not; ``death`` has no row id and uses ``person_id``.
        """
        own = f"{self.name}_id"
        if self.name != "person" and CDM.table(self.name).has_column(own) and own in NAMESPACES:
            return own, NAMESPACES[own]
        return "person_id", "person"


@dataclass(frozen=True)
class ExtractPlan:
    """Every table of one project's extract."""

    scope: Scope
    tables: tuple[TablePlan, ...]

    @classmethod
    def of(cls, scope: Scope) -> ExtractPlan:
        plans = []
        for name, cols in sorted(scope.tables.items()):
            wanted = set(cols)
            person_level = CDM.table(name).has_column("person_id")
            if person_level and scope.access != "rows":
                wanted.add("person_id")  # counted by the aggregates rule, never shown
            ordered = tuple(c for c in CDM.table(name).column_names if c in wanted)
            ids = {c: NAMESPACES[c] for c in ordered if c in NAMESPACES}
            plans.append(TablePlan(name, ordered, ids))
        return cls(scope, tuple(plans))

    @property
    def namespaces(self) -> tuple[str, ...]:
        found = {"person"} | {ns for t in self.tables for ns in t.ids.values()}
        found |= {t.row_id[1] for t in self.tables if t.keyed}
        return tuple(sorted(found))

    @property
    def person_tables(self) -> tuple[TablePlan, ...]:
        return tuple(t for t in self.tables if t.person_level)

    def required_source_tables(self) -> tuple[str, ...]:
        """Node tables the build reads (fail closed if one is missing)."""
        need = {"person", "sde_opt_out", *(t.name for t in self.tables)}
        if self.scope.cohort_concepts:
            need |= {"condition_occurrence", "concept_ancestor"}
        return tuple(sorted(need))

    # -- SQL ----------------------------------------------------------------------------

    def persons_sql(self, src: Source) -> str:
        """The node's persons in scope: the cohort, minus the National Data Opt-out."""
        where = [
            f"NOT EXISTS (SELECT 1 FROM {src('sde_opt_out')} o WHERE o.person_id = p.person_id)"
        ]
        if self.scope.cohort_concepts:
            ids = ", ".join(str(c) for c in self.scope.cohort_concepts)
            where.append(
                f"EXISTS (SELECT 1 FROM {src('condition_occurrence')} c"
                " WHERE c.person_id = p.person_id AND (c.condition_concept_id IN"
                f" ({ids}) OR c.condition_concept_id IN (SELECT a.descendant_concept_id"
                f" FROM {src('concept_ancestor')} a WHERE a.ancestor_concept_id IN ({ids}))))"
            )
        return (
            f"SELECT DISTINCT p.person_id FROM {src('person')} p "
            f"WHERE p.person_id IS NOT NULL AND {' AND '.join(where)}"
        )

    def order_sql(self, table: TablePlan, dialect: str) -> str:
        """The key that orders a person-level extract table: a keyed pseudonym of its row id.

        Engines return a table's rows in the order they were written. Written in the
        node's order (raw ids ascending), the row position of a pseudonym would betray
        its raw id's rank, and two projects over the same node would list the same
        persons in the same order, linking their pseudonyms. Ordered by a keyed HMAC of
        each row's own id, the order is a permutation that differs per project (and
        per node subkey) and says nothing about raw ids, nor which rows share a person.
        """
        col, ns = table.row_id
        return hmac_sql(f"x.{col}", f"k.{ns}_i", f"k.{ns}_o", dialect)

    def select_sql(
        self,
        table: TablePlan,
        src: Source,
        dialect: str,
        keys: str = "keys",
        persons: str = "persons",
        *,
        order: Literal["clause", "column"] = "clause",
    ) -> str:
        """SELECT of one extract table's rows (in scope, pseudonymised).

        Shared tables with pseudonymised ids (``provider``, ``care_site``) are always
        ordered by their own id's pseudonym: their node order is raw ids ascending.
        ``order`` (person-level tables): ``"clause"`` adds ``ORDER BY`` the row order key
        (:meth:`order_sql`), ``"column"`` returns the key as a last column named
        :data:`ORDER_COLUMN` instead (for an extract pooled from several nodes, sorted
        once at the end).
        """
        outs = []
        for col in table.columns:
            ns = table.ids.get(col)
            if ns is None:
                outs.append(f"x.{col} AS {col}")
            else:
                outs.append(f"{hmac_sql(f'x.{col}', f'k.{ns}_i', f'k.{ns}_o', dialect)} AS {col}")
        if table.person_level and order == "column":
            outs.append(f"{self.order_sql(table, dialect)} AS {ORDER_COLUMN}")
        sql = f"SELECT {', '.join(outs)} FROM {src(table.name)} x"
        if not table.keyed:
            return sql
        sql += f" CROSS JOIN {keys} k"
        if not table.person_level:  # provider, care_site: never staged, ordered here
            own = table.own_id in NAMESPACES
            return sql + (f" ORDER BY {self.order_sql(table, dialect)}" if own else "")
        sql += f" WHERE x.person_id IN (SELECT person_id FROM {persons})"
        sql += self._period_sql(table)
        if order == "clause":
            sql += f" ORDER BY {self.order_sql(table, dialect)}"
        return sql

    def _period_sql(self, table: TablePlan) -> str:
        sql = ""
        period = self.scope.period
        if period is None:
            return sql
        if table.name in CDM.INTERVALS:
            start_col, end_col = CDM.INTERVALS[table.name]
            if period.end:
                sql += f" AND x.{start_col} <= DATE '{period.end.isoformat()}'"
            if period.start:
                sql += f" AND x.{end_col} >= DATE '{period.start.isoformat()}'"
        elif (date_col := CDM.event_date(table.name)) is not None:
            if period.start:
                sql += f" AND x.{date_col} >= DATE '{period.start.isoformat()}'"
            if period.end:
                sql += f" AND x.{date_col} <= DATE '{period.end.isoformat()}'"
        return sql
