"""docs/crm.md's handoff example has exactly the keys a handoff carries, and its JSON examples
parse; the feedback events it lists are the ones the engines read."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from leadscore.model.program_events import FEEDBACK_STAGES
from tests.sales.conftest import handoffs_of, qualify

DOC = (Path(__file__).parents[2] / "docs" / "crm.md").read_text(encoding="utf-8")


def test_the_documented_handoff_has_the_delivered_keys(client: TestClient) -> None:
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOC, flags=re.S)]
    assert len(examples) == 4
    qualify(client, "kai", country="US")
    delivered = handoffs_of(client, "kai")[0]["payload"]
    assert set(examples[0]) == set(delivered)
    assert {r for r in delivered["reasons"][0]} == set(examples[0]["reasons"][0])
    table = re.findall(r"^\| .*? \| `(Lead \w+|Opportunity \w+)`.*? \| `(\w+)` \|$", DOC,
                       flags=re.M)
    assert dict(table) == FEEDBACK_STAGES
