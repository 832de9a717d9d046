"""Who may stop (or restart) program e-mail to an address, and how.

The write key is public, so an `Unsubscribed` event from it is scored but opts no one out.
An opt-out comes from the signed unsubscribe link (`unsubscribe_by_link`), the admin API
(`suppress_address`, `resubscribe`), or an event sent with a *trusted* write key
(`trusted_write_keys`: server-side keys that never appear in a web page), which
`from_trusted_events` turns into a suppression — and `Opted In` from one into a confirmation
(double opt-in) and the lifting of an unsubscribe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select

from leadscore.addresses import address_hash, check_address
from leadscore.store import leads as lead_store
from leadscore.store.lifecycle import actions, unsubscribes
from leadscore.store.suppressions import (
    confirm,
    suppress,
    suppression,
    unsuppress,
)
from leadscore.timeutil import now_us

if TYPE_CHECKING:
    from leadscore.service import Service

UNSUBSCRIBED = "Unsubscribed"
OPTED_IN = "Opted In"
# Reasons an admin re-subscribe lifts; "forgotten" (an erased person) needs `force`.
LIFTABLE = ("unsubscribed", "admin", "event")


def email_address(connection: Connection, email_id: str) -> str | None:
    """The address a program e-mail (`program_actions` id) was made for."""
    payload = connection.execute(select(actions.c.payload).where(
        actions.c.id == email_id)).scalar()
    return check_address(payload.get("to"))[0] if isinstance(payload, Mapping) else None


def lead_address(connection: Connection, lead_id: str) -> str | None:
    found = lead_store.resolve(connection, lead_id)
    row = lead_store.load(connection, found) if found else None
    return check_address(row.traits.get("email"))[0] if row is not None else None


def unsubscribe_by_link(service: Service, lead_id: str, email_id: str,
                        now: int | None = None) -> bool:
    """The signed link's one-click unsubscribe: the address the e-mail went to is suppressed
    (and the lead, whatever its address becomes); True if it was not already."""
    when = now_us() if now is None else now
    db = service.db

    def work(connection: Connection) -> bool:
        connection.execute(db.insert(unsubscribes).values(
            lead_id=lead_id, at=when, source=f"email {email_id}").on_conflict_do_nothing())
        address = email_address(connection, email_id)
        return address is not None and suppress(db, connection, address, "unsubscribed", when,
                                                f"email {email_id}")

    return db.write(work)


def confirm_by_link(service: Service, email_id: str, now: int | None = None) -> bool:
    """The double opt-in link: the address its e-mail went to may get program e-mail (the
    `Email Opt-in Confirmed` event the API records wakes the lead's enrolments)."""
    when = now_us() if now is None else now

    def work(connection: Connection) -> bool:
        address = email_address(connection, email_id)
        if address is None:
            return False
        confirm(service.db, connection, address_hash(address), when, f"email {email_id}")
        return True

    return service.db.write(work)


def suppress_address(service: Service, address: str, reason: str = "admin",
                     source: str | None = "admin API") -> bool:
    return service.db.write(lambda c: suppress(service.db, c, address, reason, now_us(),
                                               source))


def resubscribe(service: Service, *, address: str | None = None, lead_id: str | None = None,
                force: bool = False) -> dict[str, Any]:
    """Lift an opt-out (the admin API): the address's suppression — given, or the lead's
    current `email` — and the lead's own unsubscribe. A "forgotten" address stays suppressed
    unless `force`. Returns what was lifted."""
    def work(connection: Connection) -> dict[str, Any]:
        target = address
        if target is None and lead_id is not None:
            target = lead_address(connection, lead_id)
        lifted: dict[str, Any] = {"address": None, "lead": False}
        if target is not None:
            found = suppression(connection, target)
            if found is not None and (force or found["reason"] in LIFTABLE):
                unsuppress(connection, target)
                lifted["address"] = found["reason"]
            elif found is not None:
                lifted["kept"] = found["reason"]
        if lead_id is not None:
            lead = lead_store.resolve(connection, lead_id) or lead_id
            lifted["lead"] = bool(connection.execute(delete(unsubscribes).where(
                unsubscribes.c.lead_id == lead)).rowcount)
        return lifted

    return service.db.write(work)


def address_status(connection: Connection, lead_id: str, traits: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """What programs make of a lead's address (its dashboard page and API): usable or why
    not, suppressed or not."""
    address, problem = check_address(traits.get("email"))
    status: dict[str, Any] = {"usable": address is not None, "problem": problem,
                              "suppressed": None}
    if address is not None:
        found = suppression(connection, address)
        status["suppressed"] = found["reason"] if found else None
    if status["suppressed"] is None and connection.execute(select(
            unsubscribes.c.lead_id).where(unsubscribes.c.lead_id == lead_id)).first():
        status["suppressed"] = "unsubscribed"
    return status


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def from_trusted_events(service: Service, messages: Sequence[Mapping[str, Any]]) -> int:
    """`Unsubscribed` / `Opted In` track events sent with a trusted write key (the caller
    checked it), already stored: suppress or confirm the address — the event's
    `properties.email` or `context.traits.email`, else its lead's `email` trait. Returns how
    many addresses changed."""
    wanted = [m for m in messages if m.get("type") == "track"
              and m.get("event") in (UNSUBSCRIBED, OPTED_IN)]
    if not wanted:
        return 0
    db = service.db
    when = now_us()

    def work(connection: Connection) -> int:
        changed = 0
        for message in wanted:
            props = _mapping(message.get("properties"))
            traits = _mapping(_mapping(message.get("context")).get("traits"))
            address = check_address(props.get("email") or traits.get("email"))[0]
            who = message.get("userId") or message.get("anonymousId")
            if address is None and isinstance(who, str):
                address = lead_address(connection, who)
            if address is None:
                continue
            if message["event"] == UNSUBSCRIBED:
                changed += suppress(db, connection, address, "event", when, "trusted key")
            else:
                found = suppression(connection, address)
                if found is not None and found["reason"] in LIFTABLE:
                    unsuppress(connection, address)
                if isinstance(who, str):
                    lead = lead_store.resolve(connection, who)
                    connection.execute(delete(unsubscribes).where(
                        unsubscribes.c.lead_id == (lead or who)))
                confirm(db, connection, address_hash(address), when, "trusted key")
                changed += 1
        return changed

    return db.write(work)
