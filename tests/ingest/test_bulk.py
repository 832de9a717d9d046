"""The bulk import path (`ingest.bulk`) gives the store the message path gives: the same file
imported both ways, on SQLite and PostgreSQL, leaves the same leads, identities, log, accounts,
scores and handoffs."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pytest
from sqlalchemy import text

from leadscore import load_model
from leadscore.demo.serve import subset
from leadscore.demo.show import MODEL_FILES, MODELS_DIR
from leadscore.demo.world import generate_world
from leadscore.service import Service
from leadscore.timeutil import now_us
from tests.conftest import fresh_store_url

MODELS = [load_model(MODELS_DIR / name) for name in MODEL_FILES]


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Service, Service]]:
    """Two empty stores of the same kind: one for the bulk path, one message by message."""
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    with fresh_store_url(kind) as other, \
            Service.open(db_url, models=MODELS, background=False) as bulk, \
            Service.open(other, models=MODELS, background=False) as by_message:
        yield bulk, by_message


@pytest.fixture(scope="module")
def world() -> tuple[pa.Table, pa.Table]:
    """300 leads of the demo world (half consumers, half businesses) and their events."""
    return subset(generate_world(7), 300)


def rows(service: Service, sql: str) -> list[tuple[Any, ...]]:
    with service.db.read() as connection:
        return [tuple(json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v
                      for v in row) for row in connection.execute(text(sql))]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def snapshot(service: Service, as_of: int) -> dict[str, Any]:
    """What an import leaves in the store, times of writing aside; scores read as of `as_of`."""
    scored = rows(service, "SELECT lead_id, model FROM scores ORDER BY lead_id, model")
    return {
        "leads": rows(service, "SELECT id, traits, account_id, merged_into FROM leads "
                               "ORDER BY id"),
        "identities": rows(service, "SELECT kind, id, lead_id FROM identities "
                                    "ORDER BY kind, id"),
        # A message without a time of its own is timed when received.
        "log": [(*row[:6], row[6] if "timestamp" in row[7] else None, *row[7:])
                for row in rows(service, "SELECT message_id, type, user_id, anonymous_id, "
                                         "event, path, timestamp, message, filtered "
                                         "FROM events "
                                         "ORDER BY message_id")],
        "accounts": rows(service, "SELECT id, traits FROM accounts ORDER BY id"),
        "saved": rows(service, "SELECT lead_id, model, model_version, fit, grade, stage, "
                               "disqualified, disqualify_reason, purchases FROM scores "
                               "ORDER BY lead_id, model"),
        "scores": [{k: v for k, v in service.get_lead(lead, model, as_of=as_of).items()
                    if k not in ("as_of", "updated_at", "handoffs")}
                   for lead, model in scored],
        "account scores": rows(service, "SELECT account_id, model, fit, mqa FROM "
                                        "account_scores ORDER BY account_id, model"),
        "handoffs": sorted(Counter(rows(service, "SELECT kind, lead_id, model FROM outbox"))
                           .items()),
    }


def assert_same(bulk: Service, by_message: Service) -> None:
    as_of = now_us()
    found, expected = snapshot(bulk, as_of), snapshot(by_message, as_of)
    for part in expected:
        assert close(found[part], expected[part]), part


def test_the_demo_world_imports_the_same_both_ways(stores: tuple[Service, Service],
                                                   world: tuple[pa.Table, pa.Table]) -> None:
    bulk, by_message = stores
    leads, events = world
    parts: tuple[tuple[Literal["leads", "events"], pa.Table], ...] = (
        ("leads", leads), ("events", events))
    for kind, table in parts:
        done = bulk.import_events(table, kind=kind)
        assert (done.by_message, done.notes, done.rejected) == (0, [], 0)
        reference = by_message.import_events(table, kind=kind, bulk=False)
        assert (done.accepted, done.handoffs) == (reference.accepted, reference.handoffs)
    assert len(snapshot(bulk, now_us())["handoffs"]) > 10       # the world has MQLs
    assert_same(bulk, by_message)


def test_into_a_live_store_leads_present_are_folded_on_their_state(
        stores: tuple[Service, Service], world: tuple[pa.Table, pa.Table]) -> None:
    """Half the events in, the other half imported on top: leads present keep what they
    had; a second bulk import of the whole table is all duplicates."""
    bulk, by_message = stores
    leads, events = world
    ordered = events.sort_by("timestamp")
    halves = ordered.slice(0, ordered.num_rows // 2), ordered.slice(ordered.num_rows // 2)
    for service, in_bulk in ((bulk, True), (by_message, False)):
        service.import_events(leads, kind="leads", bulk=in_bulk)
        for half in halves:
            service.import_events(half, kind="events", bulk=in_bulk)
    again = bulk.import_events(events, kind="events")
    assert (again.accepted, again.duplicates) == (0, events.num_rows)
    assert_same(bulk, by_message)


MESSAGES: list[dict[str, Any]] = [
    {"type": "identify", "userId": "ann", "anonymousId": "a-1",
     "traits": {"email": "ann@example.org", "age": 30, "segment": "consumer"},
     "timestamp": "2026-05-02T09:00:00Z"},
    {"type": "track", "userId": "ann", "event": "Newsletter Subscribed",
     "timestamp": "2026-05-01T09:00:00Z"},            # before her identify, sent after it
    {"type": "identify", "userId": "ann", "traits": {"age": None, "city": "Hamburg"},
     "timestamp": "2026-05-01T08:00:00Z"},            # older: a null erases nothing
    {"type": "page", "userId": "ann", "properties": {"path": "/stores/hamburg"},
     "timestamp": "2026-05-03T17:00:00Z", "messageId": "m-store"},
    {"type": "page", "userId": "ann", "properties": {"path": "/stores/hamburg"},
     "timestamp": "2026-05-03T17:00:00Z", "messageId": "m-store"},     # a duplicate
    {"type": "identify", "userId": "bob",
     "traits": {"email": "bob@acme.example", "title": "CTO",
                "company": {"name": "Acme", "industry": "software", "employees": 400}},
     "timestamp": "2026-05-01T10:00:00Z"},
    {"type": "group", "userId": "cy", "groupId": "Acme", "traits": {"plan": "trial"},
     "timestamp": "2026-05-02T10:00:00Z"},
    {"type": "track", "userId": "bob", "event": "Demo Requested",
     "timestamp": "2026-05-04T10:00:00Z"},
    {"type": "page", "anonymousId": "visitor-9", "properties": {"path": "/pricing"},
     "timestamp": "2026-05-04T11:00:00Z"},
    {"type": "page", "userId": "bob", "properties": {"path": "/pricing"},
     "context": {"userAgent": "Mozilla/5.0 (compatible; Googlebot/2.1; "
                              "+http://www.google.com/bot.html)"},
     "timestamp": "2026-05-04T12:00:00Z"},            # a crawler's: logged, filtered
    {"type": "track", "event": "Demo Requested"},     # rejected: no userId
]


def write_lines(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def test_segment_json_with_identities_and_accounts(stores: tuple[Service, Service],
                                                   tmp_path: Path) -> None:
    bulk, by_message = stores
    path = write_lines(tmp_path / "messages.jsonl", MESSAGES)
    done = bulk.import_events(path)
    reference = by_message.import_events(path, bulk=False)
    assert done.by_message == 0
    assert (done.accepted, done.duplicates, done.rejected) == (9, 1, 1)
    assert (done.accepted, done.duplicates, done.errors) == (
        reference.accepted, reference.duplicates, reference.errors)
    assert bulk.get_lead("a-1")["lead_id"] == "ann"           # the anonymousId is hers
    assert bulk.get_lead("cy")["account_id"] == "Acme"
    crawled = rows(bulk, "SELECT filtered FROM events WHERE path = '/pricing' AND "
                         "user_id = 'bob'")
    assert len(crawled) == 1 and crawled[0][0] is not None       # logged, not scored
    assert_same(bulk, by_message)


def test_a_batch_that_merges_leads_goes_message_by_message(stores: tuple[Service, Service],
                                                           tmp_path: Path) -> None:
    bulk, by_message = stores
    merging = [*MESSAGES, {"type": "alias", "userId": "ann", "previousId": "visitor-9",
                           "timestamp": "2026-05-05T09:00:00Z"}]
    path = write_lines(tmp_path / "messages.jsonl", merging)
    done = bulk.import_events(path)
    by_message.import_events(path, bulk=False)
    assert done.by_message == 12
    assert done.notes == ["rows 1-12 imported message by message (row 12: an alias merges "
                          "leads)"]
    assert bulk.get_lead("visitor-9")["lead_id"] == "ann"
    assert_same(bulk, by_message)
