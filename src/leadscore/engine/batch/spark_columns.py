"""Spark SQL for the columns of raw inputs (Parquet, CSV, parsed JSON): values flattened to
the canonical `properties.<x>` / `traits.<x>` columns and their types, timestamps read as µs —
shared by the table readers (`spark`) and the message stream reader (`spark_stream`)."""

from __future__ import annotations

from typing import Any

from leadscore.errors import InputError
from leadscore.io.sqltext import quote

DIALECT = "spark"          # the plans' sqlglot dialect, and how names are quoted here
INTEGER = {"byte", "short", "int", "integer", "long", "bigint", "tinyint", "smallint"}
FLOAT = {"float", "double", "real"}


def value_columns(expr: str, name: str, dtype: Any) -> list[tuple[str, str, str]]:
    """(canonical name, Spark SQL, type) of a property/trait column; structs flatten."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.StructType):
        out: list[tuple[str, str, str]] = []
        for field in dtype.fields:
            out += value_columns(f"{expr}.{quote(field.name, DIALECT)}",
                                  f"{name}.{field.name}", field.dataType)
        return out
    kind = dtype.simpleString().split("(")[0]
    if kind == "boolean":
        return [(name, expr, "BOOLEAN")]
    if kind in INTEGER:
        return [(name, f"CAST({expr} AS BIGINT)", "BIGINT")]
    if kind in FLOAT or kind == "decimal":
        return [(name, f"CAST({expr} AS DOUBLE)", "DOUBLE")]
    if kind == "string":
        return [(name, expr, "STRING")]
    if isinstance(dtype, T.ArrayType | T.MapType):
        return [(name, f"to_json({expr})", "STRING")]
    return [(name, f"CAST({expr} AS STRING)", "STRING")]


def timestamp_sql(expr: str, dtype: Any, label: str) -> str:
    """µs since the epoch (NULL when unreadable), as `timeutil.parse_timestamp` reads values."""
    kind = dtype.simpleString().split("(")[0]
    if kind in ("timestamp", "timestamp_ntz", "date"):
        return f"unix_micros(CAST({expr} AS TIMESTAMP))"
    if kind in INTEGER:
        x = f"CAST({expr} AS BIGINT)"
        return (f"CASE WHEN abs({x}) < 100000000000 THEN {x} * 1000000 "
                f"WHEN abs({x}) < 100000000000000 THEN {x} * 1000 ELSE {x} END")
    if kind in FLOAT or kind == "decimal":
        x = f"CAST({expr} AS DOUBLE)"
        return (f"CASE WHEN isnan({x}) OR abs({x}) = double('infinity') THEN NULL "
                f"WHEN abs({x}) < 1e11 THEN CAST(round({x} * 1e6) AS BIGINT) "
                f"WHEN abs({x}) < 1e14 THEN CAST(round({x} * 1e3) AS BIGINT) "
                f"ELSE CAST({x} AS BIGINT) END")
    if kind == "string":
        text = f"trim({expr})"
        from pyspark.sql import types as T

        number = timestamp_sql(f"try_cast({text} AS DOUBLE)", T.DoubleType(), label)
        # ISO-8601 with an offset or Z, or naive (= UTC, the session time zone here).
        return (f"CASE WHEN {text} RLIKE '^-?[0-9]+([.][0-9]+)?$' THEN {number} "
                f"ELSE unix_micros(try_cast({text} AS TIMESTAMP)) END")
    raise InputError(f"{label}: column 'timestamp' has type {kind}; expected a timestamp, an "
                     "ISO-8601 string or an epoch number")
