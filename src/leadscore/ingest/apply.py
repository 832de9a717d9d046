"""One valid message applied to the store: appended to the log, its ids resolved to a lead,
and the lead re-scored (see `Session`; `Session.prefetch` has read, for the whole batch, what
this reads message by message)."""

from __future__ import annotations

from leadscore.ingest.session import Session
from leadscore.ingest.validate import Message
from leadscore.store import leads as lead_store
from leadscore.store.leads import ANONYMOUS, USER

DUPLICATE = None


def apply(session: Session, message: Message) -> str | None:
    """Store and score one message; return its lead's id, or None for a duplicate."""
    if session.seen(message.message_id):
        return DUPLICATE
    connection, now = session.connection, session.now
    lead_id: str | None = None
    if message.event is not None:
        # Load the lead before its event is in the log: a lead scored afresh from the log
        # (new, or its state stale) must not see this event and then get it again.
        lead_id = _lead_of(session, message)
        session.scorer(lead_id)
    session.append(log_row(message, now))
    if message.type == "alias":
        return _alias(session, message)
    if lead_id is None:
        lead_id = _lead_of(session, message)
    if message.type == "identify":
        if message.user_id is not None and message.anonymous_id is not None:
            _link_anonymous(session, message.anonymous_id, lead_id)
        if message.traits:
            lead_store.set_traits(connection, lead_id, message.traits, now)
        if message.group_id is not None:        # traits.company: the lead's account
            _join(session, lead_id, message.group_id, message.group_traits)
        session.profile_changed(lead_id)
    elif message.type == "group":
        assert message.group_id is not None
        _join(session, lead_id, message.group_id, message.group_traits)
        session.touch(lead_id)
    else:
        assert message.event is not None
        session.event(lead_id, message.event)
    return lead_id


def log_row(message: Message, received_at: int) -> dict[str, object]:
    """The message as a row of the log (the store's JSON serializer writes datetimes and the
    like as text; `validate` encoded it already)."""
    event = message.event
    return {"message_id": message.message_id, "type": message.type,
            "user_id": message.user_id, "anonymous_id": message.anonymous_id,
            "event": event.event if event else None, "path": event.path if event else None,
            "timestamp": message.timestamp, "received_at": received_at,
            "message": message.encoded if message.encoded is not None else message.raw}


def _join(session: Session, lead_id: str, account_id: str, traits: dict[str, object]) -> None:
    """The lead joins an account whose traits merge `traits` (a group call); the leads whose
    profile changed are re-scored."""
    moved, changed = lead_store.set_account(session.db, session.connection, lead_id,
                                            account_id, traits, session.now)
    if changed:
        session.accounts.changed.add(account_id)      # its fit, maybe its domain's leads
        for member in lead_store.account_leads(session.connection, account_id):
            session.profile_changed(member)
    elif moved:
        session.profile_changed(lead_id)


def _lead_of(session: Session, message: Message) -> str:
    if message.user_id is not None:
        return session.ensure(USER, message.user_id)
    assert message.anonymous_id is not None
    return session.ensure(ANONYMOUS, message.anonymous_id)


def _link_anonymous(session: Session, anonymous_id: str, lead_id: str) -> None:
    """identify with both ids: the anonymous lead (and its history) joins the user's lead.
    An anonymousId already linked to another known user stays with that user."""
    connection = session.connection
    other = lead_store.find(connection, ANONYMOUS, anonymous_id)
    if other is None:
        lead_store.link(session.db, connection, ANONYMOUS, anonymous_id, lead_id, session.now)
    elif other != lead_id and not lead_store.is_known(connection, other):
        session.merge(other, lead_id)


def _alias(session: Session, message: Message) -> str:
    """alias: `previousId` (an anonymousId or a former userId) is now `userId`; two leads
    become one, scored from all their events."""
    db, connection, now = session.db, session.connection, session.now
    assert message.user_id is not None and message.previous_id is not None
    target = session.ensure(USER, message.user_id)
    previous = message.previous_id
    source = lead_store.find(connection, USER, previous) or lead_store.find(
        connection, ANONYMOUS, previous)
    if source is None:
        lead_store.link(db, connection, USER, previous, target, now)
        lead_store.link(db, connection, ANONYMOUS, previous, target, now)
        session.touch(target)
    elif source != target:
        session.merge(source, target)
    else:
        session.touch(target)
    return target
