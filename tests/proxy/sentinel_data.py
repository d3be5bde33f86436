"""Small OMOP nodes with planted sentinels, and the hand-filtered reference.

Two nodes (``lth``, ``elht``) share the same raw person ids (900001...), so a
pseudonym that forgot its node would collide. Everything a project must never
see carries a recognisable value:

- persons outside the cohort (no hypertension ever): year of birth 1111, text
  ``SENTINEL-OOC``, measurement value 31337.125;
- opted-out persons (in the cohort): year of birth 1112, ``SENTINEL-OPTOUT``, 27182.5;
- events of in-scope persons dated outside the period: ``SENTINEL-PERIOD``, 16180.25;
- columns never exposed or not allowlisted (NHS numbers 999..., ``SENTINEL-COL``),
  tables not allowlisted (``SENTINEL-NOTE``, ``SENTINEL-NPI``);
- raw identifiers: person ids 900001..., clinicians (``provider_id`` 880001...) and
  GP practices/wards (``care_site_id`` 870001...) on persons, visits, conditions and
  measurements, and in the ``provider`` and ``care_site`` tables; every one of them
  must come back pseudonymised.

In-scope ``condition_source_value`` are digit strings, so a cast to integer
succeeds in scope and fails, naming a sentinel, on any out-of-scope row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from sde.omop.cdm import CDM
from sde.omop.ddl import all_tables, columns_of, create_table_sql
from sde.pseudonym import NAMESPACES, pseudonymise
from sde.scope import Scope

NODES = ("lth", "elht")
PERSONS = 160
HTN = 320128
HTN_CHILDREN = (4000001, 4000002)  # descendants in concept_ancestor only
OTHER_CONDITIONS = (201826, 317009, 255573, 440383)
PERIOD = (dt.date(2015, 1, 1), dt.date(2024, 12, 31))

SENTINEL_STRINGS = (
    "SENTINEL-OOC",
    "SENTINEL-OPTOUT",
    "SENTINEL-PERIOD",
    "SENTINEL-COL",
    "SENTINEL-NOTE",
    "SENTINEL-NPI",
    "SENTINEL-PROVIDER",
    "SENTINEL-ADDRESS",
    "999000",  # NHS numbers (person_source_value) start 999000
)
SENTINEL_NUMBERS = (1111, 1112, 31337.125, 27182.5, 16180.25, 4242.75)
PROVIDERS = tuple(880001 + k for k in range(6))
CARE_SITES = tuple(870001 + k for k in range(4))
RAW_IDS = {"provider": PROVIDERS, "care_site": CARE_SITES}

SCOPE: dict[str, Any] = {
    "project": "htn-deprivation",
    "access": "rows",
    "tables": {
        "person": [
            "person_id",
            "gender_concept_id",
            "year_of_birth",
            "race_concept_id",
            "location_id",
        ],
        "condition_occurrence": "*",
        "measurement": [
            "measurement_id",
            "person_id",
            "measurement_concept_id",
            "measurement_date",
            "value_as_number",
            "unit_concept_id",
            "visit_occurrence_id",
        ],
        "visit_occurrence": "*",
        "drug_exposure": [
            "drug_exposure_id",
            "person_id",
            "drug_concept_id",
            "drug_exposure_start_date",
            "drug_exposure_end_date",
            "quantity",
        ],
        "observation_period": "*",
        "death": ["person_id", "death_date"],
        "concept": "*",
        "concept_ancestor": "*",
    },
    "cohort": {"any_condition": [HTN]},
    "period": {"start": "2015-01-01", "end": "2024-12-31"},
}


def _date(rng: np.random.Generator, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))


def node_frames(node: str, seed: int) -> dict[str, pd.DataFrame]:
    """Raw CDM rows of one node (only the tables the tests use are filled)."""
    rng = np.random.default_rng(seed)
    ids = {"visit": 0, "cond": 0, "meas": 0, "drug": 0, "op": 0}

    def nxt(kind: str) -> int:
        ids[kind] += 1
        return 500000 + ids[kind]

    persons, visits, conds, meas, drugs, ops, deaths, optout = [], [], [], [], [], [], [], []
    in_period = (PERIOD[0], PERIOD[1])
    before = (dt.date(2004, 1, 1), dt.date(2014, 12, 31))
    for i in range(PERSONS):
        pid = 900001 + i
        kind = "ooc" if i >= 120 else ("optout" if i >= 108 else "in")
        yob = {"ooc": 1111, "optout": 1112}.get(kind, int(rng.integers(1930, 2006)))
        tag = {"ooc": "SENTINEL-OOC", "optout": "SENTINEL-OPTOUT"}.get(kind)
        value = {"ooc": 31337.125, "optout": 27182.5}.get(kind)
        persons.append(
            {
                "person_id": pid,
                "gender_concept_id": int(rng.choice([8507, 8532])),
                "year_of_birth": yob,
                "month_of_birth": int(rng.integers(1, 13)),
                "day_of_birth": int(rng.integers(1, 29)),
                "birth_datetime": dt.datetime(max(yob, 1900), 1, 1),
                "race_concept_id": int(rng.choice([8527, 8516, 8515])),
                "ethnicity_concept_id": 0,
                "location_id": int(rng.integers(1, 6)),
                "provider_id": PROVIDERS[i % len(PROVIDERS)],
                "care_site_id": CARE_SITES[i % len(CARE_SITES)],
                "person_source_value": f"999000{i:04d}",
                "gender_source_value": tag or "F",
            }
        )
        if kind == "optout":
            optout.append({"person_id": pid})
        ops.append(
            {
                "observation_period_id": nxt("op"),
                "person_id": pid,
                "observation_period_start_date": dt.date(2003, 1, 1)
                if i % 7
                else dt.date(2001, 1, 1),
                "observation_period_end_date": dt.date(2014, 6, 30)
                if i % 11 == 0
                else dt.date(2025, 6, 30),
                "period_type_concept_id": 32817,
            }
        )
        # Conditions: cohort persons get hypertension (some only as a descendant, some
        # only before the period: still in the cohort, that row filtered out).
        diagnoses: list[tuple[int, tuple[dt.date, dt.date]]] = []
        if kind != "ooc":
            concept = HTN if i % 3 else HTN_CHILDREN[i % 2]
            diagnoses.append((concept, before if i % 10 == 0 else in_period))
        for _ in range(int(rng.integers(0, 4))):
            diagnoses.append(
                (int(rng.choice(OTHER_CONDITIONS)), in_period if rng.random() < 0.7 else before)
            )
        for concept, window in diagnoses:
            vid = nxt("visit")
            start = _date(rng, *window)
            out_of_period = window is before
            vtag = tag or ("SENTINEL-PERIOD" if out_of_period else None)
            visits.append(
                {
                    "visit_occurrence_id": vid,
                    "person_id": pid,
                    "visit_concept_id": int(rng.choice([9201, 9202, 9203])),
                    "visit_start_date": start,
                    "visit_end_date": start + dt.timedelta(days=int(rng.integers(0, 5))),
                    "visit_type_concept_id": 32817,
                    "visit_source_value": vtag or f"V{vid}",
                    "provider_id": PROVIDERS[vid % len(PROVIDERS)],
                    "care_site_id": CARE_SITES[vid % len(CARE_SITES)],
                    "preceding_visit_occurrence_id": vid - 1
                    if ids["visit"] > 1 and rng.random() < 0.3
                    else None,
                }
            )
            conds.append(
                {
                    "condition_occurrence_id": nxt("cond"),
                    "person_id": pid,
                    "condition_concept_id": concept,
                    "condition_start_date": start,
                    "condition_type_concept_id": 32817,
                    "visit_occurrence_id": vid,
                    "provider_id": PROVIDERS[vid % len(PROVIDERS)],
                    "condition_source_value": vtag or str(int(rng.integers(10000, 99999))),
                }
            )
        for j in range(int(rng.integers(1, 5))):
            out_of_period = rng.random() < 0.25
            when = _date(rng, *(before if out_of_period else in_period))
            sbp = round(float(rng.normal(138, 18)), 1)
            meas.append(
                {
                    "measurement_id": nxt("meas"),
                    "person_id": pid,
                    "measurement_concept_id": int(rng.choice([3004249, 3012888, 3004410, 3038553])),
                    "measurement_date": when,
                    "measurement_type_concept_id": 32817,
                    "value_as_number": value or (16180.25 if out_of_period else sbp),
                    "unit_concept_id": 8876,
                    "provider_id": PROVIDERS[(i + j) % len(PROVIDERS)],
                    "value_source_value": "SENTINEL-COL",
                    "measurement_source_value": tag
                    or ("SENTINEL-PERIOD" if out_of_period else "sbp"),
                }
            )
        for _ in range(int(rng.integers(0, 3))):
            out_of_period = rng.random() < 0.25
            when = _date(rng, *(before if out_of_period else in_period))
            drugs.append(
                {
                    "drug_exposure_id": nxt("drug"),
                    "person_id": pid,
                    "drug_concept_id": int(rng.choice([1332418, 1503297, 1308216, 1545958])),
                    "drug_exposure_start_date": when,
                    "drug_exposure_end_date": when + dt.timedelta(days=28),
                    "drug_type_concept_id": 32817,
                    "quantity": value or (4242.75 if out_of_period else float(rng.integers(1, 90))),
                    "drug_source_value": tag or "rx",
                }
            )
        if i % 9 == 0:
            deaths.append(
                {
                    "person_id": pid,
                    "death_date": _date(rng, *in_period) if i % 2 else _date(rng, *before),
                }
            )
    concepts = pd.read_csv(Path(__file__).parents[2] / "sde/omop/data/concepts.csv")
    concept = pd.DataFrame(
        {
            "concept_id": concepts.concept_id,
            "concept_name": concepts.concept_name,
            "domain_id": concepts.domain_id,
            "vocabulary_id": concepts.vocabulary_id,
            "concept_class_id": concepts.concept_class_id,
            "standard_concept": concepts.standard_concept,
            "concept_code": concepts.concept_code.astype(str),
            "valid_start_date": dt.date(1970, 1, 1),
            "valid_end_date": dt.date(2099, 12, 31),
        }
    )
    extra = pd.DataFrame(
        {
            "concept_id": list(HTN_CHILDREN),
            "concept_name": ["Hypertensive heart disease", "Renovascular hypertension"],
            "domain_id": "Condition",
            "vocabulary_id": "SNOMED",
            "concept_class_id": "Clinical Finding",
            "standard_concept": "S",
            "concept_code": ["64715009", "123799005"],
            "valid_start_date": dt.date(1970, 1, 1),
            "valid_end_date": dt.date(2099, 12, 31),
        }
    )
    concept = pd.concat([concept, extra], ignore_index=True)
    ancestor = pd.DataFrame(
        {
            "ancestor_concept_id": [*concept.concept_id, HTN, HTN],
            "descendant_concept_id": [*concept.concept_id, *HTN_CHILDREN],
            "min_levels_of_separation": [0] * len(concept) + [1, 1],
            "max_levels_of_separation": [0] * len(concept) + [1, 1],
        }
    )
    frames = {
        "person": persons,
        "observation_period": ops,
        "visit_occurrence": visits,
        "condition_occurrence": conds,
        "measurement": meas,
        "drug_exposure": drugs,
        "death": deaths,
        "sde_opt_out": optout,
        "note": [
            {
                "note_id": 1,
                "person_id": 900001,
                "note_date": dt.date(2020, 1, 1),
                "note_type_concept_id": 32817,
                "note_class_concept_id": 0,
                "note_title": "t",
                "note_text": "SENTINEL-NOTE",
                "encoding_concept_id": 0,
                "language_concept_id": 0,
            }
        ],
        "provider": [
            {
                "provider_id": pid,
                "provider_name": "SENTINEL-PROVIDER",
                "npi": "SENTINEL-NPI",
                "specialty_concept_id": 38004446,
                "care_site_id": CARE_SITES[k % len(CARE_SITES)],
            }
            for k, pid in enumerate(PROVIDERS)
        ],
        "care_site": [
            {"care_site_id": cid, "care_site_name": f"Practice {k}", "location_id": k + 1}
            for k, cid in enumerate(CARE_SITES)
        ],
        "location": [
            {"location_id": k, "address_1": "SENTINEL-ADDRESS", "county": "Lancashire"}
            for k in range(1, 6)
        ],
    }
    out = {name: _typed(name, pd.DataFrame(rows)) for name, rows in frames.items()}
    out["concept"] = _typed("concept", concept)
    out["concept_ancestor"] = _typed("concept_ancestor", ancestor)
    return out


def _typed(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """All the table's columns, in CDM order, nullable dtypes."""
    data = {}
    for col in columns_of(table):
        values = frame[col.name] if col.name in frame else pd.Series([None] * len(frame))
        base = col.base_type
        if base == "integer":
            data[col.name] = pd.array(values.tolist(), dtype="Int64")
        elif base == "numeric":
            data[col.name] = pd.to_numeric(values).astype("float64")
        elif base in {"date", "timestamp"}:
            data[col.name] = pd.to_datetime(values).astype("datetime64[ns]")
        else:
            data[col.name] = values.astype("object")
    return pd.DataFrame(data)


