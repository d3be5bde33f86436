"""Reading a file as tables, within bounds: nothing is decoded beyond
:func:`~airlock.checks.base.decoded_limit` (parquet and xlsx are measured from their
metadata first and refused with :class:`~airlock.checks.base.TooLarge`)."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pandas as pd

from airlock.checks.base import MAX_LISTED, MAX_ROWS, Flag, TooLarge, Unreadable, decoded_limit
from airlock.checks.identifiers import is_identifier_name, text_flags


def decode(data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise Unreadable("the file is binary (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise Unreadable("the file is not text in UTF-8 or Windows-1252") from None


def read_csv(data: bytes) -> pd.DataFrame:
    text = decode(data)
    first = text.split("\n", 1)[0]
    sep = max((",", ";", "\t", "|"), key=first.count) if first.count(",") == 0 else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.EmptyDataError:
        raise Unreadable("the CSV file holds no table") from None
    except (pd.errors.ParserError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise Unreadable(f"the file is not a well-formed CSV table ({reason})") from None
    return frame


#: Bytes a decoded cell takes in memory, by parquet physical type (strings: a Python
#: object's overhead plus a short text; the cautious guess).
_CELL_BYTES = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
_STRING_BYTES = 64


def parquet_size(data: bytes) -> tuple[int, int]:
    """(rows, estimated decoded bytes) of a parquet file, from its footer alone."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    rows = int(meta.num_rows)
    width = 0
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        kind = str(column.physical_type)
        if kind == "FIXED_LEN_BYTE_ARRAY":
            width += max(int(column.length or 0), 1)
        else:
            width += _CELL_BYTES.get(kind, _STRING_BYTES)
    return rows, rows * max(width, 1)


def read_parquet(data: bytes) -> pd.DataFrame:
    try:
        rows, size = parquet_size(data)
    except Exception as err:  # pyarrow raises many types for broken files
        raise Unreadable(
            f"the file is not a readable Parquet table ({type(err).__name__})"
        ) from None
    limit = decoded_limit(len(data))
    if rows > MAX_ROWS or size > limit:
        raise TooLarge(
            f"the Parquet file declares {rows:,} rows, about {size / 1e6:,.0f} MB once "
            f"decoded from {len(data):,} bytes; the airlock decodes at most {MAX_ROWS:,} "
            f"rows and {limit / 1e6:,.0f} MB for a file this size, so it was not read"
        )
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # pyarrow raises many types for broken files
        raise Unreadable(
            f"the file is not a readable Parquet table ({type(err).__name__})"
        ) from None
    return with_index(frame)


def with_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a kept index (named, several levels, or not 0..n-1) as columns."""
    index = frame.index
    plain = (
        isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )
    return frame if plain else frame.reset_index(allow_duplicates=True)


def xlsx_size(data: bytes) -> int:
    """Bytes a workbook's zip entries declare uncompressed (zipfile never reads more)."""
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        infos = book.infolist()
        if len(infos) > 10_000:
            raise TooLarge(f"the workbook holds {len(infos):,} files")
        return sum(info.file_size for info in infos)


def check_xlsx_size(data: bytes) -> None:
    try:
        size = xlsx_size(data)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        why = f"the file is not a readable xlsx workbook ({type(err).__name__})"
        raise Unreadable(why) from None
    limit = decoded_limit(len(data))
    if size > limit:
        raise TooLarge(
            f"the workbook is {size / 1e6:,.0f} MB uncompressed, from {len(data):,} bytes; "
            f"the airlock reads at most {limit / 1e6:,.0f} MB for a file this size"
        )


def read_xlsx(data: bytes) -> list[tuple[str, pd.DataFrame]]:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise Unreadable(
            "xlsx files cannot be read here (openpyxl is not installed): a checker must "
            "review it; the workbook's strings and numbers were scanned for identifiers"
        ) from None
    check_xlsx_size(data)
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None)
    except Exception as err:  # openpyxl and zipfile raise many types for broken files
        raise Unreadable(
            f"the file is not a readable xlsx workbook ({type(err).__name__})"
        ) from None
    return [(str(sheet), frame) for sheet, frame in sheets.items()]


def _scalars(values: Any) -> bool:
    return all(v is None or isinstance(v, str | int | float | bool) for v in values)


def _json_rows(obj: Any) -> tuple[list[Any], list[Any] | None] | None:
    """(rows, column names) of a JSON table in records or split orient, else None."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return (obj, None) if all(_scalars(r.values()) for r in obj) else None
    if isinstance(obj, dict) and set(obj) >= {"columns", "data"}:
        rows = obj["data"]
        ok = isinstance(rows, list) and all(isinstance(r, list) and _scalars(r) for r in rows)
        return (rows, list(obj["columns"])) if ok else None
    return None


def json_table(obj: Any) -> pd.DataFrame | None:
    """A JSON document as a table when it is one (records, split or columns orient).

    An ACRO report (a mapping with ``results``) and other documents are not tables.
    """
    rows = _json_rows(obj)
    if rows is not None:
        return pd.DataFrame(rows[0], columns=rows[1])
    if not isinstance(obj, dict) or not obj or "results" in obj:
        return None
    values = list(obj.values())
    lists = all(isinstance(v, list) and _scalars(v) for v in values)
    if lists and len({len(v) for v in values}) == 1:
        return pd.DataFrame(obj)
    if all(isinstance(v, dict) and v and _scalars(v.values()) for v in values):
        return pd.DataFrame(obj).reset_index(drop=True)
    return None


_XML_CELL = re.compile(r"<(?:t|v)(?:\s[^>]*)?>([^<]*)</(?:t|v)>")


def xlsx_scan(data: bytes) -> list[Flag]:
    """Without openpyxl (or when a workbook cannot be read): identifiers among a
    workbook's strings and numbers (XML scan, within the decoded bound)."""
    flags: list[Flag] = []
    budget = decoded_limit(len(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            for info in book.infolist():
                if not info.filename.endswith(".xml"):
                    continue
                if info.file_size > budget:
                    flags.append(
                        Flag("incomplete", f"{info.filename} is too large to scan when inflated")
                    )
                    break
                budget -= info.file_size
                xml = book.read(info).decode("utf-8", errors="replace")
                for raw in _XML_CELL.findall(xml):
                    if raw.strip() and is_identifier_name(raw):
                        flags.append(
                            Flag("identifier", f"a column is named {raw.strip()!r}", column=raw)
                        )
                    elif text_flags(raw):
                        flags.append(Flag("nhs-number", "a cell holds an NHS number"))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
        pass
    return list(dict.fromkeys(flags))[:MAX_LISTED]
