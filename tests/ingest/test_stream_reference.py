"""The service's identities, traits and accounts equal the stream rules written out plainly
(`reference` below: a union-find over the spec's edges, then per-key folds), on generated
streams fed in (timestamp, messageId) order in calls of a few messages — SQLite and
PostgreSQL. The scores are compared with the batch engine in tests/test_stream_agreement.py;
this test holds the service to the rules themselves."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from leadscore.ingest.validate import company_account
from leadscore.service import Service
from leadscore.store.schema import accounts, identities, leads
from tests.conftest import fresh_store_url
from tests.test_stream_agreement import MODEL, NOW, order_key, streams

Node = tuple[str, str]      # ("user" | "anonymous", id)


def own(message: Mapping[str, Any]) -> Node:
    user = message.get("userId")
    return ("user", user) if user is not None else ("anonymous", message["anonymousId"])


def not_null(values: Mapping[str, Any]) -> dict[str, Any]:
    """Set keys: a value with some non-null leaf (flattened, a column holds a value)."""
    def says(value: Any) -> bool:
        return any(says(v) for v in value.values()) if isinstance(value, Mapping) \
            else value is not None
    return {k: v for k, v in values.items() if says(v)}


def named_account(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    if message["type"] == "group":
        return message["groupId"], dict(message.get("traits") or {})
    if message["type"] == "identify":
        return company_account(message.get("traits") or {})
    return None


def reference(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream rules (docs/model-format.md) applied to every message at once."""
    kept: dict[str, dict[str, Any]] = {}
    for message in sorted(messages, key=order_key):
        kept.setdefault(message["messageId"], message)
    ordered = sorted(kept.values(), key=order_key)
    parent: dict[Node, Node] = {}

    def root(node: Node) -> Node:
        parent.setdefault(node, node)
        while parent[node] != node:
            node = parent[node]
        return node

    def join(a: Node, b: Node) -> None:
        parent[root(a)] = root(b)

    claims: dict[str, str] = {}
    for m in ordered:
        if m["type"] == "alias":
            claims.setdefault(m["previousId"], m["userId"])
        elif m["type"] == "identify" and m.get("userId") and m.get("anonymousId"):
            claims.setdefault(m["anonymousId"], m["userId"])
    for m in ordered:
        root(own(m))
        if m["type"] == "alias":
            join(("user", m["userId"]), ("user", m["previousId"]))
            join(("user", m["userId"]), ("anonymous", m["previousId"]))
        elif m["type"] == "identify" and m.get("userId") and m.get("anonymousId") and \
                claims[m["anonymousId"]] == m["userId"]:
            join(("user", m["userId"]), ("anonymous", m["anonymousId"]))
    members: dict[Node, list[Node]] = {}
    for node in list(parent):
        members.setdefault(root(node), []).append(node)
    sent = {m["userId"] for m in ordered if m.get("userId") is not None}
    lead_of: dict[Node, str] = {}
    for nodes in members.values():
        # The smallest userId a message was sent with (a previousId alone does not name).
        users = sorted(i for kind, i in nodes if kind == "user" and i in sent)
        lead_id = users[0] if users else nodes[0][1]
        lead_of.update({node: lead_id for node in nodes})
    traits: dict[str, dict[str, Any]] = {lead: {} for lead in lead_of.values()}
    account: dict[str, str | None] = {lead: None for lead in lead_of.values()}
    account_traits: dict[str, dict[str, Any]] = {}
    for m in ordered:
        lead = lead_of[own(m)]
        if m["type"] == "identify":
            traits[lead].update(not_null(m.get("traits") or {}))
        found = named_account(m)
        if found is not None:
            account[lead] = found[0]
            account_traits.setdefault(found[0], {}).update(not_null(found[1]))
    return {"identities": lead_of, "traits": traits, "account": account,
            "accounts": account_traits}


def stored(url: str, messages: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ordered = sorted(messages, key=order_key)
    with Service.open(url, models=[MODEL], background=False) as service:
        start = 0
        while start < len(ordered):
            size = rng.randint(1, 6)
            assert not service.ingest(ordered[start:start + size], received_at=NOW).rejected
            start += size
        with service.db.read() as connection:
            rows = connection.execute(select(leads.c.id, leads.c.traits, leads.c.account_id)
                                      .where(leads.c.merged_into.is_(None))).all()
            found = {(kind, i): lead for kind, i, lead in connection.execute(select(
                identities.c.kind, identities.c.id, identities.c.lead_id))}
            account_rows = dict(connection.execute(select(accounts.c.id, accounts.c.traits))
                                .all())
    return {"identities": found, "traits": {r.id: r.traits for r in rows},
            "account": {r.id: r.account_id for r in rows}, "accounts": account_rows}


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql",
                                                          marks=pytest.mark.postgres)])
def test_the_service_keeps_identities_traits_and_accounts_by_the_rules(store: str) -> None:
    @settings(max_examples=60 if store == "sqlite" else 20, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=streams(max_size=30), seed=st.integers(0, 2**16))
    def check(messages: list[dict[str, Any]], seed: int) -> None:
        want = reference(messages)
        with fresh_store_url(store) as url:
            got = stored(url, messages, seed)
        context = "\n".join(str(m) for m in sorted(messages, key=order_key))
        for key in ("identities", "traits", "account", "accounts"):
            assert got[key] == want[key], (key, context)

    check()
