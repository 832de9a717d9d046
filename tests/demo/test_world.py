"""The demo world: deterministic, believable, and the example models tell its personas apart."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from leadscore.demo import generate_world, write_world
from leadscore.demo.show import MODEL_FILES, MODELS_DIR
from leadscore.model import load_models

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
PERSONAS = {"ready buyer", "window shopper", "newsletter only", "lapsed customer",
            "loyal customer", "student", "job seeker", "competitor"}


def test_same_seed_same_world_and_another_seed_another() -> None:
    one, two = generate_world(3, consumers=300, businesses=200), generate_world(
        3, consumers=300, businesses=200)
    assert one.events.equals(two.events) and one.leads.equals(two.leads)
    assert one.personas.equals(two.personas)
    other = generate_world(4, consumers=300, businesses=200)
    assert not other.events.equals(one.events)


def test_the_world_is_shaped_as_the_io_expects() -> None:
    world = generate_world(1, consumers=100, businesses=100)
    assert world.events.column_names[:5] == ["lead_id", "timestamp", "type", "event", "path"]
    assert {"email_id", "topic", "revenue"} <= set(world.events.column_names)
    assert {"lead_id", "segment", "age", "birthday", "occupation", "job_title", "seniority",
            "account.industry", "account.employees", "account.revenue"} <= set(
        world.leads.column_names)
    stamps = world.events.column("timestamp").cast("int64").to_pylist()
    assert max(stamps) < world.as_of
    assert min(stamps) >= world.as_of - 120 * 86_400_000_000
    assert set(world.personas.column("persona").to_pylist()) == PERSONAS
    leads = set(world.leads.column("lead_id").to_pylist())
    assert set(world.events.column("lead_id").to_pylist()) <= leads


def test_write_world_in_every_format(tmp_path: Path) -> None:
    world = generate_world(2, consumers=40, businesses=30)
    paths = write_world(world, tmp_path, formats=("parquet", "csv", "jsonl"))
    assert sorted(paths) == sorted(["events.parquet", "leads.parquet", "events.csv",
                                    "leads.csv", "events.jsonl", "leads.jsonl", "export.jsonl",
                                    "personas.csv"])
    assert pq.read_table(paths["events.parquet"]).num_rows == world.events.num_rows
    assert len(paths["events.jsonl"].read_text().splitlines()) == world.events.num_rows
    assert paths["export.jsonl"].read_text() == (paths["leads.jsonl"].read_text()
                                                 + paths["events.jsonl"].read_text())


def test_packaged_demo_models_are_the_examples() -> None:
    for name in MODEL_FILES:
        assert (MODELS_DIR / name).read_text() == (EXAMPLES / name).read_text(), name


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(model, persona) → score rows, for the full demo world."""
    batch = pytest.importorskip("leadscore.engine.batch")
    world = generate_world(7)
    models = load_models([EXAMPLES / name for name in MODEL_FILES])
    scores = batch.score_many(models, world.events, world.leads, as_of=world.as_of)
    persona = world.persona_of()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in scores.to_pylist():
        groups[(row["model"], persona[row["lead_id"]])].append(row)
    return groups


MODELS = ("b2c-art-supplies", "b2b-software")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("persona,reason", [("competitor", "competitor"),
                                            ("student", "student"),
                                            ("job seeker", "job_seeker")])
def test_competitors_students_and_job_seekers_are_disqualified_with_their_reason(
        outcomes: dict[tuple[str, str], list[dict[str, Any]]], model: str, persona: str,
        reason: str) -> None:
    rows = outcomes[(model, persona)]
    assert rows
    assert all(r["disqualified"] and r["disqualify_reason"] == reason for r in rows)
    assert all(r["temperature"] == "dead" and not r["mql"] for r in rows)


@pytest.mark.parametrize("model", MODELS)
def test_ready_buyers_are_mostly_hot_mqls(
        outcomes: dict[tuple[str, str], list[dict[str, Any]]], model: str) -> None:
    rows = outcomes[(model, "ready buyer")]
    assert sum(r["mql"] for r in rows) >= 0.9 * len(rows)
    assert sum(r["temperature"] == "hot" for r in rows) >= 0.8 * len(rows)


@pytest.mark.parametrize("model", MODELS)
def test_window_shoppers_and_newsletter_readers_are_rarely_mqls(
        outcomes: dict[tuple[str, str], list[dict[str, Any]]], model: str) -> None:
    for persona in ("window shopper", "newsletter only"):
        rows = outcomes[(model, persona)]
        assert sum(r["mql"] for r in rows) <= 0.05 * len(rows), persona
        assert not any(r["disqualified"] for r in rows)


@pytest.mark.parametrize("model", MODELS)
def test_customers_are_customers(
        outcomes: dict[tuple[str, str], list[dict[str, Any]]], model: str) -> None:
    loyal = outcomes[(model, "loyal customer")]
    assert all(r["stage"] in ("customer", "advocate") and r["purchases"] >= 1 for r in loyal)
    assert Counter(r["stage"] for r in loyal)["advocate"] > 0
    lapsed = outcomes[(model, "lapsed customer")]
    assert all(r["purchases"] >= 1 and r["tenure_days"] > 80 for r in lapsed)
    assert all(r["temperature"] == "cold" and not r["mql"] for r in lapsed)
