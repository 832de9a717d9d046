"""Rendered-plan fixtures (sqlglot's habit): every golden model and example model, rendered to
SQL for DuckDB and for Spark, compared byte for byte with `tests/fixtures/plans/`. A change to
the plan shows up here as a diff of SQL; a refactoring that means to change nothing must leave
every file as it is.

`LEADSCORE_UPDATE_PLANS=1 python -m pytest tests/engine/test_plan_fixtures.py` rewrites them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore.engine.batch import connect
from leadscore.engine.batch.inputs import read_accounts
from leadscore.engine.sql.account_plan import compile_account_plan, links_query
from leadscore.engine.sql.interest_plan import compile_interest_plan
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.io.readers import read_events, read_leads
from leadscore.model.accounts import compile_account
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.timeutil import parse_timestamp
from tests.engine.test_golden import load_case, table

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PLANS = FIXTURES / "plans"
GOLDEN = sorted((FIXTURES / "golden").glob("*.yaml")) + \
    sorted((FIXTURES / "golden-accounts").glob("*.yaml"))
EXAMPLES = [ROOT / "examples" / "b2c-art-supplies.yaml", ROOT / "examples" / "b2b-software.yaml"]
EXAMPLE_AS_OF = "2026-06-01T00:00:00Z"
DIALECTS = ("duckdb", "spark")


def _columns(con: Any, name: str) -> dict[str, str]:
    rel = con.sql(f'SELECT * FROM "{name}" LIMIT 0')
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _inputs(name: str) -> tuple[Model, Any, Any, Any, int]:
    """The model, events, leads and accounts (each a source `read_*` takes, or None) of a case."""
    for path in GOLDEN:
        if path.stem == name:
            case = load_case(path)
            events = table([{"type": "page" if "path" in e else "track", **e}
                            for e in case.get("events", [])],
                           ("lead_id", "timestamp", "type", "event", "path"))
            leads = table(case.get("leads", []), ("lead_id",))
            accounts = table(case["accounts"], ("account_id",)) if "accounts" in case else None
            return (case["model"], events, leads if leads.num_rows else None, accounts,
                    case["as_of_us"])
    path = next(p for p in EXAMPLES if p.stem == name)
    data = ROOT / "examples" / "data"
    return (load_model(path), str(data / "events.csv"), str(data / "leads.csv"), None,
            parse_timestamp(EXAMPLE_AS_OF))


def render(name: str, dialect: str) -> str:
    """Every plan the batch engine builds for this case, rendered for `dialect`."""
    model, events, leads, accounts, as_of_us = _inputs(name)
    con = connect()
    try:
        read_events(events, con, name="events")
        events_columns = _columns(con, "events")
        leads_columns = None
        if leads is not None:
            read_leads(leads, con, name="leads")
            leads_columns = _columns(con, "leads")
        sections: list[tuple[str, str]] = []
        # As the runners build them: DuckDB keys buckets by a hash and sorts in Arrow; Spark
        # keys by lead_id and sorts in the plan.
        options = PlanOptions(events_table="events",
                              leads_table="leads" if leads is not None else None,
                              dialect=dialect, lead_key="hash" if dialect == "duckdb"
                              else "lead_id", order=dialect != "duckdb")
        sections.append(("scores", compile_plan(model, events_columns, leads_columns, as_of_us,
                                                options=options).sql(dialect=dialect,
                                                                     pretty=True)))
        if dialect == "duckdb":
            rules = PlanOptions(events_table="events", leads_table=options.leads_table,
                                lead_key="hash", order=False, rule_columns=True)
            sections.append(("rule columns", compile_plan(
                model, events_columns, leads_columns, as_of_us, options=rules).sql(
                dialect=dialect, pretty=True)))
        interests = compile_interest_plan(model, events_columns, as_of_us,
                                          events_table="events", dialect=dialect)
        if interests is not None:
            sections.append(("interests", interests.sql(dialect=dialect, pretty=True)))
        if accounts is not None and compile_account(model) is not None:
            account_columns = read_accounts(accounts, con, "accounts")
            lead_columns = leads_columns or {"lead_id": "VARCHAR"}
            sections.append(("account links", links_query(
                "leads", lead_columns, "accounts", account_columns).sql(dialect=dialect,
                                                                        pretty=True)))
            sections.append(("accounts", compile_account_plan(
                model, "scores", "leads", lead_columns, "accounts", account_columns,
                as_of_us).sql(dialect=dialect, pretty=True)))
    finally:
        con.close()
    return "".join(f"-- {title}\n{sql};\n\n" for title, sql in sections)


def cases() -> Iterator[Any]:
    for path in [*GOLDEN, *EXAMPLES]:
        for dialect in DIALECTS:
            yield pytest.param(path.stem, dialect, id=f"{path.stem}-{dialect}")


@pytest.mark.parametrize(("name", "dialect"), list(cases()))
def test_rendered_plan_is_unchanged(name: str, dialect: str) -> None:
    fixture = PLANS / f"{name}.{dialect}.sql"
    rendered = render(name, dialect)
    if os.environ.get("LEADSCORE_UPDATE_PLANS") == "1":
        PLANS.mkdir(parents=True, exist_ok=True)
        fixture.write_text(rendered)
    assert fixture.exists(), f"{fixture} is missing: run with LEADSCORE_UPDATE_PLANS=1"
    assert rendered == fixture.read_text(), \
        f"the {dialect} plan of {name} changed: diff it against {fixture.relative_to(ROOT)}"


def test_every_fixture_has_a_case() -> None:
    """A fixture whose case went away is stale, not silently kept."""
    expected = {f"{p.stem}.{d}.sql" for p in [*GOLDEN, *EXAMPLES] for d in DIALECTS}
    assert {p.name for p in PLANS.glob("*.sql")} == expected
