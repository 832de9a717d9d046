"""A lead scored afresh from its events in the log, as a value: read in one transaction (a
merge's replay reads a read snapshot, outside the store's write lock) and adopted by a
`Session` in another (`Session.adopt`), which folds in what the log received meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from leadscore.engine.incremental import Scorer
from leadscore.model.schema import Model
from leadscore.scores import Handoff
from leadscore.store import leads as lead_store


@dataclass
class Replayed:
    """A lead's events folded into a fresh scorer; what was read, to tell what changed."""

    lead_id: str
    scorer: Scorer
    latest: int | None                       # its latest event's time
    crossings: dict[str, Handoff]            # the latest MQL crossing per model
    identities: frozenset[tuple[str, str]]   # its identities when read
    position: int                            # the log's last seq read (events up to it)
    events: int                              # how many of its events were folded in

    def fold(self, connection: Connection) -> bool:
        """Fold in the lead's events logged after `position`; False where the log holds
        events of it that were neither read then nor now (on PostgreSQL a transaction may
        commit below `position` later): the replay must be done again."""
        newer = lead_store.events_of_many(connection, [self.lead_id],
                                          after_seq=self.position)[self.lead_id]
        if lead_store.count_events(connection, self.lead_id) != self.events + len(newer):
            return False
        self.crossings.update({h.model: h for h in self.scorer.update_many(newer)})
        if newer:
            latest = max(e.timestamp for e in newer)
            self.latest = latest if self.latest is None else max(self.latest, latest)
        self.events += len(newer)
        self.position = lead_store.log_position(connection)
        return True


def replay(connection: Connection, models: Sequence[Model], lead_id: str, *,
           lock: bool = False) -> Replayed | None:
    """The lead scored from all its events in the log (None where there is no such lead);
    `lock` holds its row until commit (PostgreSQL)."""
    row = lead_store.load(connection, lead_id, lock=lock)
    if row is None:
        return None
    position = lead_store.log_position(connection)
    identities = frozenset(lead_store.owned_identities(connection, [lead_id]))
    scorer = Scorer(list(models))
    scorer.load_state({"lead_id": lead_id, "traits": row.traits, "account": row.account,
                       "latest": None, "models": {}})
    events = lead_store.events_of_many(connection, [lead_id], upto_seq=position)[lead_id]
    crossings = {h.model: h for h in scorer.update_many(events)}
    latest = max((e.timestamp for e in events), default=None)
    return Replayed(lead_id, scorer, latest, crossings, identities, position, len(events))
