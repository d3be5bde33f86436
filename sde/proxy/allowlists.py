"""What a researcher's query may be made of: syntax nodes, functions and types.

Default deny: a node, function or type not named here is refused, so a
construct sqlglot learns in a later release (or an engine-specific one it
parses into something new) is refused until someone decides it is safe.
Names are sqlglot expression classes.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp


def _classes(names: str) -> frozenset[type[exp.Expression]]:
    found = (getattr(exp, n, None) for n in names.split())
    return frozenset(c for c in found if isinstance(c, type))


#: Syntax nodes (not functions) a query may contain.
SYNTAX = _classes(
    """
    Select Union Except Intersect Subquery From Join Where Group Having Order Ordered
    Limit Offset Qualify Distinct With CTE TableAlias Alias Column Table Identifier Star
    Literal Boolean Null Paren Tuple Values Lateral Window WindowSpec Filter WithinGroup
    Interval IntervalSpan DataType DataTypeParam Var Exists In Between Is Not Neg Like
    ILike Escape Any All EQ NEQ GT GTE LT LTE NullSafeEQ NullSafeNEQ And Or Add Sub Mul
    Div IntDiv Mod DPipe BitwiseAnd BitwiseOr BitwiseXor BitwiseNot Bracket
    IgnoreNulls RespectNulls National RawString SimilarTo Pivot PivotAlias
    """
)

#: Functions safe for analysis: deterministic, no I/O, no catalog, no session state.
FUNCTIONS = _classes(
    """
    Count CountIf Sum Avg Min Max Stddev StddevPop StddevSamp Variance VariancePop Median
    PercentileCont PercentileDisc ApproxQuantile Quantile Corr CovarPop CovarSamp
    LogicalAnd LogicalOr ArrayAgg GroupConcat ApproxDistinct Mode
    RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue
    Abs Round Floor Ceil Sqrt Cbrt Exp Ln Log Pow Sign Greatest Least SafeDivide Trunc
    Coalesce Nullif If Case Cast TryCast IsNan Nvl2
    Lower Upper Length Substring Concat ConcatWs Trim Replace StrPosition Left Right
    Initcap Reverse RegexpLike RegexpILike RegexpExtract RegexpReplace StartsWith EndsWith
    Contains Ascii Chr MD5
    StrToDate StrToTime TimeToStr ToChar CurrentDate CurrentTimestamp Extract DateTrunc
    TimestampTrunc DateAdd DateSub DateDiff DatetimeDiff TimestampDiff TimestampAdd
    TimestampSub Year Month Day Quarter Week DayOfWeek DayOfWeekIso DayOfMonth DayOfYear
    WeekOfYear Date TsOrDsToDate TsOrDsAdd TsOrDsDiff DateFromParts LastDay AddMonths
    MonthsBetween DateStrToDate TimeStrToTime DatetimeAdd DatetimeSub DatetimeTrunc
    Datetime Timestamp TsOrDsToTimestamp Hour Minute Second DateToDateStr ToNumber
    """
)

#: Bare words (sqlglot ``Var`` nodes) a query may hold: date and time parts, as in
#: ``EXTRACT(YEAR FROM d)``, ``DATE_TRUNC('month', d)`` or ``INTERVAL '1' DAY``. A bare
#: word is emitted to the engine as written, unquoted and unchecked by the column
#: rule, so any other word (``DATEDIFF(b, ...)`` read as a unit) is refused.
_DATE_PARTS = """
    YEAR YEARS YR YRS Y YY YYYY ISOYEAR QUARTER QUARTERS QTR Q MONTH MONTHS MON MONS MM
    WEEK WEEKS WK W WEEKOFYEAR WEEKISO ISOWEEK DAY DAYS D DD DAYOFMONTH DOW DAYOFWEEK
    DAYOFWEEKISO ISODOW WEEKDAY DOY DAYOFYEAR HOUR HOURS HR HRS H HH MINUTE MINUTES MIN
    MINS MI M SECOND SECONDS SEC SECS S SS MILLISECOND MILLISECONDS MS MSEC MICROSECOND
    MICROSECONDS US USEC EPOCH DECADE DECADES CENTURY CENTURIES MILLENNIUM MILLENNIA JULIAN
"""
DATE_PARTS = frozenset(_DATE_PARTS.split())

#: Aggregates that ``aggregates`` mode accepts: none returns one person's own value.
SAFE_AGGREGATES = _classes(
    """
    Count CountIf Sum Avg Stddev StddevPop StddevSamp Variance VariancePop Median
    PercentileCont PercentileDisc ApproxQuantile Quantile Corr CovarPop CovarSamp
    ApproxDistinct
    """
)

_T = exp.DataType.Type
#: Types a value may be cast to.
TYPES: frozenset[Any] = frozenset(
    {
        _T.TINYINT,
        _T.SMALLINT,
        _T.INT,
        _T.BIGINT,
        _T.FLOAT,
        _T.DOUBLE,
        _T.DECIMAL,
        _T.BOOLEAN,
        _T.CHAR,
        _T.VARCHAR,
        _T.NVARCHAR,
        _T.NCHAR,
        _T.TEXT,
        _T.DATE,
        _T.TIMESTAMP,
        _T.DATETIME,
        _T.INTERVAL,
    }
)

#: Schemas and name prefixes of engine catalogs: named in refusals as catalogs.
CATALOG_SCHEMAS = frozenset(
    {
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "system",
        "sys",
        "temp",
        "main",
        "memory",
        "spark_catalog",
        "global_temp",
    }
)
CATALOG_PREFIXES = ("pg_", "duckdb_", "sqlite_")


def function_name(node: exp.Func) -> str:
    """The name a researcher wrote for a function node."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()
