"""Per-project pseudonyms for person, row, clinician and care-site identifiers: keyed HMAC.

A pseudonym is ``HMAC-SHA256(k, decimal(id))`` truncated to its first 63 bits,
where ``k = HMAC-SHA256(project_key, node || 0x00 || namespace)`` is a subkey per
node and namespace (the table an identifier belongs to: ``person``,
``visit_occurrence``...). ``provider_id`` (a clinician: a person) and
``care_site_id`` (a practice or ward: a quasi-identifier) are pseudonymised too,
wherever they appear; they name rows of the shared tables ``provider`` and
``care_site``, which a pooled extract takes from one node (one id space for
all nodes), so their subkey is the same on every node of a project
(:data:`SHARED_NAMESPACES`: the node part is empty, which no node name is). So:

- the same raw id gets the same pseudonym in every table of a project (joins work);
- the project key never leaves the registry: engines only see subkeys;
- different projects (different keys) get unlinkable pseudonyms;
- persons of different nodes never share a subkey, so pooled extracts do not collide
  (a collision of 63-bit values is checked for and refused when building an extract).

The engines compute the HMAC themselves (SHA-256 is built into DuckDB, PostgreSQL and
Spark), so pseudonymising tens of millions of rows needs no round trip through Python;
:func:`pseudonymise` is the reference implementation the tests hold every engine to.

>>> key = bytes(32)
>>> pseudonymise(key, "lth", "person", [1, 2])[0] == pseudonymise(key, "lth", "person", [1])[0]
True
>>> pseudonymise(key, "lth", "person", [1]) != pseudonymise(key, "elht", "person", [1])
True
>>> pseudonymise(key, "lth", "care_site", [7]) == pseudonymise(key, "elht", "care_site", [7])
True
>>> pseudonymise(key, "lth", "care_site", [7]) != pseudonymise(key, "lth", "provider", [7])
True
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from sde.errors import ConfigurationError
from sde.omop.cdm import CDM

_MASK63 = (1 << 63) - 1
_BLOCK = 64  # SHA-256 block size in bytes


def _person_tables() -> tuple[str, ...]:
    return tuple(t for t in CDM.tables() if CDM.table(t).has_column("person_id"))


def id_namespaces() -> dict[str, str]:
    """Identifier column name -> the table whose rows it names (its namespace).

    ``person_id`` and the primary key of every person-linked table, the CDM's
    self-references (``preceding_visit_occurrence_id``...), and the clinician, care-site
    and location ids (``provider_id``, ``care_site_id``, ``location_id``) in every table
    that has them.
    """
    out = {"person_id": "person"}
    for table in _person_tables():
        if CDM.table(table).has_column(f"{table}_id"):
            out[f"{table}_id"] = table
    out["preceding_visit_occurrence_id"] = "visit_occurrence"
    out["preceding_visit_detail_id"] = "visit_detail"
    out["parent_visit_detail_id"] = "visit_detail"
    out["episode_parent_id"] = "episode"
    out["provider_id"] = "provider"
    out["care_site_id"] = "care_site"
    out["location_id"] = "location"  # a small area: linkable across projects if raw
    return out


NAMESPACES: dict[str, str] = id_namespaces()

#: Namespaces of rows in the shared tables (one id space for every node of a project):
#: their subkey does not depend on the node, so a pooled extract's joins hold.
SHARED_NAMESPACES: frozenset[str] = frozenset({"provider", "care_site", "location"})


def subkey(project_key: bytes, node: str, namespace: str) -> bytes:
    """The HMAC key for identifiers of ``namespace`` on ``node`` (any node, for the
    :data:`SHARED_NAMESPACES`)."""
    if len(project_key) < 16:
        raise ConfigurationError("pseudonym.weak-key", "project keys must be at least 16 bytes")
    where = "" if namespace in SHARED_NAMESPACES else node
    return hmac.digest(project_key, f"{where}\x00{namespace}".encode(), "sha256")


def pseudonymise(
    project_key: bytes, node: str, namespace: str, ids: Iterable[int | None]
) -> list[int | None]:
    """Reference pseudonyms of raw ids (``None`` stays ``None``)."""
    k = subkey(project_key, node, namespace)
    out: list[int | None] = []
    for raw in ids:
        if raw is None:
            out.append(None)
            continue
        digest = hmac.digest(k, str(int(raw)).encode(), "sha256")
        out.append(int.from_bytes(digest[:8], "big") & _MASK63)
    return out


@dataclass(frozen=True)
class Pads:
    """HMAC inner and outer padded keys of one subkey (what the engines are given)."""

    inner: bytes
    outer: bytes

    @classmethod
    def of(cls, key: bytes) -> Pads:
        padded = key.ljust(_BLOCK, b"\0")
        return cls(bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded))


def pads(project_key: bytes, node: str, namespaces: Iterable[str]) -> dict[str, Pads]:
    """Padded subkeys for each namespace of ``node``."""
    return {ns: Pads.of(subkey(project_key, node, ns)) for ns in namespaces}


def hmac_sql(value: str, inner: str, outer: str, dialect: str) -> str:
    """SQL computing the pseudonym of integer expression ``value`` in ``dialect``.

    ``inner``/``outer`` are SQL expressions for the padded keys (binary columns of a
    keys table), so the SQL text itself carries no key material.
    """
    if dialect == "duckdb":
        msg = f"encode(CAST({value} AS VARCHAR))"
        digest = f"sha256({outer} || unhex(sha256({inner} || {msg})))"
        return (
            f"CAST((CAST('0x' || substr({digest}, 1, 16) AS UBIGINT)"
            f" & CAST(9223372036854775807 AS UBIGINT)) AS BIGINT)"
        )
    if dialect == "postgres":
        msg = f"convert_to(CAST({value} AS TEXT), 'UTF8')"
        digest = f"sha256({outer} || sha256({inner} || {msg}))"
        return (
            f"(('x' || encode(substring({digest} from 1 for 8), 'hex'))::bit(64)::bigint"
            f" & 9223372036854775807)"
        )
    if dialect == "spark":
        msg = f"CAST(CAST({value} AS STRING) AS BINARY)"
        digest = f"sha2(concat({outer}, unhex(sha2(concat({inner}, {msg}), 256))), 256)"
        return (
            f"CAST(pmod(CAST(conv(substr({digest}, 1, 16), 16, 10) AS DECIMAL(20, 0)),"
            f" CAST(9223372036854775808 AS DECIMAL(20, 0))) AS BIGINT)"
        )
    raise ConfigurationError("pseudonym.dialect", f"no pseudonym SQL for dialect {dialect!r}")
