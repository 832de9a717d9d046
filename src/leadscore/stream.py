"""The stream semantics in plain Python: a reference (no I/O, no SQL) of what the stream stage
(`engine.sql.stream`) computes from the rows of the `messages` relation as of `T` — small and
slow on purpose, the oracle its property tests compare against.

A row is a dict as `io.segment.message_row` makes it: `message_id, type, user_id,
anonymous_id, previous_id, timestamp` (µs or a datetime; None: before every as_of), `event, path,
account_id`, and flattened `properties.*`, `context.*`, `traits.*`, `account.*` values.
The rules are those of the stage's module doc (the lead's spec, issue #15).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.timeutil import parse_timestamp

NEVER = -(2**63) + 1          # the order key of a message without a timestamp
EVENT_KINDS = ("track", "page", "screen")
Row = Mapping[str, Any]


@dataclass
class Resolved:
    """What a stream says as of T: events (with their lead), leads and accounts."""

    events: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)     # traits.*, account.*
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # account.*
    lead_of: dict[tuple[str, str], str] = field(default_factory=dict)  # identity → lead


def order_key(row: Row) -> tuple[int, str]:
    stamp = row.get("timestamp")
    return (NEVER if stamp is None else parse_timestamp(stamp), str(row["message_id"]))


def own_identity(row: Row) -> tuple[str, str]:
    return ("u", row["user_id"]) if row.get("user_id") is not None else (
        "a", row["anonymous_id"])


def at(rows: Iterable[Row], as_of: int) -> list[Row]:
    """The messages at or before `as_of`, one per message_id (the smallest order key), in
    order."""
    kept: dict[str, Row] = {}
    for row in rows:
        if order_key(row)[0] > as_of:
            continue
        seen = kept.get(row["message_id"])
        if seen is None or order_key(row) < order_key(seen):
            kept[row["message_id"]] = row
    return sorted(kept.values(), key=order_key)


def resolve(rows: Iterable[Row], as_of: int) -> Resolved:
    """The stream as of `as_of`."""
    messages = at(rows, as_of)
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        parent[find(a)] = find(b)

    claimant: dict[str, str] = {}      # anonymous id → its first claimant (messages in order)
    for row in messages:
        find(own_identity(row))
        if row["type"] == "identify" and row.get("user_id") is not None and \
                row.get("anonymous_id") is not None:
            claimant.setdefault(row["anonymous_id"], row["user_id"])
        elif row["type"] == "alias":
            claimant.setdefault(row["previous_id"], row["user_id"])
            union(("u", row["user_id"]), ("u", row["previous_id"]))
            union(("u", row["user_id"]), ("a", row["previous_id"]))
    for row in messages:
        if row["type"] == "identify" and row.get("user_id") is not None and \
                row.get("anonymous_id") is not None and \
                claimant[row["anonymous_id"]] == row["user_id"]:
            union(("u", row["user_id"]), ("a", row["anonymous_id"]))
    users: dict[tuple[str, str], str] = {}     # component → its smallest own userId
    for row in messages:
        if row.get("user_id") is not None:
            root = find(("u", row["user_id"]))
            users[root] = min(users.get(root, row["user_id"]), row["user_id"])
    user_leads = set(users.values())
    out = Resolved()
    for node in parent:
        root = find(node)
        if root in users:
            out.lead_of[node] = users[root]
        else:     # an anonymous id alone
            out.lead_of[node] = node[1] + "#2" if node[1] in user_leads else node[1]
    lead_traits: dict[str, dict[str, Any]] = {}
    lead_account: dict[str, str] = {}
    account_traits: dict[str, dict[str, Any]] = {}
    for row in messages:                       # in order: the latest wins per key
        lead = out.lead_of[own_identity(row)]
        out.leads.setdefault(lead, {})
        if row["type"] in EVENT_KINDS:
            out.events.append({"lead_id": lead, "ts": order_key(row)[0], "type": row["type"],
                               "event": row.get("event"), "path": row.get("path"),
                               "message_id": row["message_id"]})
            continue
        if row["type"] == "identify":
            set_keys(lead_traits.setdefault(lead, {}), row, "traits.")
        if row["type"] in ("identify", "group") and row.get("account_id") is not None:
            lead_account[lead] = row["account_id"]
            set_keys(account_traits.setdefault(row["account_id"], {}), row, "account.")
    out.accounts = account_traits
    for lead, profile in out.leads.items():
        profile.update(lead_traits.get(lead, {}))
        account = lead_account.get(lead)
        if account is not None:
            profile["account.id"] = account
            profile.update(account_traits[account])
    return out


def set_keys(target: dict[str, Any], row: Row, prefix: str) -> None:
    """Per top-level key the row sets (one of its columns not null), the row's columns of
    that key replace the ones before."""
    keys: dict[str, dict[str, Any]] = {}
    for column, value in row.items():
        if column.startswith(prefix) and len(column) > len(prefix):
            keys.setdefault(column[len(prefix):].split(".", 1)[0], {})[column] = value
    for key, values in keys.items():
        if any(v is not None for v in values.values()):
            for column in [c for c in target if c[len(prefix):].split(".", 1)[0] == key]:
                del target[column]
            target.update({c: v for c, v in values.items() if v is not None})
