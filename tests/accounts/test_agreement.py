"""The service's live account scores agree with the batch engine's `score_accounts` over the
same leads, accounts and events (every roll-up; links by group call, account_id trait and
e-mail domain, free-mail never; disqualified leads and accounts; events in any order)."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest

from leadscore.engine.batch.accounts import score_accounts
from leadscore.model.loader import load_model
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso
from tests.accounts.conftest import MODELS, NOW

EVENTS = pa.schema([("lead_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                    ("type", pa.string()), ("event", pa.string()), ("path", pa.string())])
LEADS = pa.schema([("lead_id", pa.string()), ("email", pa.string()),
                   ("account_id", pa.string()), ("job_level", pa.string()),
                   ("occupation", pa.string())])
ACCOUNTS = pa.schema([("account_id", pa.string()), ("domain", pa.string()),
                      ("industry", pa.string())])
DOMAINS = ["acme.com", "ACME.com", "beta.io", "gmail.com", None]


def world(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                              dict[str, str]]:
    """Accounts, leads, events, and the leads the service links by a group call."""
    rng = random.Random(seed)
    accounts = [{"account_id": f"acc-{i}", "domain": rng.choice(DOMAINS),
                 "industry": rng.choice([None, "software", "software", "retail"])}
                for i in range(4)]
    leads, groups = [], {}
    for i in range(10):
        explicit = rng.choice([None, None, "acc-0", "acc-1", "acc-2", "solo"])
        lead = {"lead_id": f"lead-{i}",
                "email": rng.choice([None, *(f"p{i}@{d}" for d in DOMAINS if d)]),
                "account_id": explicit,
                "job_level": rng.choice([None, "decision maker", "user", "intern"]),
                "occupation": rng.choice([None, None, None, "student"])}
        if explicit is not None and explicit != "solo" and rng.random() < 0.5:
            groups[lead["lead_id"]] = explicit
        leads.append(lead)
    # Who gives each account its traits in the service (a group call): a member without
    # events, in the batch's leads table an account_id column.
    for account in accounts:
        owner = f"owner-{account['account_id']}"
        groups[owner] = account["account_id"]
        leads.append({"lead_id": owner, "email": None, "account_id": account["account_id"],
                      "job_level": None, "occupation": None})
    events = []
    for _ in range(40):
        days = rng.uniform(0, 40)
        page = rng.random() < 0.4
        events.append({"lead_id": f"lead-{rng.randrange(10)}",
                       "timestamp": NOW - round(days * US_PER_DAY),
                       "type": "page" if page else "track",
                       "event": None if page else rng.choice(["Demo Requested",
                                                              "Vehicle Interest Submitted"]),
                       "path": "/pricing" if page else None})
    rng.shuffle(events)
    return accounts, leads, events, groups


def messages(accounts: list[dict[str, Any]], leads: list[dict[str, Any]],
             events: list[dict[str, Any]], groups: dict[str, str]) -> list[dict[str, Any]]:
    stamp = iso(NOW - 50 * US_PER_DAY)
    out: list[dict[str, Any]] = []
    for account in accounts:
        traits = {k: v for k, v in account.items() if k != "account_id" and v is not None}
        out.append({"type": "group", "userId": f"owner-{account['account_id']}",
                    "groupId": account["account_id"], "traits": traits, "timestamp": stamp})
    for lead in leads:
        if lead["lead_id"].startswith("owner-"):
            continue
        traits = {k: v for k, v in lead.items() if k != "lead_id" and v is not None}
        if lead["lead_id"] in groups:
            traits.pop("account_id")
            out.append({"type": "group", "userId": lead["lead_id"],
                        "groupId": groups[lead["lead_id"]], "timestamp": stamp})
        out.append({"type": "identify", "userId": lead["lead_id"], "traits": traits,
                    "timestamp": stamp})
    for i, event in enumerate(events):
        message = {"type": event["type"], "userId": event["lead_id"],
                   "timestamp": iso(event["timestamp"]), "messageId": f"e{i}"}
        if event["type"] == "page":
            message["properties"] = {"path": event["path"]}
        else:
            message["event"] = event["event"]
        out.append(message)
    return out


@pytest.mark.parametrize("rollup", ["sum", "max", "top3_mean"])
@pytest.mark.parametrize("seed", [1, 2])
def test_live_account_scores_agree_with_batch(db_url: str, rollup: str, seed: int) -> None:
    text = (MODELS / "b2b.yaml").read_text().replace("rollup: sum", f"rollup: {rollup}")
    model = load_model("b2b.yaml", text=text)
    accounts, leads, events, groups = world(seed)
    batch = score_accounts(model, pa.Table.from_pylist(events, EVENTS),
                           pa.Table.from_pylist(leads, LEADS),
                           pa.Table.from_pylist(accounts, ACCOUNTS), as_of=NOW)
    expected = {row["account_id"]: row for row in batch.to_pylist()}
    with Service.open(db_url, models=[model], background=False) as service:
        sent = messages(accounts, leads, events, groups)
        for start in range(0, len(sent), 15):      # several transactions, any order
            result = service.ingest(sent[start:start + 15], received_at=NOW)
            assert not result.rejected
        listed, total = service.list_accounts(limit=100)
        live = {a: service.get_account(a, as_of=NOW) for a in expected}
    assert total == len(expected) and {r["account_id"] for r in listed} == set(expected)
    saved = {r["account_id"]: r for r in listed}
    for account_id, want in expected.items():
        got = live[account_id]
        # The score saved by the last transaction that touched the account (all at NOW).
        assert saved[account_id]["score"] == pytest.approx(want["score"], abs=1e-9)
        assert saved[account_id]["mqa"] == want["mqa"]
        for column in ("fit", "engagement", "score"):
            assert got[column] == pytest.approx(want[column], abs=1e-9), (account_id, column)
        for column in ("disqualified", "disqualify_reason", "mqa", "roles_engaged",
                       "roles_missing", "leads", "engaged_leads", "leads_by_domain"):
            assert got[column] == want[column], (account_id, column, got[column], want[column])
        # A group call here is an account_id column there.
        assert got["leads_by_group"] + got["leads_by_account_id"] == \
            want["leads_by_account_id"], account_id
    assert any(live[a]["engagement"] > 0 for a in live)        # the world is not empty
