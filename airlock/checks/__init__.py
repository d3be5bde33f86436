"""Automatic disclosure checks on a file submitted to the airlock: bytes in, a verdict out.

:func:`check_file` reads a file as a finished table where it is one (csv, parquet,
xlsx, a JSON table) and applies the rules below, in :data:`RULES` order; text-like
files (txt, md, html, svg, non-table json) and figures and documents (png text chunks,
pdf strings) are scanned for identifiers; other files get status ``none``. The report
is ACRO-shaped like :mod:`sde.sdc`'s ``results.json``, one output per table.

Nothing here raises on bad bytes, and nothing fails open: a file that cannot be read as
its type says is ``review`` (after its bytes were scanned as text for identifiers); a
file that decodes beyond the airlock's bounds, or whose checks hit an unexpected error,
is blocked (``incomplete``), because identifiers cannot be ruled out.

Rules (``fail`` > ``review`` > ``pass``; ``blocking`` forbids submission):

``identifier`` (fail, blocks)
    A column named like a person identifier (:func:`is_identifier_name`: the name's
    words, with run-together words split, hold a subject word - person, patient,
    subject, participant, individual, member, client, provider, care site, nhs, chi,
    pseudo - then, after optional modifiers such as hashed, study or digits, an id word
    - id, ids, number, no, num, key, hash, hashed, pseudonym, ref...; or an identifier
    word anywhere - mrn, pid, patid, eid, nhsno, pseudonym...; ``hospital_number``;
    the name ``chi``; OMOP's ``*_source_value``). So ``personid``, ``person_id_2``,
    ``person_ids``, ``patient_id_hashed``, ``provider_id`` and ``care_site_id`` block;
    ``n_patients``, ``number_of_patients``, ``episode_id``, ``hospital_id`` and
    ``period`` do not (``n_person_id`` does: rename such a count ``n_persons``). Index
    levels kept in a parquet file (``set_index("person_id")``) are columns here. In the
    first :data:`~airlock.checks.tables.HEADER_SEARCH_ROWS` rows of a table, a row with
    no number in it that names an identifier is a header below a title and blocks too;
    in text, a delimited (or fixed-width) line that reads like such a header; in JSON,
    a key at any depth (and a name listed under ``columns``, ``name``...).
``nhs-number`` (fail, blocks)
    Ten digits whose last is the modulus-11 check digit of the first nine
    (:func:`is_nhs_number`), found after :func:`~airlock.checks.identifiers.normalise`
    (fullwidth and other Unicode digits, no-break spaces, dashes, invisible characters)
    run together or separated 3-3-4 by spaces, hyphens, slashes (mixed) or two dots,
    with letters, ``_`` or a sign glued on allowed (``NHS9434765919``, ``id_...``,
    ``-...``) but not inside a longer number, a decimal or a hash. A table column is
    blocked when one valid number is in a column named like a key (``*_id``, ``ref``,
    ``nhs``...) or in a table with an identifier column, when valid numbers are above
    chance (:func:`~airlock.checks.tables.above_chance`: all of its ten-digit values, or
    more than random codes - one in eleven passes the check - reach 2.5% of the time:
    3 of 7, 6 of 20, 16 of 100; a false alarm on at most 2.5% of columns of random
    codes, 9% of single values), or
    when a valid number is embedded in a longer text cell or a column name. Integer
    columns are checked too (nine-digit values padded with a leading zero, as a CSV
    reader drops it; the sign ignored). In text-like files, png text and pdf strings
    any valid number blocks. Reasons never repeat the number.
``incomplete`` (fail, blocks)
    The checks could not look at the whole file: a parquet file declaring more than
    :data:`~airlock.checks.base.MAX_ROWS` rows or decoding beyond
    :func:`~airlock.checks.base.decoded_limit` (100 times its size, at least 16 MB, at
    most 200 MB), an xlsx workbook whose zip entries exceed the same bound, compressed
    png or pdf text inflating beyond 50 MB, or an unexpected error in a check.
``threshold`` (fail)
    A count cell with ``0 < value < rules.threshold``. Count columns: see
    :func:`column_role`. A recognised notebook report that rounded the table turns
    these into ``review`` (the rounding is the protection; a checker confirms it).
``zeros`` (review)
    A zero count cell, when ``rules.zeros_are_disclosive``: a checker decides whether
    it is structural. (:mod:`sde.sdc` fails zeros on the records; a finished table
    cannot tell a structural zero from an empty group.)
``dominance`` (review)
    A column of values (means, sums, rates, percentages: non-integer or named like a
    statistic). Dominance (``nk_n``/``nk_k``, ``p_ratio``) needs the records behind
    each cell, so it cannot be checked on a finished table; ACRO's answer is review.
``differencing`` (review)
    Against each earlier released table of the project (``earlier``), cells whose
    groups are the same or nested (:func:`sde.sdc.differencing.find_differences`:
    label columns are dimensions, the count column is one more) and whose counts
    differ by 1 to ``threshold - 1``. Above :data:`MAX_DIFFERENCING_PAIRS` cell pairs
    only identical categories are compared (when neither table repeats them).
``notebook`` (the notebook's own verdict)
    A companion ACRO ``results.json`` (as ``CheckedTable.write()`` writes) whose
    output lists this file's name, or the name in a companion ``checksums`` file
    (``<name>.txt`` holding this file's SHA-256): its status joins ours (it can only
    make the verdict worse, never better), and the report says it was recognised.
``unreadable`` (review)
    The file's type says table but its bytes are not one (or xlsx without openpyxl);
    its bytes are still scanned (as text, or the workbook's XML) for identifiers.

A table with no rows, or with no column recognised as counts or values, is ``review``.

>>> is_nhs_number("999 000 0018"), is_nhs_number("9990000017")
(True, False)
>>> column_role("n_patients", integer=True), column_role("mean_age", integer=False)
('count', 'statistic')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import pandas as pd

from airlock.checks.base import (
    BINARY_TYPES,
    BLOCKING_RULES,
    BY_RULE,
    MAX_COMPANION_BYTES,
    MAX_DIFFERENCING_PAIRS,
    MAX_LISTED,
    MAX_OUTCOME_CELLS,
    RULES,
    TABLE_TYPES,
    TEXT_TYPES,
    CheckResult,
    Flag,
    Rule,
    Status,
    TooLarge,
    Unreadable,
    worst,
)
from airlock.checks.binary import Budget, pdf_text, png_text
from airlock.checks.differencing import differencing
from airlock.checks.identifiers import (
    is_identifier_name,
    is_nhs_number,
    json_flags,
    markup_text,
    normalise,
    snake,
    text_flags,
    text_header_flags,
)
from airlock.checks.notebook import find_notebook
from airlock.checks.readers import (
    json_table,
    read_csv,
    read_parquet,
    read_xlsx,
    with_index,
    xlsx_scan,
)
from airlock.checks.report import entry, result, severity
from airlock.checks.tables import Table, column_role, examine
from sde.sdc.config import SDCConfig

__all__ = [
    "BLOCKING_RULES",
    "BY_RULE",
    "MAX_COMPANION_BYTES",
    "MAX_DIFFERENCING_PAIRS",
    "MAX_LISTED",
    "MAX_OUTCOME_CELLS",
    "RULES",
    "TABLE_TYPES",
    "TEXT_TYPES",
    "CheckResult",
    "Rule",
    "Status",
    "check_file",
    "column_role",
    "is_identifier_name",
    "is_nhs_number",
    "normalise",
    "snake",
    "worst",
]

#: One table's checks (module-level, so tests can replace it).
_examine = examine


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _tables(name: str, kind: str, data: bytes) -> list[tuple[str, pd.DataFrame]] | None:
    """The file's tables (one per sheet), None when it is not a table; raises
    Unreadable, or TooLarge when it decodes beyond the bound."""
    if kind == "csv":  # a title line makes pandas read the first column as an index
        return [(name, with_index(read_csv(data)))]
    if kind == "parquet":
        return [(name, read_parquet(data))]
    if kind == "xlsx":
        sheets = read_xlsx(data)
        return [(name if len(sheets) == 1 else f"{name}!{s}", f) for s, f in sheets]
    if kind == "json":
        try:
            frame = json_table(json.loads(data))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return None if frame is None else [(name, frame)]
    return None


def _found(name: str, kind: str, flags: Sequence[Flag]) -> CheckResult:
    """The verdict on a file that is not a table: ``fail`` with its findings, or ``none``."""
    flags = list(dict.fromkeys(f.named(name) for f in flags))[: MAX_LISTED * 2]
    if not flags:
        return CheckResult("none", None, (), ())
    return result("fail", [entry(name, kind, "fail", flags)], flags)


def _text_findings(kind: str, text: str) -> list[Flag]:
    """NHS numbers and identifier headers in a text file's content."""
    markup = kind in ("html", "svg")
    flags = text_flags(markup_text(text, "\x1f") if markup else text)
    flags += text_header_flags(markup_text(text) if markup else text)
    if kind == "json":
        with contextlib.suppress(ValueError, RecursionError):
            flags += json_flags(json.loads(text))
    return flags


