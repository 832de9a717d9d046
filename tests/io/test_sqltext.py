"""One quoting helper for SQL text: any name and any text survive a round trip through the
engine they are quoted for."""

from __future__ import annotations

import duckdb
import pytest

from leadscore.io.sqltext import literal, quote

ODD = ["plain", 'a"b', "it's", "back\\slash", "properties.topic", "ü€", "`tick`", "two  spaces"]


@pytest.mark.parametrize("name", ODD)
def test_duckdb_reads_back_the_name_and_the_text(name: str) -> None:
    con = duckdb.connect()
    con.sql(f"CREATE TABLE {quote(name)} AS SELECT {literal(name)} AS {quote(name)}")
    rel = con.sql(f"SELECT {quote(name)} FROM {quote(name)}")
    assert rel.columns == [name]
    assert rel.fetchall() == [(name,)]


def test_spark_names_and_text_are_quoted_as_spark_reads_them() -> None:
    assert quote("a`b", "spark") == "`a``b`"
    assert literal("it's a\\b", "spark") == "'it\\'s a\\\\b'"
    assert quote('a"b') == '"a""b"'
    assert literal("it's") == "'it''s'"
