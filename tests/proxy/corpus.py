"""Loading the adversarial corpus (``corpus/*.yaml``) as test cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sde.errors import SDEError

T = TypeVar("T")

CORPUS = Path(__file__).parent / "corpus"
ALL_DIALECTS = ("postgres", "duckdb", "spark")


@dataclass(frozen=True)
class Case:
    file: str
    index: int
    sql: str
    rules: tuple[str, ...]
    dialect: str
    name: str | None
    scope: str
    #: Engines an ``allow`` case must run on; the others refuse it as ``engine.unsupported``.
    engines: tuple[str, ...] = ALL_DIALECTS

    @property
    def allowed(self) -> bool:
        return self.rules == ("allow",)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.index}:{self.dialect}"


def load(files: str = "*.yaml") -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob(files)):
        entries: list[dict[str, Any]] = yaml.safe_load(path.read_text("utf-8")) or []
        for index, entry in enumerate(entries, start=1):
            rule = entry["rule"]
            rules = tuple(rule) if isinstance(rule, list) else (rule,)
            for dialect in entry.get("dialects", ALL_DIALECTS):
                cases.append(
                    Case(
                        path.stem,
                        index,
                        entry["sql"],
                        rules,
                        dialect,
                        entry.get("name"),
                        entry.get("scope", "rows"),
                        tuple(entry.get("engines", ALL_DIALECTS)),
                    )
                )
    return cases


def outcome(call: Callable[[], T]) -> tuple[T | None, SDEError | None]:
    """``call()``'s result, or the workbench error it raised (any other error propagates)."""
    try:
        return call(), None
    except SDEError as err:
        return None, err


def entry_count() -> int:
    return sum(len(yaml.safe_load(p.read_text("utf-8")) or []) for p in CORPUS.glob("*.yaml"))
