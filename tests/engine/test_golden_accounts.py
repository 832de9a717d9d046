"""Golden files for account scoring (tests/fixtures/golden-accounts/*.yaml), the arithmetic
written out in each, on every engine of the registry that scores accounts (tests/engine/
engines.py), and Spark's account rows and lead links equal to DuckDB's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from leadscore.engine.batch import score_many
from leadscore.engine.batch.accounts import score_accounts
from tests.engine.engines import ENGINES, Engine
from tests.engine.outputs import Output, assert_same_rows
from tests.engine.test_golden import load_case, scored, table, world_of

GOLDEN = sorted((Path(__file__).parents[1] / "fixtures" / "golden-accounts").glob("*.yaml"))


def frames(case: dict[str, Any]) -> tuple[Any, Any, Any]:
    events = table([{"type": "page" if "path" in e else "track", **e} for e in case["events"]],
                   ("lead_id", "timestamp", "type", "event", "path"))
    return events, table(case["leads"], ("lead_id",)), table(case["accounts"], ("account_id",))


def batch(case: dict[str, Any], **engine: Any) -> dict[str, dict[str, Any]]:
    events, leads, accounts = frames(case)
    rows = score_accounts(case["model"], events, leads, accounts, as_of=case["as_of"], **engine)
    return {row["account_id"]: row for row in rows.to_pylist()}


@pytest.mark.parametrize("engine", [engine.param() for engine in ENGINES.values()])
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_accounts(path: Path, engine: Engine, request: pytest.FixtureRequest) -> None:
    if engine.no_accounts:
        pytest.skip(f"{engine.name} scores no accounts: {engine.no_accounts}")
    case = load_case(path)

    def check(output: Output) -> None:
        assert output.accounts is not None
        accounts = {account_id: row for (_, account_id), row in output.accounts.items()}
        for want in case["expected"]:
            got = accounts[want["account_id"]]
            for column, value in want.items():
                actual = got[column]
                if isinstance(value, float):
                    ok = math.isclose(actual, value, abs_tol=1e-6)
                elif isinstance(value, list):
                    ok = list(actual) == value
                else:
                    ok = actual == value
                assert ok, (f"{path.name}: {want['account_id']}: {column} = {actual!r}, "
                            f"want {value!r}")

    scored(engine, world_of(case), request, check)


@pytest.mark.spark
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_spark_accounts_and_links_equal_duckdb(path: Path, spark: Any) -> None:
    case = load_case(path)
    duck, on_spark = batch(case), batch(case, engine="spark", spark=spark)
    assert duck
    assert_same_rows({(r["model"], a): r for a, r in duck.items()},
                     {(r["model"], a): r for a, r in on_spark.items()}, "accounts")
    events, leads, accounts = frames(case)
    links = [score_many(case["model"], events, leads, as_of=case["as_of"], accounts=accounts,
                        **engine).select(["lead_id", "account_id", "account_match"]).to_pylist()
             for engine in ({}, {"engine": "spark", "spark": spark})]
    assert links[0] == links[1] and any(r["account_id"] for r in links[0])


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_the_score_command_writes_the_account_scores(engine: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`leadscore score --accounts` on each engine: the golden accounts, from the leads'
    scores the command has just computed (the account plan does not score the leads again)."""
    import pyarrow.parquet as pq
    import yaml
    from typer.testing import CliRunner

    import leadscore.engine.batch.duckdb
    import leadscore.engine.batch.spark
    from leadscore.cli import app

    path = GOLDEN[0]
    case = load_case(path)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(yaml.safe_load(path.read_text())
                                                        ["model"]))
    for name, frame in zip(("events", "leads", "accounts"), frames(case), strict=True):
        pq.write_table(frame, tmp_path / f"{name}.parquet")
    if engine == "spark":
        request.getfixturevalue("spark")        # the shared local[2] session

    runs: list[str] = []
    for module in (leadscore.engine.batch.spark, leadscore.engine.batch.duckdb):
        def counted(*args: Any, _score: Any = module.score_many, **kwargs: Any) -> Any:
            runs.append("scored")
            return _score(*args, **kwargs)

        monkeypatch.setattr(module, "score_many", counted)
    result = CliRunner().invoke(app, [
        "score", "--model", str(tmp_path / "model.yaml"),
        "--events", str(tmp_path / "events.parquet"), "--leads", str(tmp_path / "leads.parquet"),
        "--account-traits", str(tmp_path / "accounts.parquet"),
        "--accounts", str(tmp_path / "accounts-out.parquet"), "--out",
        str(tmp_path / "scores.parquet"), "--as-of", case["as_of"], "--engine", engine,
        "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    # the leads scored once (on Spark the command scores through `score_frame`)
    assert len(runs) == (1 if engine == "duckdb" else 0)
    rows = {r["account_id"]: r for r in pq.read_table(tmp_path / "accounts-out.parquet")
            .to_pylist()}
    assert set(rows) == {e["account_id"] for e in case["expected"]}
    for want in case["expected"]:
        got = rows[want["account_id"]]
        for key, value in want.items():
            if isinstance(value, float):
                assert math.isclose(got[key], value, abs_tol=1e-9), (want["account_id"], key)
            else:
                assert got[key] == value, (want["account_id"], key)
