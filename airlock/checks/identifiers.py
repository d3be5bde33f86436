"""Person identifiers: column names that say so, NHS numbers in any shape, text scans.

Names are split into words (snake, camel and digit boundaries, and run-together words
such as ``personid`` or ``nhsnumber`` split into known words) and matched by
:func:`is_identifier_name`. Text is normalised (:func:`normalise`: NFKC, so fullwidth
digits and no-break spaces become ASCII; other Unicode digits become ASCII digits;
invisible format characters are dropped; dashes become ``-``) before NHS numbers are
looked for, and only ASCII digits are matched after that.

>>> is_nhs_number("999 000 0018"), is_nhs_number("9990000017"), is_nhs_number("999.000.0018")
(True, False, True)
>>> [is_identifier_name(n) for n in ("personid", "patient_id_hashed", "n_patients", "period")]
[True, True, False, False]
>>> nhs_numbers(normalise("NHS\\uff19\\uff19\\uff19\\u00a0000\\u00a00018, ref id_4010232137"))
[(1, True), (1, True)]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from airlock.checks.base import MAX_LISTED, Flag

# --------------------------------------------------------------------------- names


def snake(name: Any) -> str:
    """A column name in snake case, for matching.

    >>> snake("NHSNumber"), snake("PersonID"), snake(" Person source value "), snake("id2")
    ('nhs_number', 'person_id', 'person_source_value', 'id_2')
    """
    text = normalise(str(name)).strip()
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"([A-Za-z])([0-9])|([0-9])([A-Za-z])", r"\1\3_\2\4", text)
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Who an identifier is about (singular: ``patients`` is a count, ``patient`` a key).
SUBJECT_WORDS = _words(
    "person patient subject participant individual member client provider caresite nhs chi pseudo"
)
#: What makes a subject word an identifier: ``person_id``, ``patient_number``, ``nhs_no``.
ID_WORDS = _words(
    "id ids identifier identifiers number numbers no nos num nr key keys hash hashed "
    "pseudonym pseudonyms ref reference token uuid guid sk"
)
#: Words that may stand between the subject and the id word (``patient_study_id``).
MODIFIER_WORDS = _words(
    "hashed hash pseudo pseudonymised pseudonymized anon anonymised anonymized encrypted "
    "enc masked linked link linkage study local global master unique internal external "
    "original orig raw source system sys new old true real trial deid secondary primary "
    "alt alternative other"
)
#: Words that are identifiers wherever they appear in a name.
IDENTIFIER_WORDS = _words(
    "mrn pid patid eid empi upi nhsno nhsnum nhsnumber pseudonym pseudonyms pseudoid"
)
_HOSPITAL_NUMBER = _words("number no num nr")
_VOCABULARY = (
    SUBJECT_WORDS
    | ID_WORDS
    | MODIFIER_WORDS
    | IDENTIFIER_WORDS
    | _words("care site hospital source value")
)


@lru_cache(maxsize=4096)
def _split_word(word: str) -> tuple[str, ...]:
    """A run-together word as known words (``personid`` -> person, id), else itself."""
    if word in _VOCABULARY or not word.isalpha() or len(word) > 40:
        return (word,)
    best: list[tuple[str, ...] | None] = [None] * (len(word) + 1)
    best[0] = ()
    for end in range(2, len(word) + 1):
        for start in range(0, end - 1):
            head = best[start]
            if head is not None and word[start:end] in _VOCABULARY:
                best[end] = (*head, word[start:end])
                break
    return best[-1] or (word,)


def name_tokens(name: Any) -> tuple[str, ...]:
    """The words of a name, run-together words split into known words.

    >>> name_tokens("PersonIDHashed2"), name_tokens("care_site_id"), name_tokens("chin")
    (('person', 'id', 'hashed', '2'), ('caresite', 'id'), ('chin',))
    """
    words = [w for part in snake(name).split("_") if part for w in _split_word(part)]
    joined: list[str] = []
    for word in words:  # "care site" is one subject
        if joined and joined[-1] == "care" and word == "site":
            joined[-1] = "caresite"
        else:
            joined.append(word)
    return tuple(joined)


@lru_cache(maxsize=65536)
def _is_identifier_tokens(tokens: tuple[str, ...]) -> bool:
    if not tokens:
        return False
    if tokens == ("chi",) or set(tokens) & IDENTIFIER_WORDS:
        return True
    for i, word in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if word == "source" and nxt == "value":  # OMOP's raw source values
            return True
        if word not in SUBJECT_WORDS and word != "hospital":
            continue
        k = i + 1
        while k < len(tokens) and (tokens[k].isdigit() or tokens[k] in MODIFIER_WORDS):
            if tokens[k] in ID_WORDS and word != "hospital":
                return True  # "patient_hashed"
            k += 1
        if k < len(tokens):
            wanted = _HOSPITAL_NUMBER if word == "hospital" else ID_WORDS
            if tokens[k] in wanted:
                return True
    return False


def is_identifier_name(name: Any) -> bool:
    """Whether a column name says it holds person identifiers.

    A subject word (person, patient, subject, participant, individual, member, client,
    provider, care site, nhs, chi, pseudo) followed, after optional modifiers (hashed,
    study, local, source, digits...), by an id word (id, ids, number, no, num, key,
    hash, hashed, pseudonym, ref...); ``hospital`` followed by a number word; a word
    that is an identifier anywhere (mrn, pid, patid, eid, nhsno, pseudonym...); the name
    ``chi`` alone; and OMOP's ``*_source_value``.

    >>> [is_identifier_name(n) for n in ("person_id", "PersonSourceValue", "n_persons")]
    [True, True, False]
    >>> [is_identifier_name(n) for n in ("provider_id", "care_site_id", "episode_id")]
    [True, True, False]
    >>> [is_identifier_name(n) for n in ("number_of_patients", "hospital_id", "chi_sq")]
    [False, False, False]
    """
    return _is_identifier_tokens(name_tokens(name))


#: Name words that say a column holds some kind of key: there, any valid NHS number blocks.
KEY_HINT_WORDS = _words("id ids identifier identifiers ref refs reference key keys nhs chi")


def is_key_name(name: Any) -> bool:
    """Whether a column is named like an identifier or any other key (``ref``, ``*_id``)."""
    tokens = name_tokens(name)
    return _is_identifier_tokens(tokens) or bool(set(tokens) & KEY_HINT_WORDS)


# --------------------------------------------------------------------------- NHS numbers

_WEIGHTS = np.arange(10, 1, -1)
_FORMAT = re.compile(r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-")
)
#: Three, three and four ASCII digits: run together, or separated by one to three
#: spaces, tabs, hyphens or slashes (mixed allowed), or by two dots. No backreference
#: or lookaround: pandas may run it with RE2.
NHS_SHAPE = r"[0-9]{3}(?:[ \t/-]{1,3}[0-9]{3}[ \t/-]{1,3}|\.[0-9]{3}\.|[0-9]{3})[0-9]{4}"
#: The shape standing alone: not inside a longer number or a decimal. Letters, ``_``,
#: ``#`` or a sign may be glued on (``NHS9434765919``, ``id_9434765919``, ``-9434765919``).
NHS_TOKEN = re.compile(rf"(?<![0-9.]){NHS_SHAPE}(?![0-9]|\.[0-9])")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF-")


def normalise(text: str) -> str:
    """Text with Unicode digits, spaces and dashes made ASCII and format characters gone.

    >>> normalise("\\uff19\\uff19\\uff19\\u00a0\\u0660\\u200b1\\u2013x")
    '999 01-x'
    """
    if text.isascii():
        return text
    text = _FORMAT.sub("", unicodedata.normalize("NFKC", text))
    text = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), text)
    return text.translate(_DASHES)


def _valid_digits(digits: np.ndarray) -> np.ndarray:
    """Rows of ten digits whose last is the modulus-11 check digit of the first nine."""
    check = 11 - (digits[:, :9] @ _WEIGHTS) % 11
    check = np.where(check == 11, 0, check)
    return (check != 10) & (check == digits[:, 9])


def valid_strings(values: Sequence[str]) -> np.ndarray:
    """Validity of strings of ten ASCII digits (anything else is not valid)."""
    valid = np.zeros(len(values), dtype=bool)
    if not values:
        return valid
    ok = np.array([len(v) == 10 and v.isascii() and v.isdigit() for v in values], dtype=bool)
    good = values if ok.all() else [v for v, fine in zip(values, ok, strict=True) if fine]
    if len(good):
        raw = np.frombuffer("".join(good).encode("ascii"), dtype=np.uint8)
        valid[ok] = _valid_digits(raw.reshape(-1, 10).astype(np.int64) - 48)
    return valid


def valid_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ten-digit shaped, valid) for whole numbers (nine digits read as a leading zero;
    the sign ignored)."""
    values = np.abs(values)
    shaped = (values >= 100_000_000) & (values < 10_000_000_000)
    ints = values[shaped].astype(np.int64)
    digits = (ints[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    valid = np.zeros(values.shape, dtype=bool)
    valid[shaped] = _valid_digits(digits)
    return shaped, valid


def _hashlike(text: str, start: int, end: int) -> bool:
    """A match inside a hash or a UUID: a run of 16 or more hex digits (and hyphens)
    holding a hex letter, with no other letter or digit around it."""
    left, right = start, end
    while left > 0 and text[left - 1] in _HEX_CHARS:
        left -= 1
    while right < len(text) and text[right] in _HEX_CHARS:
        right += 1
    run = text[left:right]
    if right - left < 16 or not any(c.isalpha() for c in run):
        return False
    before = text[left - 1] if left else " "
    after = text[right] if right < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def nhs_matches(text: str) -> Iterator[re.Match[str]]:
    """NHS-number shapes standing alone in normalised text (hashes and UUIDs left out)."""
    for match in NHS_TOKEN.finditer(text):
        if not _hashlike(text, match.start(), match.end()):
            yield match


def nhs_numbers(text: str) -> list[tuple[int, bool]]:
    """(line, valid) of each NHS-number shape in normalised text."""
    found = list(nhs_matches(text))
    valid = valid_strings([re.sub(r"[^0-9]", "", m.group()) for m in found])
    out, line, pos = [], 1, 0
    for match, ok in zip(found, valid, strict=True):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        out.append((line, bool(ok)))
    return out


def is_nhs_number(text: str) -> bool:
    """Ten digits (optionally separated 3-3-4) with a valid modulus-11 check digit."""
    text = normalise(text).strip()
    match = NHS_TOKEN.fullmatch(text)
    return bool(match) and bool(valid_strings([re.sub(r"[^0-9]", "", text)])[0])


def text_flags(text: str) -> list[Flag]:
    """Valid NHS numbers in text, by line (the number is never repeated)."""
    flags: list[Flag] = []
    text = normalise(text)
    for line, ok in nhs_numbers(text):
        if ok:
            flags.append(Flag("nhs-number", f"line {line} holds an NHS number", row=line))
            if len(flags) >= MAX_LISTED:
                break
    return flags


# --------------------------------------------------------------------------- headers in text

_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?\s*$")
_CELL_SPLIT = re.compile(r"[,;\t|]")
_WIDE_SPLIT = re.compile(r"\s{2,}")
_CLEAN_CELL = re.compile(r"^[\"']?[A-Za-z][\w .#/-]{0,62}[\"']?$")


def header_cells(cells: Sequence[Any]) -> list[str]:
    """Cells of a row that reads like a header, named like person identifiers.

    A header row has no number in it; its identifier cells are short names (at most
    three words, plain characters), so prose and code are not read as headers.
    """
    texts = [normalise(str(c)).strip() for c in cells]
    texts = [t for t in texts if t and t.lower() not in ("nan", "none", "<na>", "nat")]
    if not texts or any(_NUMBER.match(t) for t in texts):
        return []
    return [t for t in texts if _header_name(t)]


def _header_name(cell: str) -> bool:
    """A cell that is a name, and a person identifier's (several words: all known ones)."""
    if not _CLEAN_CELL.match(cell):
        return False
    name = cell.strip("\"'")
    words = name.split()
    if len(words) > 3:
        return False
    if len(words) > 1 and not all(
        t in _VOCABULARY or t.isdigit() for w in words for t in name_tokens(w)
    ):
        return False
    return is_identifier_name(name)


def text_header_flags(text: str, *, max_lines: int | None = None) -> list[Flag]:
    """Lines of text that read like a table's header naming a person identifier.

    A line is split on ``, ; tab |`` (or, with none of those, on runs of two or more
    spaces, as a fixed-width table); it needs two or more cells.
    """
    flags: list[Flag] = []
    text = normalise(text)
    for number, line in enumerate(text.splitlines(), 1):
        if max_lines is not None and number > max_lines:
            break
        if len(line) > 2000 or not line.strip():
            continue
        splitter = _CELL_SPLIT if _CELL_SPLIT.search(line) else _WIDE_SPLIT
        cells = [c for c in splitter.split(line.strip()) if c.strip()]
        if len(cells) < 2:
            continue
        for cell in header_cells(cells):
            flags.append(
                Flag(
                    "identifier",
                    f"line {number} reads like a table header naming {cell!r}, "
                    "named like a person identifier",
                    row=number,
                )
            )
        if len(flags) >= MAX_LISTED:
            break
    return flags


_TAG = re.compile(r"<[^<>]{0,20000}>")
_COMMENT = re.compile(r"<!--(.*?)-->|<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_ATTRIBUTE = re.compile(r"([\w:.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
#: Attributes holding geometry (paths, glyph outlines, transforms), not text.
_GEOMETRY = _words("d points transform viewbox style x y x1 x2 y1 y2 cx cy r rx ry width height")


def markup_text(text: str, sep: str = "\t") -> str:
    """Markup (html, svg) as its text: text nodes and attribute values, each tag replaced
    by ``sep`` (and its own line breaks, so line numbers hold), entities decoded. In
    geometry (paths, glyph outlines, transforms) numbers are kept apart, so only a
    run-together ten-digit number there reads as one (``M 750 597 1062`` does not)."""
    import html

    def tag(match: re.Match[str]) -> str:
        values = []
        for name, a, b in _ATTRIBUTE.findall(match.group()):
            value = a or b
            if name.lower() in _GEOMETRY:
                value = re.sub(r"[\s,]+", "\x1f", value)
            values.append(value.replace("\n", " "))
        newlines = "\n" * match.group().count("\n")
        return sep + sep.join(values) + sep + newlines

    text = _COMMENT.sub(
        lambda m: sep + (m.group(1) or m.group(2) or "") + sep, text
    )  # comments are read too
    return html.unescape(_TAG.sub(tag, text))


# --------------------------------------------------------------------------- json

_NAMING_KEYS = _words("name names column columns field fields header headers index label")


def json_flags(doc: Any) -> list[Flag]:
    """Identifier-named keys anywhere in a JSON document (and column names listed under
    keys such as ``columns`` or ``name``), and NHS numbers in its keys and string values
    (after JSON unescaping, so ``\\u0039...`` cannot hide one). Walked without recursion."""
    flags: list[Flag] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    seen = 0
    while stack and len(flags) < MAX_LISTED:
        node, parent = stack.pop()
        seen += 1
        if seen > 5_000_000:
            flags.append(Flag("incomplete", "the JSON document is too large to walk"))
            break
        if isinstance(node, dict):
            for raw_key, value in node.items():
                key = str(raw_key)
                if is_identifier_name(key):
                    flags.append(
                        Flag("identifier", f"a key is named {key!r}, like a person identifier")
                    )
                if text_flags(key):
                    flags.append(Flag("nhs-number", "a key holds an NHS number"))
                stack.append((value, key))
        elif isinstance(node, list):
            stack.extend((item, parent) for item in node)
        elif isinstance(node, str):
            if text_flags(node):
                flags.append(Flag("nhs-number", "a string value holds an NHS number"))
            elif snake(parent) in _NAMING_KEYS and len(node) <= 64 and is_identifier_name(node):
                flags.append(
                    Flag("identifier", f"a column is named {node!r}, like a person identifier")
                )
    return list(dict.fromkeys(flags))
