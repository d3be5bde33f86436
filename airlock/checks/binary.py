"""Text hidden in figures and documents: png text chunks and pdf strings, inflated
within :data:`~airlock.checks.base.MAX_INFLATED_BYTES` (beyond it the file is blocked).

A png's ``tEXt``, ``zTXt`` and ``iTXt`` chunks (and any private chunk, and bytes after
``IEND``) are read as text; pixels are not (text drawn in the image is for the checker's
eyes). A pdf's strings - in content streams (plain or ``FlateDecode``), object streams,
metadata and the file's own dictionaries - are read as text; image and font streams are
not inflated, and text in fonts without a plain encoding (CID fonts) cannot be decoded
here: the checker reads the rendered pages.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

from airlock.checks.base import MAX_INFLATED_BYTES, TooLarge

_PNG = b"\x89PNG\r\n\x1a\n"
_IMAGE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM"})


@dataclass
class Budget:
    """Bytes that may still be inflated; running out raises :class:`TooLarge`."""

    left: int = MAX_INFLATED_BYTES
    used: int = field(default=0)

    def inflate(self, data: bytes, what: str) -> bytes:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, self.left + 1)
        except zlib.error:
            out = b""  # broken: a reader shows nothing of it either
        if len(out) > self.left or inflater.unconsumed_tail:
            raise TooLarge(
                f"{what} inflates beyond {MAX_INFLATED_BYTES / 1e6:.0f} MB, the most the "
                "airlock inflates to look for identifiers"
            )
        self.left -= len(out)
        return out


def png_text(data: bytes, budget: Budget) -> list[str]:
    """The texts a png carries besides its pixels."""
    texts: list[str] = []
    pos = len(_PNG) if data.startswith(_PNG) else 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if length > len(data) or not kind.isalpha():
            texts.append(data[pos:].decode("latin-1"))  # not chunks: read what is left
            return texts
        pos += 12 + length
        if kind == b"tEXt":
            texts.append(body.decode("latin-1"))
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\x00")
            texts.append(key.decode("latin-1"))
            texts.append(budget.inflate(rest[1:], "a zTXt chunk").decode("latin-1"))
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\x00")
            compressed = rest[:1] == b"\x01"
            lang, _, rest = rest[2:].partition(b"\x00")
            translated, _, text = rest.partition(b"\x00")
            if compressed:
                text = budget.inflate(text, "an iTXt chunk")
            for part in (key, lang, translated, text):
                texts.append(part.decode("utf-8", errors="replace"))
        elif kind not in _IMAGE_CHUNKS:
            texts.append(body.decode("latin-1"))
        if kind == b"IEND":
            break
    if pos < len(data):
        texts.append(data[pos:].decode("latin-1"))  # bytes after the image
    return texts


_STREAM = re.compile(rb"stream\r?\n")
_ENDSTREAM = re.compile(rb"\r?\n?endstream")
_SKIPPED = re.compile(rb"/Subtype\s*/Image|/FontFile|/Length[123]\b|/Type\s*/XObject")
_XREF_LINE = re.compile(rb"^\d{10} \d{5} [fn]\s*$", re.MULTILINE)
_LITERAL = re.compile(rb"\((?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*\)", re.DOTALL)
_HEX = re.compile(rb"<([0-9A-Fa-f\s]{2,})>")
_SHOW = re.compile(rb"\]\s*TJ|\)\s*(?:Tj|'|\")|>\s*Tj")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(raw: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8) & 0xFF])
        if code in (b"\r\n", b"\n", b"\r"):
            return b""
        return _ESCAPES.get(code, code)

    return re.sub(rb"\\([0-7]{1,3}|\r\n|.)", one, raw, flags=re.DOTALL)


def _strings(chunk: bytes) -> str:
    """The strings of a pdf fragment: one text showing (``[...] TJ`` / ``(...) Tj``) per
    line, its pieces joined as a reader sees them."""
    out: list[bytes] = []
    line: list[bytes] = []
    pos = 0
    tokens = sorted(
        [(m.start(), m.end(), "lit", m) for m in _LITERAL.finditer(chunk)]
        + [(m.start(), m.end(), "hex", m) for m in _HEX.finditer(chunk)],
        key=lambda t: t[0],
    )
    for start, end, kind, match in tokens:
        if start < pos:
            continue
        between = chunk[pos:start]
        if line and (b"T" in between or b"'" in between or b'"' in between):
            out.append(b"".join(line))
            line = []
        if kind == "lit":
            line.append(_unescape(match.group()[1:-1]))
        else:
            hexa = re.sub(rb"\s", b"", match.group(1))
            try:
                raw = bytes.fromhex(hexa.decode() + ("0" if len(hexa) % 2 else ""))
            except ValueError:
                raw = b""
            if raw[:2] in (b"\xfe\xff", b"\xff\xfe"):
                raw = raw.decode("utf-16", errors="replace").encode()
            line.append(raw)
        pos = end
    if line:
        out.append(b"".join(line))
    return "\n".join(part.decode("latin-1") for part in out)


def pdf_text(data: bytes, budget: Budget) -> list[str]:
    """The texts of a pdf: its strings (streams inflated within the budget) and, outside
    streams and the xref table, its raw bytes."""
    texts: list[str] = []
    outside: list[bytes] = []
    pos = 0
    for match in _STREAM.finditer(data):
        if match.start() < pos:
            continue
        head_start = max(data.rfind(b"obj", pos, match.start()), pos)
        head = data[head_start : match.start()]
        end = _ENDSTREAM.search(data, match.end())
        stop = end.start() if end else len(data)
        body = data[match.end() : stop]
        outside.append(data[pos : match.start()])
        pos = end.end() if end else len(data)
        if _SKIPPED.search(head):
            continue
        if b"/Filter" in head:
            if b"FlateDecode" not in head or re.search(rb"/Filter\s*\[[^\]]*/\w+[^\]]*/\w+", head):
                continue  # another or a chained filter: not inflated
            body = budget.inflate(body, "a pdf stream")
        texts.append(_strings(body))
        if b"/Metadata" in head or b"<x:xmpmeta" in body[:2000] or b"<?xpacket" in body[:200]:
            texts.append(body.decode("utf-8", errors="replace"))
    outside.append(data[pos:])
    rest = _XREF_LINE.sub(b"", b"".join(outside))
    texts.append(_strings(rest))
    texts.append(rest.decode("latin-1"))
    return texts
