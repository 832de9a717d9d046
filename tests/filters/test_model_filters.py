"""A model's own `filters:` (#19 item 4): they add to the settings' for that model only. The
same stream, with events from an office address, is scored by a model filtering that address
and by one that does not: the first does not count them, the second does — alike in the
service (SQLite, PostgreSQL; event by event, in bulk and replayed after a merge) and in batch
(DuckDB), and each such event is stored once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.engine.batch import score_many
from leadscore.errors import ModelError
from leadscore.filters import Filters, ModelFilters, combined
from leadscore.model.loader import load_model
from leadscore.service import Service
from leadscore.store.schema import events as events_table
from leadscore.timeutil import parse_timestamp
from tests.conftest import fresh_store_url

RULES = """\
engagement:
  rules:
    - {name: pricing page, page: /pricing, points: 10}
    - {name: requested a demo, event: Demo Requested, points: 30}
thresholds: {mql: 35}
"""
OFFICE = load_model("office.yaml", text="name: office\nfilters: {ips: [10.0.0.0/8]}\n" + RULES)
PLAIN = load_model("plain.yaml", text="name: plain\n" + RULES)
NOW = parse_timestamp("2026-03-01T00:00:00Z")
OUTSIDE, INSIDE = {"ip": "192.0.2.7"}, {"ip": "10.1.2.3"}


def message(n: int, user: str, context: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"m{n}", "userId": user, "context": context,
            "timestamp": f"2026-02-{1 + n % 27:02d}T10:00:00Z", **fields}


def stream() -> list[dict[str, Any]]:
    """ann: a demo from the office and a pricing page from outside; bob: both from the
    office; cat: an anonymous visitor from the office, identified later as ann (a merge)."""
    demo, page = {"event": "Demo Requested"}, {"type": "page", "properties": {
        "path": "/pricing"}, "name": "pricing"}
    out = [message(1, "ann", INSIDE, **demo), message(2, "ann", OUTSIDE, **page),
           message(3, "bob", INSIDE, **page), message(4, "bob", INSIDE, **demo)]
    visit = message(5, "x", INSIDE, **page)
    del visit["userId"]
    visit["anonymousId"] = "anon-cat"
    out.append(visit)
    out.append({"type": "identify", "messageId": "m6", "userId": "ann",
                "anonymousId": "anon-cat", "timestamp": "2026-02-10T10:00:00Z",
                "traits": {"email": "ann@example.org"}})
    return out


# Under `office`, only ann's outside page counts; under `plain`, everything.
EXPECTED = {("office", "ann"): 10.0, ("office", "bob"): 0.0,
            ("plain", "ann"): 50.0, ("plain", "bob"): 40.0}


def batch(tmp_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in stream()))
    rows = score_many([PLAIN, OFFICE], str(path), as_of=NOW, filters=Filters()).to_pylist()
    assert [(r["model"], r["lead_id"]) for r in rows] == sorted(
        (r["model"], r["lead_id"]) for r in rows)
    return {(r["model"], r["lead_id"]): r for r in rows}


def service(url: str, bulk: bool) -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
    with Service.open(url, models=[PLAIN, OFFICE], background=False,
                      filters=Filters()) as live:
        if bulk:
            result = live.ingest(stream(), received_at=NOW)
            assert not result.rejected, result.rejected
        else:
            for one in stream():
                result = live.ingest([one], received_at=NOW)
                assert not result.rejected, result.rejected
        with live.db.read() as connection:
            stored = connection.execute(select(func.count()).select_from(events_table)
                                        ).scalar()
        found = {(model, lead): live.get_lead(lead, model, as_of=NOW)
                 for model in ("office", "plain") for lead in ("ann", "bob")}
    return found, int(stored or 0)


def test_batch_scores_each_model_over_its_own_events(tmp_path: Path) -> None:
    rows = batch(tmp_path)
    assert {key: rows[key]["engagement"] for key in EXPECTED} == pytest.approx(EXPECTED)


@pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "together"])
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql",
                                                          marks=pytest.mark.postgres)])
def test_the_service_and_batch_agree(store: str, bulk: bool, tmp_path: Path) -> None:
    with fresh_store_url(store) as url:
        live, stored = service(url, bulk)
    assert stored == len(stream())         # each office event stored once, for every model
    assert {key: live[key]["engagement"] for key in EXPECTED} == pytest.approx(EXPECTED)
    rows = batch(tmp_path)
    for key, lead in live.items():
        for column in ("fit", "engagement", "score", "grade", "mql", "stage"):
            want = rows[key][column]
            assert lead[column] == (pytest.approx(want) if isinstance(want, float)
                                    else want), (key, column)


def test_many_events_fold_alike() -> None:
    """`update_many`'s vectorised path is not taken for a model with filters: the same
    result as event by event."""
    from leadscore.engine.incremental import Scorer
    from leadscore.engine.incremental.scorer import MANY
    from leadscore.events import Event

    events = [Event("ann", 1_700_000_000_000_000 + i, "page", path="/pricing",
                    context=INSIDE if i % 2 else OUTSIDE) for i in range(MANY + 5)]
    many, each = Scorer([PLAIN, OFFICE]), Scorer([PLAIN, OFFICE])
    many.update_many(events)
    for event in events:
        each.update_one(event)
    for name in ("office", "plain"):
        assert many.score("ann", name).engagement == pytest.approx(
            each.score("ann", name).engagement)
    assert many.score("ann", "office").engagement < many.score("ann", "plain").engagement


def test_a_model_names_event_filters_only() -> None:
    with pytest.raises(ModelError, match=r"bad\.yaml:2.*filters on leads belong"):
        load_model("bad.yaml", text="name: bad\nfilters: {internal_domains: [shop.example]}\n"
                   + RULES)
    with pytest.raises(ModelError, match=r"bad\.yaml:2.*not an address range"):
        load_model("bad.yaml", text="name: bad\nfilters: {ips: [office]}\n" + RULES)


def test_combined_catches_what_either_catches() -> None:
    settings = Filters(bots=False, link_scanner_seconds=5, ips=("192.0.2.0/24",))
    own = ModelFilters(ips=("10.0.0.0/8",), link_scanner_seconds=30, bots=True).own()
    both = combined(settings, own)
    assert both.ips == ("192.0.2.0/24", "10.0.0.0/8")
    assert both.bots and both.link_scanners and both.link_scanner_seconds == 30
    assert not ModelFilters(ips=("10.0.0.0/8",)).own().bots


def test_a_plan_alone_refuses_a_model_with_filters() -> None:
    """Paths that compile a plan over events they read themselves (the warehouse statement,
    `--state`) cannot give the model its own view: they say so rather than score the events
    its filters catch."""
    from leadscore.engine.sql.plan import compile_plan
    from leadscore.errors import EngineError

    with pytest.raises(EngineError, match="'office' has filters of its own"):
        compile_plan(OFFICE, {"lead_id": "VARCHAR"}, None, NOW)
    compile_plan(PLAIN, {"lead_id": "VARCHAR", "type": "VARCHAR", "event": "VARCHAR",
                         "path": "VARCHAR", "timestamp": "BIGINT"}, None, NOW)


def test_the_dashboards_timeline_follows_the_models_filters() -> None:
    from leadscore.dashboard.history import timeline
    from leadscore.events import Event
    from leadscore.model.compiled import compile_model

    events = [Event("ann", NOW - 2, "page", path="/pricing", context=INSIDE),
              Event("ann", NOW - 1, "page", path="/pricing", context=OUTSIDE)]
    for model, earned in ((OFFICE, {"10.1.2.3": 0, "192.0.2.7": 1}),
                          (PLAIN, {"10.1.2.3": 1, "192.0.2.7": 1})):
        entries, _ = timeline(compile_model(model), events, NOW)
        assert {e.event.context["ip"]: len(e.earned) for e in entries} == earned


def test_state_refuses_a_model_with_filters(tmp_path: Path) -> None:
    import duckdb

    from leadscore.engine.batch.state.store import score_with_state
    from leadscore.errors import EngineError

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in stream()))
    with pytest.raises(EngineError, match=r"'office' has filters of its own.*--state"):
        score_with_state(OFFICE, str(path), None, NOW, tmp_path / "state", duckdb.connect())