def write_duckdb(path: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    con = duckdb.connect(str(path))
    try:
        for table in all_tables():
            con.execute(create_table_sql(table, "duckdb"))
        for table, frame in frames.items():
            if frame.empty:
                continue
            con.register("incoming", frame)
            cols = ", ".join(frame.columns)
            casts = ", ".join(
                f"CAST({c} AS DATE)" if CDM.has_table(table) and _is_date(table, c) else c
                for c in frame.columns
            )
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {casts} FROM incoming")
            con.unregister("incoming")
    finally:
        con.close()


def _is_date(table: str, column: str) -> bool:
    return CDM.table(table).column(column).base_type == "date"


def build_nodes(folder: Path) -> dict[str, dict[str, pd.DataFrame]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, node in enumerate(NODES):
        frames = node_frames(node, seed=11 + k)
        write_duckdb(folder / f"{node}.duckdb", frames)
        out[node] = frames
    return out


# -- the hand-filtered reference ---------------------------------------------------------


def reference_tables(
    raw: Mapping[str, Mapping[str, pd.DataFrame]], scope: Scope, key: bytes
) -> dict[str, pd.DataFrame]:
    """The project's tables filtered by hand in pandas, independent of the proxy's SQL."""
    pooled: dict[str, list[pd.DataFrame]] = {}
    for index, (node, frames) in enumerate(raw.items()):
        anc = frames["concept_ancestor"]
        persons = frames["person"].person_id
        if scope.cohort_concepts:
            wanted = set(scope.cohort_concepts) | set(
                anc[anc.ancestor_concept_id.isin(scope.cohort_concepts)].descendant_concept_id
            )
            cond = frames["condition_occurrence"]
            persons = persons[persons.isin(cond[cond.condition_concept_id.isin(wanted)].person_id)]
        persons = persons[~persons.isin(frames["sde_opt_out"].person_id)]
        for table, cols in scope.tables.items():
            frame = frames[table]
            person_level = "person_id" in frame.columns
            if index > 0 and not person_level:
                continue
            if person_level:
                frame = frame[frame.person_id.isin(persons)]
                frame = _in_period(table, frame, scope)
            frame = frame[list(cols)].copy()
            if person_level or table in RAW_IDS:
                for col in cols:
                    if col in NAMESPACES:
                        pseud = pseudonymise(
                            key,
                            node,
                            NAMESPACES[col],
                            [None if pd.isna(v) else int(v) for v in frame[col]],
                        )
                        frame[col] = pd.array(pseud, dtype="Int64")
            pooled.setdefault(table, []).append(frame)
    return {t: pd.concat(fs, ignore_index=True) for t, fs in pooled.items()}


def _in_period(table: str, frame: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    period = scope.period
    if period is None:
        return frame
    start = pd.Timestamp(period.start) if period.start else None
    end = pd.Timestamp(period.end) if period.end else None
    if table in CDM.INTERVALS:
        s_col, e_col = CDM.INTERVALS[table]
        keep = pd.Series(True, index=frame.index)
        if end is not None:
            keep &= frame[s_col] <= end
        if start is not None:
            keep &= frame[e_col] >= start
        return frame[keep.fillna(False)]
    date_col = CDM.event_date(table)
    if date_col is None:
        return frame
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame[date_col] >= start
    if end is not None:
        keep &= frame[date_col] <= end
    return frame[keep.fillna(False)]


_RAW_OTHER = frozenset(float(v) for ids in RAW_IDS.values() for v in ids)


def sentinel_hits(value: object, ignore: str = "") -> list[str]:
    """Every sentinel found in a DataFrame, an error message or any text.

    Sentinels that appear in ``ignore`` (the query's own text) are not counted: a
    researcher who writes ``SELECT 1111`` gets 1111 back, which leaks nothing.
    """
    strings = [s for s in SENTINEL_STRINGS if s not in ignore]
    numbers = [n for n in SENTINEL_NUMBERS if _number_text(n) not in ignore]
    return _hits(value, strings, numbers, ignore)


def _number_text(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _hits(value: object, strings: list[str], numbers: list[float], ignore: str) -> list[str]:
    hits: list[str] = []
    if isinstance(value, pd.DataFrame):
        for i, col in enumerate(value.columns):  # by position: names may repeat (a.x, b.x)
            hits += _hits(str(col), strings, numbers, ignore)
            for v in value.iloc[:, i].tolist():
                hits += _cell(str(col), v, strings, numbers, ignore)
        return sorted(set(hits))
    text = str(value)
    return [s for s in strings if s in text]


def _cell(col: str, v: object, strings: list[str], numbers: list[float], ignore: str) -> list[str]:
    """Sentinels in one result cell, looking inside lists, arrays and structs too."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, dict):
        return [h for item in v.values() for h in _cell(col, item, strings, numbers, ignore)]
    if isinstance(v, list | tuple | np.ndarray):
        return [h for item in list(v) for h in _cell(col, item, strings, numbers, ignore)]
    if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
        hits = []
        if float(v) in numbers:
            hits.append(f"{col}={v}")
        raw = 900001 <= float(v) <= 900000 + PERSONS or float(v) in _RAW_OTHER
        if raw and _number_text(float(v)) not in ignore:
            hits.append(f"{col}=raw id {v}")
        return hits
    return [s for s in strings if s in str(v)]
