"""Tables of segments and programs: memberships with their history, enrolments, the journey
log (one row per step executed, keyed for at-most-once effects) and the actions programs take
outside the store (e-mails, webhooks, events to ingest), delivered later like the outbox.
Same conventions as `store.schema` (µs times, JSON columns); created by migration step 2.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)

from leadscore.store.schema import Micros, Serial, metadata

segment_members = Table(
    "segment_members", metadata,
    Column("segment", Text, primary_key=True),
    Column("lead_id", Text, primary_key=True),
    Column("entered_at", Micros, nullable=False),
    Index("ix_segment_members_lead", "lead_id"),
)

segment_history = Table(
    "segment_history", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("segment", Text, nullable=False),
    Column("lead_id", Text, nullable=False),
    Column("entered_at", Micros, nullable=False),
    Column("left_at", Micros),
    Index("ix_segment_history_lead", "segment", "lead_id"),
)

segment_sizes = Table(
    "segment_sizes", metadata,
    Column("segment", Text, primary_key=True),
    Column("at", Micros, primary_key=True),
    Column("size", Integer, nullable=False),
)

# When time alone may change a lead's memberships (a within_days window closing).
segment_recheck = Table(
    "segment_recheck", metadata,
    Column("lead_id", Text, primary_key=True),
    Column("at", Micros, nullable=False, index=True),
)

lifecycle_cursor = Table(
    "lifecycle_cursor", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

enrolments = Table(
    "enrolments", metadata,
    Column("id", Text, primary_key=True),                 # program|lead|n
    Column("program", Text, nullable=False),
    Column("lead_id", Text, nullable=False),
    Column("number", Integer, nullable=False),            # 1 for the first entry, then 2 …
    Column("status", String(16), nullable=False),         # active | done | exited
    Column("step", Integer, nullable=False),              # index of the next step
    Column("executed", Integer, nullable=False),          # steps executed (idempotency keys)
    Column("due_at", Micros),                             # None when finished
    Column("state", JSON, nullable=False),                # step times, wait in progress
    Column("entered_at", Micros, nullable=False),
    Column("updated_at", Micros, nullable=False),
    Column("exit_reason", Text),
    Index("ix_enrolments_due", "status", "due_at"),
    Index("ix_enrolments_lead", "lead_id", "program"),
)

journeys = Table(
    "program_journeys", metadata,
    Column("key", Text, primary_key=True),                # enrolment id + step number
    Column("enrolment_id", Text, nullable=False, index=True),
    Column("program", Text, nullable=False),
    Column("lead_id", Text, nullable=False, index=True),
    Column("step", Text, nullable=False),
    Column("action", String(32), nullable=False),
    Column("at", Micros, nullable=False),
    Column("detail", Text),
)

actions = Table(
    "program_actions", metadata,
    Column("id", Text, primary_key=True),                 # the journey key: at most once
    Column("kind", String(16), nullable=False),           # email | webhook | ingest
    Column("lead_id", Text, nullable=False, index=True),
    Column("program", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),   # pending|sending|sent|failed|unknown|dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Micros),
    Column("last_error", Text),
    Column("created_at", Micros, nullable=False),
    Column("done_at", Micros),
    Index("ix_program_actions_due", "status", "next_attempt_at"),
)

unsubscribes = Table(
    "unsubscribes", metadata,
    Column("lead_id", Text, primary_key=True),
    Column("at", Micros, nullable=False),
    Column("source", Text),
)

email_sends = Table(        # every e-mail handed to a program action, for the weekly limit
    "email_sends", metadata,
    Column("id", Text, primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("at", Micros, nullable=False),
    Column("content_id", Text),
    Column("topic", Text),
    # `addresses.address_hash` of the recipient: the weekly limit and send rate hold per
    # address, whichever lead id it arrives under (added at schema version 7).
    Column("address_hash", String(64)),
    Index("ix_email_sends_lead", "lead_id", "at"),
    Index("ix_email_sends_address", "address_hash", "at"),
)

LIFECYCLE_TABLES = (segment_members, segment_history, segment_sizes, segment_recheck,
                    lifecycle_cursor, enrolments, journeys, actions, unsubscribes, email_sends)


def follow_merge(connection: Connection, source: str, target: str, now: int) -> None:
    """What programs and segments know of lead `source` goes with it into `target` (alias):
    an unsubscribe holds for the merged person, e-mails sent count towards its weekly limit,
    and its active enrolments go on as the target's — or exit as `merged` where the target is
    already in that program, so one person never gets a program's e-mails twice. Its segment
    memberships end; the target's are its own."""
    if connection.execute(select(unsubscribes.c.lead_id).where(
            unsubscribes.c.lead_id == source)).first() is not None:
        if connection.execute(select(unsubscribes.c.lead_id).where(
                unsubscribes.c.lead_id == target)).first() is None:
            connection.execute(update(unsubscribes).where(
                unsubscribes.c.lead_id == source).values(lead_id=target))
        else:
            connection.execute(delete(unsubscribes).where(unsubscribes.c.lead_id == source))
    connection.execute(update(email_sends).where(email_sends.c.lead_id == source).values(
        lead_id=target))
    taken = set(connection.execute(select(enrolments.c.program).where(
        enrolments.c.lead_id == target, enrolments.c.status == "active")).scalars())
    for enrolment_id, program in connection.execute(select(
            enrolments.c.id, enrolments.c.program).where(
            enrolments.c.lead_id == source, enrolments.c.status == "active")).all():
        if program in taken:
            connection.execute(update(enrolments).where(enrolments.c.id == enrolment_id).values(
                status="exited", exit_reason="merged", due_at=None, updated_at=now))
        else:
            connection.execute(update(enrolments).where(enrolments.c.id == enrolment_id).values(
                lead_id=target, updated_at=now))
    connection.execute(update(segment_history).where(
        segment_history.c.lead_id == source, segment_history.c.left_at.is_(None)).values(
        left_at=now))
    connection.execute(delete(segment_members).where(segment_members.c.lead_id == source))
    connection.execute(delete(segment_recheck).where(segment_recheck.c.lead_id == source))
