"""Engine errors as :class:`~sde.errors.QueryFailed` with a generic message.

An engine's own error text can quote data values (a failed cast names the value
it could not convert), so it never reaches the message a researcher sees. It is
kept on the exception's ``engine_message`` attribute for the audit log only.

>>> err = query_failed("duckdb", ValueError("Could not convert string 'NHS 9990001234'"))
>>> str(err)
'the query could not be run on the duckdb engine'
>>> "9990001234" in err.engine_message
True
"""

from __future__ import annotations

from sde.errors import QueryFailed

#: Rule ids of the engine failures, with the sentence each shows the researcher.
MESSAGES: dict[str, str] = {
    "engine.error": "the query could not be run on the {engine} engine",
    "engine.timeout": "the query ran longer than the {engine} engine allows and was cancelled",
    "engine.one-statement": "the {engine} engine runs exactly one statement per query",
    "engine.result-type": "the {engine} engine returned a value the workbench cannot represent",
}


class EngineFailure(QueryFailed):
    """A query the engine refused or could not finish."""

    def __init__(self, rule: str, engine: str, engine_message: str) -> None:
        super().__init__(rule, MESSAGES[rule].format(engine=engine), engine=engine)
        #: The engine's own words: for the audit log, never for the researcher.
        self.engine_message = engine_message


def query_failed(
    engine: str, cause: BaseException | None, rule: str = "engine.error"
) -> EngineFailure:
    """An :class:`EngineFailure` for ``engine``; the engine's text is kept aside."""
    text = "" if cause is None else f"{type(cause).__name__}: {cause}"
    return EngineFailure(rule, engine, text)


class LoadFailed(QueryFailed):
    """A node's table could not be copied into an engine.

    Only the data custodian loads nodes, so the message names the table and the
    engine's reason (its first line); the full text stays on ``engine_message``.
    """

    def __init__(self, table: str, engine: str, engine_message: str) -> None:
        reason = engine_message.split(": ", 1)[-1].strip().splitlines()[0] if engine_message else ""
        super().__init__(
            "load.table-failed",
            f"table {table} could not be loaded into {engine}: {reason}",
            table=table,
            engine=engine,
        )
        self.engine_message = engine_message
