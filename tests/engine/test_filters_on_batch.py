"""Filters on batch inputs (#19): DuckDB and Spark leave out the same events of a Segment
stream and of a flat events table (its `user_agent` / `ip` columns), with the service's
verdict, and say how many each filter caught."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from leadscore.engine.batch import score_many
from leadscore.errors import FilteredEventsWarning
from leadscore.filters import Filters
from leadscore.model.loader import load_model

MODEL = load_model("m.yaml", text="""\
name: m
engagement:
  rules:
    - {name: pricing, page: /pricing, points: 10}
    - {name: clicked, event: Email Link Clicked, points: 7}
""")
AS_OF = "2026-06-01T00:00:00Z"
FILTERS = Filters(ips=["10.0.0.0/8"], internal_domains=["shop.example"], lead_ids=["qa"])
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"


def page(n: int, who: str, agent: str | None = None, ip: str | None = None
         ) -> dict[str, Any]:
    context = {k: v for k, v in (("userAgent", agent), ("ip", ip)) if v}
    return {"type": "page", "userId": who, "messageId": f"p{n}", "properties":
            {"path": "/pricing"}, "timestamp": f"2026-05-{n:02d}T10:00:00Z",
            **({"context": context} if context else {})}


def click(n: int, who: str, seconds: float, agent: str = BROWSER) -> dict[str, Any]:
    return {"type": "track", "userId": who, "event": "Email Link Clicked",
            "messageId": f"c{n}", "timestamp": f"2026-05-{n:02d}T11:00:00Z",
            "properties": {"seconds_since_sent": seconds}, "context": {"userAgent": agent}}


STREAM = [
    {"type": "identify", "userId": "bob", "messageId": "i1", "timestamp": "2026-05-20T00:00:00Z",
     "traits": {"email": "bob@shop.example"}},
    page(1, "ann", BROWSER), page(2, "ann", "curl/8.5.0"), page(3, "ann", BROWSER, "10.2.3.4"),
    page(4, "bob", BROWSER), page(5, "qa"), page(6, "cid", BROWSER, "192.0.2.1"),
    click(7, "ann", 2), click(8, "ann", 3600), click(9, "cid", 3600, "Mimecast scanner"),
]
EXPECTED = {"ann": 17.0, "bob": 0.0, "cid": 10.0, "qa": 0.0}
COUNTS = "6 events filtered, not scored (ips 1, bots 1, link_scanners 2, lead_ids 1, " \
    "internal_domains 1)"


def scored(events: Any, **engine: Any) -> tuple[dict[str, float], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FilteredEventsWarning)
        rows = score_many(MODEL, events, as_of=AS_OF, filters=FILTERS, **engine).to_pylist()
    said = [str(w.message) for w in caught if issubclass(w.category, FilteredEventsWarning)]
    return {r["lead_id"]: r["engagement"] for r in rows}, said


def flat(tmp_path: Path) -> tuple[str, pa.Table]:
    """The stream's events as a flat table (`user_agent`, `ip` columns) and its leads."""
    rows = [{"lead_id": m["userId"], "timestamp": m["timestamp"], "type": m["type"],
             "event": m.get("event"), "path": m.get("properties", {}).get("path"),
             "user_agent": m.get("context", {}).get("userAgent"),
             "ip": m.get("context", {}).get("ip"),
             "properties.seconds_since_sent": m.get("properties", {}).get(
                 "seconds_since_sent")} for m in STREAM if m["type"] != "identify"]
    path = tmp_path / "events.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    leads = pa.table({"lead_id": ["ann", "bob", "cid", "qa"],
                      "email": [None, "bob@shop.example", "cid@x.example", None]})
    return str(path), leads


def test_duckdb_leaves_out_what_the_filters_catch(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in STREAM))
    found, said = scored(str(path))
    assert found == EXPECTED
    assert said == [f"{path}: {COUNTS}"]
    events, leads = flat(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilteredEventsWarning)
        rows = score_many(MODEL, events, leads, as_of=AS_OF, filters=FILTERS).to_pylist()
    assert {r["lead_id"]: r["engagement"] for r in rows} == EXPECTED
    # Switched off, every event scores.
    every = score_many(MODEL, str(path), as_of=AS_OF, filters=Filters(
        bots=False, link_scanners=False)).to_pylist()
    assert {r["lead_id"]: r["engagement"] for r in every} == {
        "ann": 44.0, "bob": 10.0, "cid": 17.0, "qa": 10.0}


@pytest.mark.spark
@pytest.mark.slow
def test_spark_leaves_out_the_same_events(tmp_path: Path, spark: Any) -> None:
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in STREAM))
    found, said = scored(str(path), engine="spark", spark=spark)
    assert found == EXPECTED
    assert said == [f"{path}: {COUNTS}"]
