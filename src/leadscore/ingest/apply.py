"""One valid message applied to the store: appended to the log, its ids resolved to a lead,
and the lead re-scored (see `Session`; `Session.prefetch` has read, for the whole batch, what
this reads message by message)."""

from __future__ import annotations

from leadscore.ingest import profile
from leadscore.ingest.session import Session
from leadscore.ingest.validate import Message
from leadscore.store import leads as lead_store
from leadscore.store.leads import ANONYMOUS, USER

DUPLICATE = None


def apply(session: Session, message: Message) -> str | None:
    """Store and score one message; return its lead's id, or None for a duplicate."""
    if session.seen(message.message_id):
        return DUPLICATE
    now = session.now
    lead_id: str | None = None
    filtered = None
    if message.event is not None:
        # Load the lead before its event is in the log: a lead scored afresh from the log
        # (new, or its state stale) must not see this event and then get it again.
        lead_id = _lead_of(session, message)
        session.scorer(lead_id)
        # Filters (bots, internal traffic, link scanners): the verdict is kept in the log.
        filtered = session.verdict(lead_id, message.event)
    session.append(log_row(message, now, filtered))
    if message.type == "alias":
        return _alias(session, message)
    if lead_id is None:
        lead_id = _lead_of(session, message)
    if message.type == "identify":
        if message.user_id is not None and message.anonymous_id is not None:
            _link_anonymous(session, message.anonymous_id, lead_id)
        if message.traits:
            _set_traits(session, lead_id, message)
        if message.group_id is not None:        # traits.company: the lead's account
            _join(session, lead_id, message)
        session.profile_changed(lead_id)
        session.refilter(lead_id)       # one of ours now (or no more): its history follows
    elif message.type == "group":
        _join(session, lead_id, message)
        session.touch(lead_id)
    elif filtered is None:
        assert message.event is not None
        session.event(lead_id, message.event)
    return lead_id


def log_row(message: Message, received_at: int, filtered: str | None = None
            ) -> dict[str, object]:
    """The message as a row of the log (the store's JSON serializer writes datetimes and the
    like as text; `validate` encoded it already); `filtered`: the filter that keeps it out of
    scoring."""
    event = message.event
    return {"message_id": message.message_id, "type": message.type,
            "user_id": message.user_id, "anonymous_id": message.anonymous_id,
            "event": event.event if event else None, "path": event.path if event else None,
            "timestamp": message.timestamp, "received_at": received_at, "filtered": filtered,
            "message": message.encoded if message.encoded is not None else message.raw}


def _set_traits(session: Session, lead_id: str, message: Message) -> None:
    """identify: its non-null traits update the lead's; one older than the lead's latest
    identify (sent late) has the lead's traits recomputed from the log by the rule."""
    connection = session.connection
    session.log_holds(profile.IDENTIFY, message.timestamp, message.message_id)
    if profile.is_latest(connection, lead_id, message.timestamp, message.message_id,
                         "identify"):
        lead_store.set_traits(connection, lead_id, message.traits, session.now)
    else:
        session.write_log()     # every identify of the lead is read back
        lead_store.replace_traits(connection, lead_id,
                                  profile.lead_traits(connection, lead_id), session.now)


def _join(session: Session, lead_id: str, message: Message) -> None:
    """A group call (or an identify naming its company): the account's traits merge the
    message's (nulls skipped); the lead joins the account unless a later message of its
    named another. The leads whose profile changed are re-scored."""
    account_id, connection = message.group_id, session.connection
    assert account_id is not None
    changed = lead_store.set_account_traits(session.db, connection, account_id,
                                            message.group_traits, session.now)
    session.log_holds(profile.ACCOUNT_NAMING, message.timestamp, message.message_id)
    moved = profile.is_latest(connection, lead_id, message.timestamp, message.message_id,
                              "account") and lead_store.link_account(
        connection, lead_id, account_id, session.now)
    if changed:
        session.accounts.changed.add(account_id)      # its fit, maybe its domain's leads
        for member in lead_store.account_leads(session.connection, account_id):
            session.profile_changed(member)
    elif moved:
        session.profile_changed(lead_id)


def _lead_of(session: Session, message: Message) -> str:
    """The lead of the message's own identity (its userId, else its anonymousId), created
    where new. A lead's id is the smallest userId its messages were sent with: a userId
    linked before by an alias, sent now for the first time and smaller than the lead's id,
    renames the lead (a lead of that id takes over its identities and history)."""
    user = message.user_id
    if user is None:
        assert message.anonymous_id is not None
        return session.ensure(ANONYMOUS, message.anonymous_id)
    lead_id = session.ensure(USER, user)
    if user < lead_id and lead_id.partition("#")[0] != user:
        renamed = lead_store.claim(session.db, session.connection, USER, user, session.now)
        session.merge([lead_id], renamed)
        session.remember(USER, user, renamed)
        lead_id = renamed
    return lead_id


def _link_anonymous(session: Session, anonymous_id: str, lead_id: str) -> None:
    """identify with both ids: the anonymous lead (and its history) joins the user's lead.
    An anonymousId already linked to another known user stays with that user."""
    connection = session.connection
    other = lead_store.find(connection, ANONYMOUS, anonymous_id)
    if other is None:
        lead_store.link(session.db, connection, ANONYMOUS, anonymous_id, lead_id, session.now)
    elif other != lead_id and not lead_store.is_known(connection, other):
        session.merge([other], lead_id)


def _alias(session: Session, message: Message) -> str:
    """alias: `previousId` (an anonymousId or a former userId) is now `userId`: the leads of
    userId, of the userId `previousId` and of the anonymousId `previousId` become one, scored
    from all their events. The survivor is the known lead with the smallest id."""
    db, connection, now = session.db, session.connection, session.now
    assert message.user_id is not None and message.previous_id is not None
    previous = message.previous_id
    target = _lead_of(session, message)
    as_user = lead_store.find(connection, USER, previous)
    as_anonymous = lead_store.find(connection, ANONYMOUS, previous)
    found = {lead for lead in (target, as_user, as_anonymous) if lead is not None}
    known = {lead for lead in found if lead_store.is_known(connection, lead)}
    survivor = min(known)
    for kind, lead in ((USER, as_user), (ANONYMOUS, as_anonymous)):
        if lead is None:
            lead_store.link(db, connection, kind, previous, survivor, now)
    others = sorted(found - {survivor})
    if others:
        session.merge(others, survivor)
    else:
        session.touch(survivor)
    return survivor
