"""The stream stage (SQL on DuckDB) equals the plain-Python reference of the rules
(`leadscore.stream`) on random small streams: identity map, events, point-in-time traits,
account links and account traits — anonymous visits then identify, alias chains, group calls,
traits that change or go null, messages without timestamps, duplicate messageIds."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.engine.batch.inputs import canonical_inputs
from leadscore.io.segment import MESSAGE_COLUMNS, columns_table, message_row
from leadscore.stream import resolve
from leadscore.timeutil import parse_timestamp

USERS = ["u0", "u1", "u2", "u3"]          # disjoint alphabets: no id collisions by accident
ANONS = ["a0", "a1", "a2", "a3"]
GROUPS = ["g0", "g1"]
DAYS = [f"2026-01-0{d}T00:00:00Z" for d in range(1, 7)]
AS_OF = [parse_timestamp(f"2026-01-0{d}T12:00:00Z") for d in range(1, 8)]

maybe_day = st.one_of(st.none(), st.sampled_from(DAYS))
value = st.one_of(st.none(), st.integers(0, 3))
trait_values = st.dictionaries(st.sampled_from(["x", "y", "z"]), st.one_of(
    value, st.fixed_dictionaries({"k": value, "j": value})), max_size=3)


@st.composite
def a_message(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["identify", "identify", "alias", "group", "track", "page"]))
    user = draw(st.one_of(st.none(), st.sampled_from(USERS)))
    anon = draw(st.one_of(st.none(), st.sampled_from(ANONS)))
    if kind == "alias":
        return {"type": "alias", "userId": draw(st.sampled_from(USERS)),
                "previousId": draw(st.sampled_from(USERS + ANONS)),
                **_stamp(draw(maybe_day))}
    if user is None and anon is None:
        anon = draw(st.sampled_from(ANONS))
    ids = {k: v for k, v in (("userId", user), ("anonymousId", anon)) if v is not None}
    if kind == "identify":
        traits = draw(trait_values)
        if draw(st.booleans()):
            traits["company"] = {"name": draw(st.sampled_from(GROUPS)), "size": draw(value)}
        return {"type": "identify", **ids, "traits": traits, **_stamp(draw(maybe_day))}
    if kind == "group":
        return {"type": "group", **ids, "groupId": draw(st.sampled_from(GROUPS)),
                "traits": {"size": draw(value), "tier": draw(value)},
                **_stamp(draw(maybe_day))}
    day = draw(st.sampled_from(DAYS))
    if kind == "track":
        return {"type": "track", **ids, "event": draw(st.sampled_from(["A", "B"])),
                "timestamp": day}
    return {"type": "page", **ids, "properties": {"path": "/p"}, "timestamp": day}


def _stamp(day: str | None) -> dict[str, str]:
    return {} if day is None else {"timestamp": day}


@st.composite
def a_stream(draw: Any) -> list[dict[str, Any]]:
    messages = []
    for n, message in enumerate(draw(st.lists(a_message(), min_size=1, max_size=14))):
        if n and draw(st.integers(0, 5)) == 0:       # a re-sent message, maybe re-stamped
            copy = dict(messages[draw(st.integers(0, n - 1))])
            if draw(st.booleans()) and copy.get("timestamp"):
                copy["timestamp"] = draw(st.sampled_from(DAYS))
            messages.append(copy)
            continue
        if draw(st.integers(0, 4)):                  # else no messageId: a content hash
            message["messageId"] = f"m{n:02d}"
        messages.append(message)
    return messages


def present(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=a_stream(), as_of=st.sampled_from(AS_OF))
def test_the_sql_stage_equals_the_reference(stream: list[dict[str, Any]], as_of: int) -> None:
    rows = [message_row(m) for m in stream]
    expected = resolve(rows, as_of)
    con = duckdb.connect()
    try:
        found = canonical_inputs(columns_table(rows, MESSAGE_COLUMNS), None, con, as_of)
        assert found.leads is not None and found.accounts is not None
        events = con.sql(f'SELECT lead_id, ts, type, event FROM "{found.events}"').fetchall()
        leads = {r["lead_id"]: present(r) for r in
                 con.sql(f'SELECT * FROM "{found.leads}"').to_arrow_table().to_pylist()}
        accounts = {r["account_id"]: present(r) for r in
                    con.sql(f'SELECT * FROM "{found.accounts}"').to_arrow_table().to_pylist()}
    finally:
        con.close()
    assert sorted(events) == sorted((e["lead_id"], e["ts"], e["type"], e["event"])
                                    for e in expected.events)
    assert leads == {lead: {"lead_id": lead, **profile}
                     for lead, profile in expected.leads.items()}
    assert accounts == {account: {"account_id": account, **traits}
                        for account, traits in expected.accounts.items()}


@pytest.mark.parametrize("as_of", [AS_OF[0], AS_OF[-1]])
def test_the_reference_merges_an_anonymous_visit_and_keeps_the_first_claim(as_of: int) -> None:
    stream: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "a0", "timestamp": DAYS[0], "messageId": "1",
         "properties": {"path": "/p"}},
        {"type": "identify", "userId": "u1", "anonymousId": "a0", "timestamp": DAYS[1],
         "messageId": "2"},
        {"type": "identify", "userId": "u0", "anonymousId": "a0", "timestamp": DAYS[2],
         "messageId": "3"}]
    resolved = resolve([message_row(m) for m in stream], as_of)
    if as_of == AS_OF[0]:
        assert set(resolved.leads) == {"a0"}
    else:
        assert set(resolved.leads) == {"u0", "u1"}
        assert [e["lead_id"] for e in resolved.events] == ["u1"]
