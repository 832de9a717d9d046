"""Golden files for account scoring (tests/fixtures/golden-accounts/*.yaml), the arithmetic
written out in each, on the incremental and the batch engine."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from leadscore.engine.account_plan import score_accounts
from leadscore.engine.accounts import AccountScorer
from leadscore.engine.incremental import Scorer
from leadscore.events import event_from_row, lead_from_row
from tests.engine.test_golden import load_case, table

GOLDEN = sorted((Path(__file__).parents[1] / "fixtures" / "golden-accounts").glob("*.yaml"))


def frames(case: dict[str, Any]) -> tuple[Any, Any, Any]:
    events = table([{"type": "page" if "path" in e else "track", **e} for e in case["events"]],
                   ("lead_id", "timestamp", "type", "event", "path"))
    return events, table(case["leads"], ("lead_id",)), table(case["accounts"], ("account_id",))


def incremental(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events, leads, accounts = frames(case)
    scorer = AccountScorer(Scorer(case["model"]))
    as_of = case["as_of_us"]
    for row in accounts.to_pylist():
        account_id = row.pop("account_id")
        scorer.identify_account(account_id, {k: v for k, v in row.items() if v is not None},
                                as_of=as_of)
    for row in leads.to_pylist():
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, lead.traits, lead.account, as_of=as_of)
    for row in events.to_pylist():
        scorer.update_one(event_from_row(row), as_of=as_of)
    return {s.account_id: s.row() for s in scorer.scores(as_of=as_of)}


def batch(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events, leads, accounts = frames(case)
    rows = score_accounts(case["model"], events, leads, accounts, as_of=case["as_of"])
    return {row["account_id"]: row for row in rows.to_pylist()}


@pytest.mark.parametrize("engine", ["incremental", "duckdb"])
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_accounts(path: Path, engine: str) -> None:
    case = load_case(path)
    accounts = incremental(case) if engine == "incremental" else batch(case)
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
            assert ok, f"{path.name}: {want['account_id']}: {column} = {actual!r}, want {value!r}"
