"""Everything a file holds that its rendering does not show, for the checker who approves it.

A table is shown as its cells and a figure as a picture, but the bytes released are the
whole file: the keys of a JSON document beside its table, an Excel workbook's comments,
formulas and properties, a Parquet file's schema metadata, the text chunks of a PNG, the
source of an SVG. :func:`hidden_text` gathers that as text, so the file page can show it
next to the rendering; a checker never approves bytes they could not see.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

from airlock.checks.binary import Budget, png_text

#: Characters of extracted text shown at most (the page links to the whole file beyond).
MAX_TEXT = 200_000


def hidden_text(name: str, data: bytes) -> str | None:
    """Text in ``data`` that the page's table or picture does not show; None if none."""
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    reader = {
        "json": _json,
        "svg": _svg,
        "png": _png,
        "xlsx": _xlsx,
        "parquet": _parquet,
    }.get(kind)
    if reader is None:
        return None
    try:
        text = "\n".join(reader(data)).strip()
    except Exception as err:  # unreadable: say so; the checks judged the file already
        text = f"(the file's other contents could not be read: {err})"
    return text[:MAX_TEXT] or None


def _json(data: bytes) -> Iterator[str]:
    """The whole document, indented (keys beside a table, indexes, row labels)."""
    yield json.dumps(json.loads(data.decode("utf-8", "replace")), indent=1, ensure_ascii=False)


def _svg(data: bytes) -> Iterator[str]:
    """The source: titles, descriptions and text an image need not draw."""
    yield data.decode("utf-8", "replace")


def _png(data: bytes) -> Iterator[str]:
    yield from png_text(data, Budget())


def _parquet(data: bytes) -> Iterator[str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(io.BytesIO(data))
    for key, value in (schema.metadata or {}).items():
        yield f"schema metadata {_text(key)}: {_text(value)}"
    for field in schema:
        for key, value in (field.metadata or {}).items():
            yield f"column {field.name} {_text(key)}: {_text(value)}"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _xlsx(data: bytes) -> Iterator[str]:
    """Comments, formulas (their text: a formula without a cached value shows empty),
    document properties and every part's text that is not cell values."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), data_only=False, read_only=False)
    props = book.properties
    for field in (
        "creator",
        "title",
        "subject",
        "description",
        "keywords",
        "lastModifiedBy",
        "category",
    ):
        value = getattr(props, field, None)
        if value:
            yield f"property {field}: {value}"
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.comment is not None:
                    yield f"{sheet.title}!{cell.coordinate} comment: {cell.comment.text}"
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    yield f"{sheet.title}!{cell.coordinate} formula: {cell.value}"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.filename.startswith(("docProps/custom", "customXml/")):
                yield f"{info.filename}: {archive.read(info).decode('utf-8', 'replace')[:5000]}"
