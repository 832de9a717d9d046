"""A lead's write worked out before the write lock (optimistic scoring, `ingest.optimistic`),
and the checks under the lock that decide whether it is written as it is.

A plan holds what the call's events of one existing lead make of it — the log rows, the
states' JSON text, the scores rows — computed from the lead row and saved states read in a
read transaction. Under the lock it stands only where the store holds *exactly* what was
read (the lead row and every state's version, latest and text), its messageIds are still
unseen, its identities still name that lead, and no other message of the transaction touches
the lead: then today's path, folding the same events into the same state at the same time,
would write the same rows. Otherwise the lead takes today's path in the same transaction.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leadscore.engine.incremental.lead_state import ModelState
from leadscore.scores import Score
from leadscore.store.leads import ANONYMOUS, EVENT_TYPES, USER, LeadRow

if TYPE_CHECKING:
    from leadscore.ingest.validate import Message

Key = tuple[str, str]
# A model's state as read before the lock: version, latest event time, JSON text.
Read = tuple[int, int | None, str]


@dataclass(frozen=True)
class Written:
    """A lead's row under one model, as the flush writes it."""

    model: str
    version: int
    latest: int | None
    text: str
    score: Score | None         # None: the model does not apply to the lead
    state: ModelState | None    # the live state (None: the lead has none under the model)


@dataclass
class LeadPlan:
    lead_id: str
    now: int                    # the call's time: its rows are saved as of it
    row: LeadRow                # the lead as read
    read: dict[str, Read]       # model → its saved state as read
    log: dict[str, dict[str, Any]]      # messageId → its log row, in the call's order
    written: list[Written]
    used: int = 0               # transactions that wrote it as planned (tests, benchmarks)
    spent: bool = False         # its states were changed further (`Session.load`)

    def holds(self, row: LeadRow, saved: Mapping[str, Any]) -> bool:
        """Whether the store holds now what the plan was computed from (`saved`: the lead's
        `SavedState`s, read as text)."""
        return row == self.row and {
            name: (r.model_version, r.latest, r.state) for name, r in saved.items()
        } == self.read


@dataclass
class Plans:
    """One call's plans (lead id → plan), under the model versions they were computed with;
    `outlook`: where the transaction reports how many stood."""

    versions: dict[str, int]
    leads: dict[str, LeadPlan]
    outlook: Outlook | None = None


# How often plans stood lately, each call's share weighing this much less at the next call's.
DECAY = 0.95
# Below this share of plans standing, a call is planned only now and then (a probe): a plan
# that does not stand is work done twice, where many writers touch the same few leads.
WORTH = 0.5
PROBE = 8
SEEN_ENOUGH = 5.0       # calls' worth of reports before the share is trusted


class Outlook:
    """Whether planning pays lately: the share of plans that stood under the lock, decaying.
    Thread-safe; one per `Service`."""

    def __init__(self) -> None:
        self.planned = self.stood = self.reports = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def worth(self) -> bool:
        """Whether to plan the next call."""
        with self._lock:
            self.calls += 1
            return (self.reports < SEEN_ENOUGH or self.stood >= WORTH * self.planned
                    or self.calls % PROBE == 0)

    def report(self, planned: int, stood: int) -> None:
        with self._lock:
            self.planned = self.planned * DECAY + planned
            self.stood = self.stood * DECAY + stood
            self.reports = self.reports * DECAY + 1


def key_of(message: Message) -> Key:
    return (USER, message.user_id) if message.user_id is not None else (
        ANONYMOUS, str(message.anonymous_id))


def plain(message: Message) -> bool:
    """An event of a lead's own identity: it links, merges, renames nothing."""
    return message.type in EVENT_TYPES and message.event is not None


def vet(offered: dict[str, LeadPlan], messages: Sequence[Message],
        found: Mapping[Key, str], seen: set[str]) -> tuple[dict[str, LeadPlan], set[str]]:
    """The plans that may stand in a transaction writing `messages` in this order (`found`:
    their identities' leads under the lock; `seen`: the messageIds stored), and those of
    them whose lead later messages of the transaction touch (they are the starting point
    of that lead's ordinary path). None where a message may link or merge leads; none for a
    lead whose identity names another lead now, whose messageId is stored or repeated, or
    that a message before the plan's touches."""
    if not offered or not all(plain(m) for m in messages):
        return {}, set()
    counts = Counter(m.message_id for m in messages)
    dropped = {lead for lead, plan in offered.items() if any(
        counts[mid] > 1 or mid in seen for mid in plan.log)}
    owner = {mid: lead for lead, plan in offered.items() if lead not in dropped
             for mid in plan.log}
    left = {lead: len(plan.log) for lead, plan in offered.items()}
    followed: set[str] = set()
    for m in messages:
        lead, planned = found.get(key_of(m)), owner.get(m.message_id)
        if planned is not None:
            left[planned] -= 1
            if lead != planned:
                dropped.add(planned)
        elif lead in left:
            (followed if left[lead] == 0 else dropped).add(lead)
    kept = {lead: plan for lead, plan in offered.items() if lead not in dropped}
    return kept, followed & set(kept)
