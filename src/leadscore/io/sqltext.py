"""SQL as text, for the statements built as strings (the readers' views, DDL, COPY, a Spark
input's canonical columns): identifiers and string literals quoted by the dialect's own rules.

sqlglot quotes them, so that a name in a hand-written statement is spelled exactly as in the
plans sqlglot renders: `"a""b"` and `'it''s'` in DuckDB, `` `a``b` `` and `'it\\'s'` in Spark.
"""

from __future__ import annotations

from sqlglot import exp


def quote(name: str, dialect: str = "duckdb") -> str:
    """`name` as a quoted identifier of `dialect` (a table, view or column name)."""
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def literal(text: str, dialect: str = "duckdb") -> str:
    """`text` as a string literal of `dialect` (a path, a value)."""
    return exp.Literal.string(text).sql(dialect=dialect)