def _text_check(name: str, kind: str, data: bytes) -> CheckResult:
    return _found(name, kind, _text_findings(kind, data.decode("utf-8", errors="replace")))


def _binary_check(name: str, kind: str, data: bytes) -> CheckResult:
    """Text inside a png or pdf: any NHS number or identifier header blocks."""
    try:
        texts = (png_text if kind == "png" else pdf_text)(data, Budget())
    except TooLarge as err:
        return _refused(name, kind, str(err))
    flags = []
    for text in texts:
        for f in text_flags(text) + text_header_flags(text):
            where = "a text in the file" if kind == "png" else "the document's text"
            reason = f.reason.replace(f"line {f.row}", where, 1)
            flags.append(Flag(f.rule, reason))
    return _found(name, kind, flags)


def _refused(name: str, kind: str, reason: str) -> CheckResult:
    """Blocked: the checks could not look at all of the file (fail closed)."""
    why = f"{name}: {reason}; it is blocked (identifiers cannot be ruled out)"
    flags = [Flag("incomplete", why)]
    return result("fail", [entry(name, kind, "fail", flags, exception=reason)], flags)


def _unreadable(name: str, kind: str, data: bytes, reason: str) -> CheckResult:
    flags = [Flag("unreadable", f"{name}: {reason}")]
    if kind == "xlsx":
        found = xlsx_scan(data)
    elif b"\x00" not in data[:65536]:
        text = data.decode("utf-8", errors="replace")
        found = text_flags(text) + text_header_flags(text, max_lines=HEADER_LINES)
    else:  # a broken binary table: its plain-encoded strings are still readable
        found = text_flags(data.decode("latin-1"))
    flags += [f.named(name) for f in found]
    status = "fail" if any(f.rule in BLOCKING_RULES for f in flags) else "review"
    return result(status, [entry(name, kind, status, flags, exception=reason)], flags)


