"""Parse stage: one statement of plain ASCII SQL into a sqlglot tree, or a refusal.

Refused here, before any rule runs: SQL too long, characters outside ASCII
anywhere but inside string literals (homoglyphs, zero-width and bidirectional
characters), control characters, text that does not tokenize or parse, more
than one statement, anything sqlglot keeps only as a raw ``Command``, and names the
workbench reserves for itself (``__sde...``: ``names.reserved``).
Identifiers are then normalised the way the researcher's dialect resolves
them (PostgreSQL folds unquoted names to lower case and keeps quoted ones;
DuckDB and Spark ignore case), so every rule compares like with like.

Text that is not one query (empty, unparsable, several statements, an unknown
dialect) is :class:`~sde.errors.InvalidInput`; what could smuggle something past
the rules (non-ASCII or control characters, a raw ``Command``) is a
:class:`~sde.errors.ScopeViolation`. Both keep their ``parse.*`` rule ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokens import TokenType

from sde.errors import InvalidInput, ScopeViolation
from sde.proxy.context import DIALECTS, Limits, RuleContext

_STRING_TOKENS = frozenset(
    {
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.RAW_STRING,
        TokenType.BYTE_STRING,
        TokenType.UNICODE_STRING,
    }
)
_ALLOWED_CONTROL = frozenset("\t\n\r")
_DEFAULT_LIMITS = Limits()


class _QuietWhileParsing(logging.Filter):
    """Drops sqlglot's warnings logged by a thread while it is inside :func:`parse`.

    sqlglot logs a warning when it falls back to a raw ``Command`` (which :func:`parse`
    refuses anyway). Installed once on the ``sqlglot`` logger; whether a record is
    dropped depends only on the thread that logs it (handlers run in that thread), so
    concurrent parses never touch shared state and other threads' warnings pass.
    """

    def __init__(self) -> None:
        super().__init__("sde.proxy.parse")
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not getattr(self._local, "active", False)

    @contextmanager
    def active(self) -> Iterator[None]:
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = False


_QUIET = _QuietWhileParsing()
logging.getLogger("sqlglot").addFilter(_QUIET)


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def check_characters(sql: str, dialect: str) -> None:
    """Refuse non-ASCII or control characters outside string literals."""
    if "\x00" in sql:
        raise ScopeViolation("parse.control-character", "the query contains a NUL character")
    if sql.isascii() and not any(ord(c) < 32 and c not in _ALLOWED_CONTROL for c in sql):
        return
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:
        raise InvalidInput("parse.invalid", "the query could not be read as SQL") from None
    inside = bytearray(len(sql))
    for tok in tokens:
        if tok.token_type in _STRING_TOKENS:
            inside[tok.start : tok.end + 1] = b"\x01" * (tok.end + 1 - tok.start)
    for i, ch in enumerate(sql):
        if inside[i]:
            continue
        if not ch.isascii():
            raise ScopeViolation(
                "parse.non-ascii",
                f"character {_describe(ch)} at position {i} is not allowed outside a string "
                "literal (write identifiers and keywords in plain ASCII)",
                position=i,
            )
        if ord(ch) < 32 and ch not in _ALLOWED_CONTROL:
            raise ScopeViolation(
                "parse.control-character",
                f"control character {_describe(ch)} at position {i} is not allowed",
                position=i,
            )


def parse(sql: str, ctx: RuleContext) -> exp.Expression:
    """The single statement of ``sql`` in ``ctx.dialect``, identifiers normalised."""
    return parse_sql(sql, ctx.dialect, ctx.limits)


def parse_sql(sql: str, dialect: str, limits: Limits = _DEFAULT_LIMITS) -> exp.Expression:
    """:func:`parse` outside a project's rules (the DP analysis reads queries with it)."""
    if dialect not in DIALECTS:
        raise InvalidInput(
            "parse.dialect", f"dialect {dialect} is not supported; use one of {DIALECTS}"
        )
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("parse.empty", "the query is empty")
    if len(sql) > limits.max_sql_chars:
        raise ScopeViolation(
            "limits.query-size",
            f"the query is {len(sql)} characters long; the limit is {limits.max_sql_chars}",
        )
    check_characters(sql, dialect)
    try:
        with _QUIET.active():  # the Command fallback warning: refused below
            statements = sqlglot.parse(sql, read=dialect)
    except RecursionError:
        raise ScopeViolation("limits.depth", "the query is nested too deeply") from None
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else "unrecognised syntax"
        raise InvalidInput(
            "parse.invalid", f"the query could not be parsed: {first[:200]}"
        ) from None
    found: list[exp.Expr] = [s for s in statements if s is not None]
    if not found:
        raise InvalidInput("parse.empty", "the query is empty")
    if len(found) > 1:
        raise InvalidInput(
            "parse.multiple-statements",
            f"the query holds {len(found)} statements; send exactly one",
        )
    tree = found[0]
    if not isinstance(tree, exp.Expression):
        raise ScopeViolation("parse.unsupported", "the query is not a statement the proxy knows")
    command = tree if isinstance(tree, exp.Command) else tree.find(exp.Command)
    if command is not None:
        keyword = str(command.this).split()[0].upper() if command.this else "statement"
        raise ScopeViolation(
            "parse.unsupported",
            f"{keyword} is not understood by the proxy and is refused",
            keyword=keyword,
        )
    try:
        tree = normalize_identifiers(tree, dialect=dialect)
    except RecursionError:
        raise ScopeViolation("limits.depth", "the query is nested too deeply") from None
    for node in tree.walk():
        node.comments = None  # the engine gets none of the researcher's text, comments included
    check_reserved_names(tree)
    return tree


#: Names the workbench gives its own tables and columns (hidden person counts, the groups a
#: threshold keeps, the federation merge's node parts): never the researcher's.
RESERVED_PREFIX = "__sde"


def check_reserved_names(tree: exp.Expression) -> None:
    """Refuse any identifier (table, alias, CTE, column, output) the workbench reserves, so a
    query can never name, shadow or forge the proxy's or the merge's own relations."""
    for ident in tree.find_all(exp.Identifier):
        name = str(ident.this)
        if name.lower().startswith(RESERVED_PREFIX):
            raise ScopeViolation(
                "names.reserved",
                f"the name {name} is reserved for the workbench's own tables and columns; "
                "rename it",
                name=name,
            )
