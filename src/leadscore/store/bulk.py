"""Writers of the bulk import path (`ingest.bulk`): leads' traits and account links, accounts'
traits and identities, many rows per statement (an executemany through the driver, see
`store.driver`), where the message path writes them one message at a time.

The log itself (`leads.append`), leads created (`leads.ensure_many`) and states and scores
(`scores.Saving`) are written in bulk by the modules that own them already.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.store import driver
from leadscore.store.database import Database
from leadscore.store.leads import not_null
from leadscore.store.schema import accounts, identities


def set_traits(connection: Connection, traits: Mapping[str, Mapping[str, Any]], now: int
               ) -> None:
    """Many leads' traits are these (merged by the caller), one statement."""
    mark = driver.mark(connection)
    driver.execute_many(
        connection, f"UPDATE leads SET traits = {mark}, updated_at = {mark} WHERE id = {mark}",
        [(driver.dumps(dict(t)), now, lead_id) for lead_id, t in sorted(traits.items())])


def link_accounts(connection: Connection, links: Mapping[str, str], now: int) -> None:
    """Many leads linked to their accounts, one statement."""
    mark = driver.mark(connection)
    driver.execute_many(
        connection, f"UPDATE leads SET account_id = {mark}, updated_at = {mark} "
                    f"WHERE id = {mark}",
        [(account_id, now, lead_id) for lead_id, account_id in sorted(links.items())])


def link_identities(db: Database, connection: Connection,
                    links: Sequence[tuple[str, str, str]], now: int) -> None:
    """Identities (kind, id, lead) added to their leads; one already linked keeps its lead
    (the first of several links of one identity wins, as `leads.link` one by one)."""
    if links:
        connection.execute(db.insert(identities).on_conflict_do_nothing(), [
            {"kind": kind, "id": i, "lead_id": lead_id, "created_at": now}
            for kind, i, lead_id in links])


def merge_account_traits(db: Database, connection: Connection,
                         traits: Mapping[str, Mapping[str, Any]], now: int) -> set[str]:
    """Accounts created where new and `traits` merged into theirs (nulls skipped), as
    `leads.set_account_traits` for each; return the accounts whose traits changed."""
    if not traits:
        return set()
    where, params = driver.matching(connection, "id", list(traits))
    current = {i: driver.loads(t) or {} for i, t in driver.select_rows(
        connection, f"SELECT id, traits FROM accounts WHERE {where}", params)}
    created, updated, changed = [], [], set()
    for account_id, given in sorted(traits.items()):
        said = not_null(given)
        if account_id not in current:
            created.append({"id": account_id, "traits": said, "created_at": now,
                            "updated_at": now})
            if said:
                changed.add(account_id)
            continue
        merged = {**current[account_id], **said}
        if merged != current[account_id]:
            updated.append((driver.dumps(merged), now, account_id))
            changed.add(account_id)
    if created:
        connection.execute(db.insert(accounts).on_conflict_do_nothing(), created)
    mark = driver.mark(connection)
    driver.execute_many(connection, f"UPDATE accounts SET traits = {mark}, updated_at = {mark} "
                                    f"WHERE id = {mark}", updated)
    return changed


def account_leads(connection: Connection, account_ids: Iterable[str]) -> dict[str, str]:
    """The leads (not merged away) linked to these accounts: lead → account, one statement."""
    wanted = set(account_ids)
    if not wanted:
        return {}
    where, params = driver.matching(connection, "account_id", wanted)
    return dict(driver.select_rows(
        connection, f"SELECT id, account_id FROM leads WHERE {where} AND merged_into IS NULL",
        params))
