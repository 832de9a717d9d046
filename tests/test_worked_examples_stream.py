"""Every example model's worked examples (`tests:` in examples/*.yaml, the arithmetic written
out by hand) score as expected from a Segment message stream alone: the example's traits as an
identify call, its account as a group call, its events as track/page/screen messages — in the
service (fed in time order) and in the batch engine (one shuffled JSON-lines file, no
leads table)."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from leadscore.model.loader import load_model
from leadscore.model.schema import Model, ModelTest
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

EXAMPLES = Path(__file__).parents[1] / "examples"
MODELS = {path.stem: load_model(path) for path in sorted(EXAMPLES.glob("*.yaml"))
          if path.name not in ("content.yaml", "routing.yaml")}    # not models
CASES = [(name, i) for name, model in MODELS.items() for i in range(len(model.tests))]
LEAD = "person-1"


def stream(test: ModelTest) -> list[dict[str, Any]]:
    """The worked example as Segment messages, each with a messageId and a timestamp."""
    times = [parse_timestamp(e.get("at", e.get("timestamp"))) for e in test.events]
    before = iso(min([*times, parse_timestamp(test.as_of)]) - US_PER_DAY)
    out: list[dict[str, Any]] = [{"type": "identify", "userId": LEAD, "messageId": "m-id",
                                  "timestamp": before, "traits": dict(test.traits)}]
    if test.account:
        out.append({"type": "group", "userId": LEAD, "groupId": "account-1",
                    "messageId": "m-group", "timestamp": before,
                    "traits": dict(test.account)})
    for i, spec in enumerate(test.events):
        rest = dict(spec)
        at = rest.pop("at", rest.pop("timestamp", None))
        properties = {**dict(rest.pop("properties", None) or {})}
        context = dict(rest.pop("context", None) or {})
        message: dict[str, Any] = {"userId": LEAD, "messageId": f"m-{i}",
                                   "timestamp": iso(parse_timestamp(at))}
        if "page" in rest:
            message["type"] = "page"
            properties["path"] = rest.pop("page")
        elif "screen" in rest:
            message |= {"type": "screen", "name": rest.pop("screen")}
        else:
            message |= {"type": "track", "event": rest.pop("event")}
        properties.update(rest)
        message["properties"] = properties
        if context:
            message["context"] = context
        out.append(message)
    return out


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict) and "approx" in expected:
        return isinstance(actual, int | float) and abs(
            float(actual) - float(expected["approx"])) <= float(expected.get("within", 1e-9))
    if isinstance(actual, datetime) or (isinstance(expected, str) and isinstance(actual, str)
                                        and expected[:2] == "20" and "T" in expected):
        return parse_timestamp(actual) == parse_timestamp(expected)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and math.isclose(actual, expected,
                                                                abs_tol=1e-9)
    return bool(expected == actual)


def check(row: dict[str, Any], test: ModelTest) -> None:
    for key, expected in test.expect.items():
        if key == "interests":
            found = {i["topic"]: i["weight"] for i in row[key]}
            assert set(found) == set(expected), (test.name, key, found)
            for topic, weight in expected.items():
                assert matches(weight, found[topic]), (test.name, key, topic, found)
            continue
        assert matches(expected, row[key]), (test.name, key, expected, row[key])


def audience_free(name: str) -> Model:
    """The model without `applies_to`, as `leadscore check` runs its examples."""
    return MODELS[name].model_copy(update={"applies_to": None})


@pytest.mark.parametrize(("name", "index"), CASES)
def test_a_worked_example_scores_from_a_stream_in_the_service(
        name: str, index: int, tmp_path: Path) -> None:
    test = MODELS[name].tests[index]
    messages = stream(test)
    as_of = parse_timestamp(test.as_of)
    with Service.open(f"sqlite:///{tmp_path / 'store.db'}", models=[audience_free(name)],
                      background=False) as service:
        result = service.ingest(sorted(messages, key=lambda m: (m["timestamp"],
                                                                m["messageId"])),
                                received_at=as_of)
        assert not result.rejected, result.rejected
        check(service.get_lead(LEAD, as_of=as_of), test)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_a_worked_example_scores_from_a_stream_in_batch(
        name: str, index: int, tmp_path: Path) -> None:
    from leadscore.engine.batch import score_many

    test = MODELS[name].tests[index]
    messages = stream(test)
    random.Random(index).shuffle(messages)
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    rows = score_many(audience_free(name), str(path), as_of=test.as_of).to_pylist()
    assert [r["lead_id"] for r in rows] == [LEAD]
    check(rows[0], test)
