"""`--state` on Spark: `leadscore score --engine spark --state DIR` scores as DuckDB's `--state`
and as a full re-score, run after run, and its state folder is the same state (DuckDB reads
what Spark wrote). The generic checks (agreement, order, round trip) run through the
registry's `spark-state` engine (engines.py). Marked `spark`."""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.spark import settings
from leadscore.engine.batch.state import score_with_state
from leadscore.model.loader import load_model
from leadscore.timeutil import parse_timestamp
from tests.engine.outputs import assert_same_rows, rows_of

pytestmark = pytest.mark.spark

EXAMPLES = Path(__file__).parents[2] / "examples"
MODELS = [EXAMPLES / "b2c-art-supplies.yaml", EXAMPLES / "b2b-software.yaml"]
CUT = "2026-03-01T00:00:00Z"          # the example events span Jan–Apr 2026
DAYS = ("2026-03-01T00:00:00Z", "2026-03-20T00:00:00Z", "2026-05-01T00:00:00Z")


def _split_events(folder: Path) -> tuple[Path, pa.Table]:
    """The example events as two partitions: before CUT, and from CUT on (written later)."""
    table = pacsv.read_csv(EXAMPLES / "data" / "events.csv")
    # compared as instants: as text ("2026-03-01 20:35:00Z" < "2026-03-01T…") the events of
    # March 1st would land in the early file, which then holds events after the first as_of
    ts, cut = table.column("timestamp"), pa.scalar(datetime.fromisoformat(CUT))
    early = table.filter(pa.compute.less(ts, cut))
    late = table.filter(pa.compute.greater_equal(ts, cut))
    assert early.num_rows and late.num_rows
    (folder / "part=0").mkdir(parents=True)
    pq.write_table(early, folder / "part=0" / "events.parquet")
    return folder, late


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output




@pytest.mark.parametrize("model", MODELS)
def test_cli_state_on_spark_scores_as_duckdb_run_after_run(spark: Any, tmp_path: Path,
                                                            model: Path) -> None:
    events, late = _split_events(tmp_path / "events")
    leads = str(EXAMPLES / "data" / "leads.csv")
    models = ["-m", str(model)]
    outputs: dict[str, list[pa.Table]] = {"duckdb": [], "spark": []}
    for run, as_of in enumerate(DAYS):
        if run == 1:        # a new file arrives; the next runs read only it
            (events / "part=1").mkdir()
            pq.write_table(late, events / "part=1" / "events.parquet")
        for engine in outputs:
            out = tmp_path / f"{engine}-{run}.parquet"
            said = _cli("score", *models, "-e", str(events), "-l", leads, "--as-of", as_of,
                        "--engine", engine, "--master", "local[2]",
                        "--state", str(tmp_path / f"state-{engine}"), "-o", str(out))
            expected = "rebuild (no state yet)" if run == 0 else "incremental (new files only)"
            assert f"{model.stem}: {expected}" in said
            outputs[engine].append(pq.read_table(out))
        full = score_many([load_model(model)], str(events), leads, as_of=as_of)
        assert outputs["spark"][-1].num_rows == full.num_rows > 0
        for expected in (outputs["duckdb"][-1], full):
            assert_same_rows(rows_of(_scores(expected)), rows_of(_scores(outputs["spark"][-1])))
        assert _interests(outputs["duckdb"][-1]) == _interests(outputs["spark"][-1])
    # the scores move between runs: the state folds time and new events forward
    first, last = (rows_of(outputs["spark"][i]) for i in (0, -1))
    assert any(first[k]["engagement"] != last.get(k, {}).get("engagement") for k in first)


def _interests(table: pa.Table) -> dict[str, Any]:
    return {r["lead_id"]: r["interests"] for r in table.to_pylist()}


def _scores(table: pa.Table) -> pa.Table:
    return table.drop_columns(["interests"])


def test_a_state_spark_saved_is_read_by_duckdb(spark: Any, tmp_path: Path) -> None:
    events, late = _split_events(tmp_path / "events")
    leads = str(EXAMPLES / "data" / "leads.csv")
    model = load_model(MODELS[0])
    state = tmp_path / "state"
    with settings(spark):
        _, report = score_with_state(model, str(events), leads, parse_timestamp(DAYS[0]),
                                     state, spark)
    assert report.mode == "rebuild"
    assert (state / model.name / "leads.parquet").is_dir()     # Spark's folder of parts
    (events / "part=1").mkdir()
    pq.write_table(late, events / "part=1" / "events.parquet")
    con = connect()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, report = score_with_state(model, str(events), leads,
                                              parse_timestamp(DAYS[2]), state, con)
    finally:
        con.close()
    assert (report.mode, report.files_read) == ("incremental", 1)
    full = score_many(model, str(events), leads, as_of=DAYS[2])
    assert_same_rows(rows_of(full), rows_of(scores))
