"""Filters keep the same events out on both sides (#19): the service fed a generated Segment
history through the real ingest path (SQLite and PostgreSQL) and the batch engine scoring the
same messages from one shuffled JSON-lines file give every lead the same scores, with
crawlers, office addresses, link-scanner clicks and our own staff mixed in — staff known by
an e-mail domain that an identify may give a lead only after its first events, or take away
again, and by a listed lead id."""

from __future__ import annotations

import json
import random
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from leadscore.engine.batch import score_many
from leadscore.errors import FilteredEventsWarning
from leadscore.filters import Filters
from leadscore.model.loader import load_model
from leadscore.service import Service
from leadscore.store.schema import events as events_table
from leadscore.store.schema import leads as leads_table
from tests.conftest import fresh_store_url
from tests.test_stream_agreement import NOW, order_key, streams

MODEL = load_model("filtered.yaml", text="""\
name: filtered
fit:
  - {name: gave an e-mail, when: {email: {exists: true}}, points: 5}
  - {name: student, when: {occupation: {eq: student}}, disqualify: student}
engagement:
  decay: {half_life_days: 20}
  rules:
    - {name: requested a demo, event: Demo Requested, points: 30, limit: once}
    - {name: pricing page, page: /pricing*, points: 10, limit: daily}
    - {name: opened, event: Email Opened, points: 2}
    - {name: clicked, event: Email Link Clicked, points: 7}
grades: {A: 20, B: 5, C: 0}
temperature: {hot: 30, warm: 5}
thresholds: {mql: 40}
""")
FILTERS = Filters(ips=["10.0.0.0/8"], internal_domains=["shop.example"], lead_ids=["u3"],
                  user_agents=["^InternalProbe"])
AGENTS = [None, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
          "Gecko) Chrome/126.0 Safari/537.36", "curl/8.5.0", "Mozilla/5.0 (compatible; "
          "Googlebot/2.1; +http://www.google.com/bot.html)", "InternalProbe/1", "Mimecast"]
ADDRESSES = [None, "192.0.2.7", "10.20.30.40"]
COLUMNS = ("fit", "engagement", "score", "grade", "temperature", "stage", "mql",
           "disqualified", "disqualify_reason")


@st.composite
def filtered_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """`streams()` with agents and addresses on events, some of them clicks (a few seconds or
    minutes after their e-mail), and a staff address (`y@staff.shop.example`) for `y`."""
    out = []
    for message in draw(streams()):
        if message["type"] in ("track", "page"):
            context = {k: v for k, v in (("userAgent", draw(st.sampled_from(AGENTS))),
                                         ("ip", draw(st.sampled_from(ADDRESSES))))
                       if v is not None}
            if context:
                message["context"] = context
            if message["type"] == "track" and draw(st.integers(0, 3)) == 0:
                message["event"] = "Email Link Clicked"
                message["properties"] = {"seconds_since_sent": draw(st.sampled_from(
                    [2, 600]))}
        elif message["type"] == "identify" and \
                message.get("traits", {}).get("email") == "y@example.org":
            message["traits"]["email"] = "y@staff.shop.example"
        out.append(message)
    return out


def service_scores(url: str, messages: list[dict[str, Any]], seed: int
                   ) -> tuple[dict[str, dict[str, Any]], int]:
    """Leads as the service scores them, fed the messages in order a few at a time, and how
    many logged events are flagged."""
    rng = random.Random(seed)
    ordered = sorted(messages, key=order_key)
    with Service.open(url, models=[MODEL], background=False, filters=FILTERS) as service:
        start = 0
        while start < len(ordered):
            size = rng.randint(1, 6)
            result = service.ingest(ordered[start:start + size], received_at=NOW)
            assert not result.rejected, result.rejected
            start += size
        with service.db.read() as connection:
            lead_ids = sorted(connection.execute(select(leads_table.c.id).where(
                leads_table.c.merged_into.is_(None))).scalars())
            flagged = connection.execute(select(func.count()).select_from(events_table).where(
                events_table.c.filtered.isnot(None))).scalar()
        found = {lead_id: service.get_lead(lead_id, as_of=NOW) for lead_id in lead_ids}
    return found, int(flagged or 0)


def batch_scores(messages: list[dict[str, Any]], seed: int, directory: Path
                 ) -> dict[str, dict[str, Any]]:
    shuffled = list(messages)
    random.Random(seed).shuffle(shuffled)
    path = directory / f"export-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in shuffled))
    with warnings.catch_warnings():     # what it filtered is reported as a warning
        warnings.simplefilter("ignore", FilteredEventsWarning)
        rows = score_many(MODEL, str(path), as_of=NOW, filters=FILTERS).to_pylist()
    return {row["lead_id"]: row for row in rows}


STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
EXAMPLES = {"sqlite": 30, "postgresql": 10}


@pytest.mark.parametrize("store", STORES)
def test_the_service_and_batch_filter_the_same_events(store: str, tmp_path: Path) -> None:
    filtered_somewhere = []

    @settings(max_examples=EXAMPLES[store], deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=filtered_streams(), seed=st.integers(0, 2**16))
    def check(messages: list[dict[str, Any]], seed: int) -> None:
        with fresh_store_url(store) as url:
            live, flagged = service_scores(url, messages, seed)
        batch = batch_scores(messages, seed, tmp_path)
        filtered_somewhere.append(flagged)
        context = "\n".join(json.dumps(m) for m in sorted(messages, key=order_key))
        assert set(live) == set(batch), context
        for lead_id, row in live.items():
            for column in COLUMNS:
                got, want = row[column], batch[lead_id][column]
                if isinstance(want, float):
                    assert got == pytest.approx(want, abs=1e-6), (lead_id, column, context)
                else:
                    assert got == want, (lead_id, column, got, want, context)

    check()
    # The streams did exercise the filters: most examples had filtered events.
    assert sum(n > 0 for n in filtered_somewhere) > len(filtered_somewhere) // 2