#: Lines of an unreadable CSV searched for a header naming an identifier.
HEADER_LINES = 10


#: Released tables already read, by (name, SHA-256, rules): every file of a submission (and
#: every later submission of the project) compares against the same releases.
_RELEASED: OrderedDict[tuple[str, str, SDCConfig], list[tuple[str, Table]]] = OrderedDict()
_RELEASED_KEPT = 16


def _earlier_tables(
    earlier: Sequence[tuple[str, bytes]], rules: SDCConfig
) -> list[tuple[str, Table]]:
    out = []
    for release, body in earlier:
        key = (release, hashlib.sha256(body).hexdigest(), rules)
        if key not in _RELEASED:
            tables = []
            try:
                for uid, frame in _tables(release, _kind(release), body) or []:
                    tables.append((release, _examine(uid, frame, rules)))
            except (Unreadable, TooLarge):
                pass
            _RELEASED[key] = tables
            while len(_RELEASED) > _RELEASED_KEPT:
                _RELEASED.popitem(last=False)
        _RELEASED.move_to_end(key)
        out += _RELEASED[key]
    return out


def check_file(
    name: str,
    data: bytes,
    rules: SDCConfig,
    *,
    companions: Mapping[str, bytes] = {},
    earlier: Sequence[tuple[str, bytes]] = (),
) -> CheckResult:
    """Check one submitted file: the verdict, the ACRO report, blocking reasons, flags.

    ``companions`` are the other files submitted with it (name -> bytes: a notebook's
    ``results.json`` and checksums are recognised); ``earlier`` the tables the project
    released before (name, bytes), for differencing. Never raises on bad input; an
    unexpected error blocks the file (``incomplete``: it fails closed).
    """
    kind = _kind(name)
    try:
        return _check(name, kind, data, rules, companions, earlier)
    except Exception as err:  # the workflow must always get a verdict, and a safe one
        reason = (
            f"the checks could not complete ({type(err).__name__}), so identifiers cannot "
            "be ruled out; it is blocked until they can (fail closed)"
        )
        flags = [Flag("incomplete", f"{name}: {reason}")]
        return result("fail", [entry(name, kind, "fail", flags, exception=reason)], flags)


