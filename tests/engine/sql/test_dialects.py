"""Dialects as objects: a lookup by name that suggests the near miss, and each dialect's own
spelling of local time and a 64-bit hash, rendered and run."""

from __future__ import annotations

import duckdb
import pytest
from sqlglot import exp

from leadscore.engine.sql.dialects import DIALECTS, Dialect, DuckDB, Spark


def test_a_dialect_is_found_by_its_name_or_passed_through() -> None:
    assert isinstance(Dialect.get_or_raise("duckdb"), DuckDB)
    assert isinstance(Dialect.get_or_raise("spark"), Spark)
    spark = DIALECTS["spark"]
    assert Dialect.get_or_raise(spark) is spark


@pytest.mark.parametrize(("name", "hint"), [
    ("dukdb", "Did you mean 'duckdb'?"), ("Spark", "Did you mean 'spark'?"),
    ("oracle", "Expected one of: bigquery, duckdb, postgres, redshift, snowflake, spark")])
def test_an_unknown_dialect_names_the_near_miss(name: str, hint: str) -> None:
    with pytest.raises(ValueError, match=f"Unknown dialect '{name}'") as error:
        Dialect.get_or_raise(name)
    assert hint in str(error.value)


def test_each_dialect_spells_local_time_and_hash_its_own_way() -> None:
    ts = exp.column("ts")
    rendered = {name: (d.local_time(ts.copy(), "Europe/Berlin").sql(dialect=name),
                       d.hash64(exp.column("lead_id")).sql(dialect=name))
                for name, d in DIALECTS.items()}
    assert rendered["duckdb"] == (
        "EPOCH_US(TIMEZONE('Europe/Berlin', TIMEZONE('UTC', MAKE_TIMESTAMP(ts))))",
        "HASH(lead_id)")
    assert rendered["spark"] == (
        "UNIX_MICROS(FROM_UTC_TIMESTAMP(TIMESTAMP_MICROS(ts), 'Europe/Berlin'))",
        "XXHASH64(lead_id)")


def test_duckdb_local_time_is_the_wall_clock_time() -> None:
    winter_noon_utc = 1_767_268_800_000_000          # 2026-01-01T12:00:00Z
    local = DuckDB().local_time(exp.Literal.number(winter_noon_utc), "Europe/Berlin")
    [(value,)] = duckdb.sql(f"SELECT {local.sql(dialect='duckdb')}").fetchall()
    assert value == winter_noon_utc + 3_600_000_000   # CET: UTC+1
