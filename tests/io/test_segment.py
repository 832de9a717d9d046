"""Segment JSON lines as tables: an identify's `traits.company` is the lead's account."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from leadscore.io import lead_of, read_leads
from leadscore.io.segment import lead_table

LINES = [
    {"type": "identify", "userId": "ann", "traits": {
        "email": "ann@acme.example",
        "company": {"id": "acme", "name": "Acme", "industry": "software",
                    "employee_count": 500, "plan": "pro"}}},
    {"type": "identify", "userId": "bob", "traits": {"company": {"name": "Bobco"}}},
    {"type": "identify", "userId": "cy", "traits": {"company": "Cy Inc"}},
    {"type": "identify", "userId": "dee", "traits": {"company": {"id": "old", "plan": "x"}}},
    {"type": "identify", "userId": "dee", "traits": {"company": {"id": 42, "name": "New"}}},
    {"type": "track", "userId": "ann", "event": "Clicked"},
]


def test_identify_company_becomes_the_leads_account_columns(tmp_path: Path) -> None:
    source = tmp_path / "messages.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in LINES) + "\n")
    table, rejected, others = lead_table(source, strict=True)
    assert len(rejected) == 0 and others == {"track": 1}
    rows = {row["lead_id"]: row for row in table.to_pylist()}
    assert {k: v for k, v in rows["ann"].items() if k.startswith("account.")} == {
        "account.id": "acme", "account.name": "Acme", "account.industry": "software",
        "account.employee_count": 500, "account.plan": "pro"}
    assert rows["ann"]["traits.email"] == "ann@acme.example"
    assert rows["bob"]["account.id"] == "Bobco"              # no id: named by its name
    assert rows["cy"]["account.id"] is None                  # not an object: a trait only
    assert rows["cy"]["traits.company"] == "Cy Inc"
    # A later identify naming another account replaces the account, not merges into it.
    assert (rows["dee"]["account.id"], rows["dee"]["account.name"],
            rows["dee"]["account.plan"]) == ("42", "New", None)


def test_the_account_columns_read_as_the_leads_account(tmp_path: Path) -> None:
    source = tmp_path / "messages.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in LINES) + "\n")
    con = duckdb.connect()
    read_leads(source, con)
    lead = lead_of(con, "ann")
    assert lead is not None
    assert lead.get("account.employee_count") == 500 and lead.get("account.plan") == "pro"