def _check(
    name: str,
    kind: str,
    data: bytes,
    rules: SDCConfig,
    companions: Mapping[str, bytes],
    earlier: Sequence[tuple[str, bytes]],
) -> CheckResult:
    if kind in BINARY_TYPES:
        return _binary_check(name, kind, data)
    try:
        tables = _tables(name, kind, data)
    except TooLarge as err:
        return _refused(name, kind, str(err))
    except Unreadable as err:
        return _unreadable(name, kind, data, str(err))
    if tables is None:
        return (
            _text_check(name, kind, data)
            if kind in TEXT_TYPES
            else CheckResult("none", None, (), ())
        )
    extra: list[Flag] = []
    if kind == "json":  # keys beside the table (a split table's other fields)
        extra = [f.named(name) for f in json_flags(json.loads(data))]
    notebook = find_notebook(name, data, companions)
    rounded = notebook is not None and notebook.protection not in ("none", "suppression", "")
    old = _earlier_tables(earlier, rules) if earlier else []
    entries, all_flags, overall = [], [], "pass"
    for uid, frame in tables:
        table = _examine(uid, frame, rules)
        diff_flags, findings, diff_notes = differencing(table, old, rules)
        flags = table.flags + diff_flags + extra
        extra = []
        notes = table.notes + diff_notes
        status = worst("pass", *(severity(f, rounded) for f in flags))
        if table.frame.empty or any(n.startswith("no count") for n in notes):
            status = worst(status, "review")
        if notebook is not None:
            status = worst(status, notebook.status)
            notes.append(
                f"recognised the notebook's report {notebook.report!r} (output "
                f"{notebook.uid!r}, {notebook.tool}): {notebook.summary or notebook.status}"
                + ("; its checksum matches this file" if notebook.verified else "")
            )
            if rounded:
                notes.append(
                    f"the notebook rounded this table ({notebook.protection}): small counts "
                    "are for a checker to review, not failures"
                )
        entries.append(
            entry(
                uid,
                kind,
                status,
                flags,
                table=table,
                notes=notes,
                notebook=notebook,
                findings=findings,
                rounded=rounded,
            )
        )
        all_flags += flags
        overall = worst(overall, status)
    return result(overall, entries, all_flags)
