"""The Spark engine: the same plan as DuckDB, reading files itself (Parquet, hive-partitioned
folders, CSV) and giving the same columns, types and numbers. Marked `spark`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from leadscore.engine.batch import score_many
from leadscore.errors import RejectedRowsWarning
from leadscore.model.loader import load_model
from tests.engine.outputs import assert_same_rows, rows_of

pytestmark = pytest.mark.spark

EXAMPLES = Path(__file__).parents[2] / "examples"
AS_OF = "2026-04-01T00:00:00Z"


def events() -> pa.Table:
    rows = [
        ("ann", "2026-03-30T10:00:00Z", "page", None, "/pricing?x=1", None, 3),
        ("ann", "2026-03-30T11:00:00+02:00", "track", "Newsletter Subscribed", None, "a_b", 1),
        ("bob", "2026-03-02T09:00:00Z", "track", "Order Completed", None, "paint", 7),
        ("bob", "2026-03-31T23:59:59Z", "page", None, "/products/paper/a4", "paper", None),
        ("cid", "2026-04-02T00:00:00Z", "track", "Order Completed", None, None, 1),
        ("", "2026-03-30T10:00:00Z", "track", "Clicked", None, None, None),        # no lead
        ("dan", "not a time", "track", "Clicked", None, None, None),               # bad ts
    ]
    names = ["lead_id", "timestamp", "type", "event", "path", "topic", "value"]
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def leads() -> pa.Table:
    return pa.table({"lead_id": ["ann", "bob", "eve"], "age": [30, 51, 22],
                     "email": ["ann@example.org", None, "eve@gmail.com"],
                     "occupation": ["teacher", "student", None]})


def by_lead(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["lead_id"]: row for row in table.to_pylist()}


def assert_same(duck: pa.Table, spark: pa.Table) -> None:
    """The same columns and types, and the same scores (tests/engine/outputs.py)."""
    assert spark.schema == duck.schema
    assert_same_rows(rows_of(duck), rows_of(spark))


@pytest.mark.parametrize("model", ["b2c-art-supplies", "b2b-software"])
def test_files_read_by_spark_score_as_on_duckdb(spark: Any, tmp_path: Path, model: str) -> None:
    pq.write_table(events(), tmp_path / "events.parquet")
    pacsv.write_csv(leads(), tmp_path / "leads.csv")
    loaded = load_model(EXAMPLES / f"{model}.yaml")
    # Both engines skip the same bad rows, and both say so.
    with pytest.warns(RejectedRowsWarning, match="events.parquet: 2 bad event rows skipped"):
        duck = score_many(loaded, str(tmp_path / "events.parquet"),
                          str(tmp_path / "leads.csv"), as_of=AS_OF)
    with pytest.warns(RejectedRowsWarning, match="events.parquet: 2 bad event rows skipped"):
        on_spark = score_many(loaded, str(tmp_path / "events.parquet"),
                              str(tmp_path / "leads.csv"), as_of=AS_OF, engine="spark",
                              spark=spark)
    assert_same(duck, on_spark)
    assert "dan" not in by_lead(on_spark)      # its only event has no readable time


@pytest.mark.filterwarnings("ignore::leadscore.errors.RejectedRowsWarning")
def test_hive_partitioned_folder_and_csv_events(spark: Any, tmp_path: Path) -> None:
    table = events()
    for month, part in (("2026-03", table.slice(0, 4)), ("2026-04", table.slice(4))):
        (tmp_path / "ev" / f"month={month}").mkdir(parents=True)
        pq.write_table(part, tmp_path / "ev" / f"month={month}" / "part-0.parquet")
    pacsv.write_csv(table, tmp_path / "events.csv")
    model = load_model(EXAMPLES / "b2c-art-supplies.yaml")
    duck = score_many(model, str(tmp_path / "ev"), leads(), as_of=AS_OF)
    for source in (str(tmp_path / "ev"), str(tmp_path / "events.csv")):
        assert_same(duck, score_many(model, source, leads(), as_of=AS_OF, engine="spark",
                                     spark=spark))


@pytest.mark.filterwarnings("ignore::leadscore.errors.RejectedRowsWarning")
def test_a_spark_dataframe_is_an_input(spark: Any) -> None:
    model = load_model(EXAMPLES / "b2c-art-supplies.yaml")
    frame = spark.createDataFrame(events().to_pandas())
    assert_same(score_many(model, events(), leads(), as_of=AS_OF),
                score_many(model, frame, leads(), as_of=AS_OF, engine="spark", spark=spark))


def test_bad_rows_of_an_arrow_table_on_spark_are_skipped_with_a_warning(spark: Any) -> None:
    """An in-memory table is checked by leadscore.io before Spark sees it; its bad rows are
    said, as on DuckDB and as for files."""
    model = load_model(EXAMPLES / "b2c-art-supplies.yaml")
    with pytest.warns(RejectedRowsWarning, match="2 bad event rows skipped"):
        score_many(model, events(), leads(), as_of=AS_OF, engine="spark", spark=spark)


def test_the_session_settings_are_restored(spark: Any) -> None:
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        score_many(load_model(EXAMPLES / "b2c-art-supplies.yaml"), events(), as_of=AS_OF,
                   engine="spark", spark=spark)
        assert spark.conf.get("spark.sql.session.timeZone") == "Europe/Berlin"
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
