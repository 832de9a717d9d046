"""A lead's traits and account link by the stream rules, read from its messages in the log.

The rules (docs/model-format.md, "Events and leads as the engines see them"; the batch
stream stage computes the same in SQL): messages are ordered by (timestamp, messageId);
- a lead's traits: per top-level key, the value of the latest identify message of any of its
  identities whose value for that key is not null (a null does not erase);
- its account: the account of its latest account-naming message (a group call, or an
  identify whose `traits.company` names an account).

Fed in time order, the store's running merge (`store.leads.set_traits`, which skips nulls)
equals this; after a merge, or for a message older than the lead's latest of its kind, the
lead is recomputed from its messages here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from leadscore.ingest.validate import company_account
from leadscore.store import leads as lead_store

IDENTIFY = ("identify",)
ACCOUNT_NAMING = ("group", "identify")

Logged = tuple[int, str, str, dict[str, Any]]      # timestamp, messageId, type, message


def traits_of(messages: Iterable[Logged]) -> dict[str, Any]:
    """Per top-level key the latest non-null value of these identify messages (in order)."""
    traits: dict[str, Any] = {}
    for _, _, _, message in messages:
        found = message.get("traits")
        if isinstance(found, Mapping):
            traits.update(lead_store.not_null(found))
    return traits


def account_named(kind: str, message: Mapping[str, Any]) -> str | None:
    """The account a logged message names: a group's groupId, an identify's company."""
    if kind == "group":
        group_id = message.get("groupId")
        return None if group_id is None else str(group_id)
    traits = message.get("traits")
    company = company_account(traits) if isinstance(traits, Mapping) else None
    return company[0] if company is not None else None


def lead_traits(connection: Connection, lead_id: str) -> dict[str, Any]:
    return traits_of(lead_store.own_messages(connection, lead_id, IDENTIFY))


def lead_account(connection: Connection, lead_id: str) -> str | None:
    """The account of the lead's latest account-naming message; None if none names one."""
    for kind_message in reversed(lead_store.own_messages(connection, lead_id,
                                                         ACCOUNT_NAMING)):
        found = account_named(kind_message[2], kind_message[3])
        if found is not None:
            return found
    return None


def is_latest(connection: Connection, lead_id: str, timestamp: int, message_id: str,
              kind: str) -> bool:
    """Whether no message of the lead in the log is later than this one: an identify (for
    traits), or an account-naming message (`kind` "account") for its account link."""
    types = IDENTIFY if kind == "identify" else ACCOUNT_NAMING
    if not lead_store.later_than(connection, lead_id, types, timestamp, message_id):
        return True             # the usual case, messages in time order: nothing decoded
    if kind == "identify":
        return False
    key = (timestamp, message_id)
    return not any((t, m) > key and account_named(logged_kind, message)
                   for t, m, logged_kind, message in lead_store.own_messages(
                       connection, lead_id, types, since=timestamp))


def recompute(connection: Connection, lead_id: str, now: int) -> bool:
    """Set the lead's traits and account link from its messages; return whether its account
    changed."""
    lead_store.replace_traits(connection, lead_id, lead_traits(connection, lead_id), now)
    return lead_store.link_account(connection, lead_id, lead_account(connection, lead_id), now)
