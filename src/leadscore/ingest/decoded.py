"""Engine states kept decoded between transactions, each with the JSON text it was saved as
or read from, so the next transaction touching the lead skips decoding it.

Rebuilding a lead's `ModelState` from its stored JSON (`json.loads` + `from_dict`) was ~40 %
of the work under the write lock. A state is taken from here only where the text the store
holds *now* (read under the write lock) equals the text it was kept with: then it is that
very state, whoever wrote it; where another worker, process or path wrote the lead since,
the texts differ and the state is decoded from the store as before. An entry is taken out
when used (the session then mutates it), and put back after a flush with the text just
written: a transaction that then fails to commit leaves an entry whose text the store does
not hold, never used.

Two ways in: `keep` after a save (this process wrote it last — a plan's states too, where
the transaction wrote them as planned), and `decode` outside the write lock
(`ingest.transaction.prepare_messages`: the states a call will load, read and decoded before
its transaction, checked under the lock by the same text comparison). Optimistic scoring
(`ingest.optimistic`) `take`s the states it folds outside the lock: they are the plan's
then, and a lead whose plan does not stand is decoded from the store under the lock.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable

from leadscore.engine.incremental.lead_state import ModelState
from leadscore.errors import EngineError
from leadscore.model.compiled import CompiledModel

# Leads × models held per process: the leads being written to now, not a copy of the store
# (a 20-event state and its text are ~2.4 KB: ~24 MB at most).
CAPACITY = 10_000


class DecodedStates:
    """(lead, model) → (model version, saved JSON text, the `ModelState` it decodes to); at
    most `capacity` entries, the least recently kept dropped first. Thread-safe."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], tuple[int, str, ModelState]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, lead_id: str, model: str, version: int, text: str) -> ModelState | None:
        """The state kept for the lead under the model, where it was kept with exactly this
        version and text (it is removed: the caller owns it now); else None."""
        with self._lock:
            found = self._entries.get((lead_id, model))
            if found is None or found[0] != version or found[1] != text:
                self.misses += 1
                return None
            del self._entries[(lead_id, model)]
            self.hits += 1
            return found[2]

    def keep(self, lead_id: str, model: str, version: int, text: str, state: ModelState
             ) -> None:
        """Keep `state`, saved as `text` under the model's `version` (the caller must not
        change it afterwards)."""
        with self._lock:
            self._entries[(lead_id, model)] = (version, text, state)
            self._entries.move_to_end((lead_id, model))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def holds(self, lead_id: str, model: str, version: int, text: str) -> bool:
        with self._lock:
            found = self._entries.get((lead_id, model))
            return found is not None and found[0] == version and found[1] == text

    def decode(self, saved: Iterable[tuple[str, str, int, str]],
               models: dict[str, tuple[int, CompiledModel]]) -> int:
        """Decode and keep the saved states (lead, model, version, text) not kept yet, where
        `models` (name → active version and compiled model) has that version; a state that
        does not fit its model is left to the session (it replays the lead). Returns how
        many were decoded."""
        decoded = 0
        for lead_id, name, version, text in saved:
            active = models.get(name)
            if active is None or active[0] != version or self.holds(lead_id, name, version,
                                                                    text):
                continue
            try:
                state = ModelState.from_dict(active[1], json.loads(text))
            except (EngineError, KeyError, TypeError, ValueError):
                continue
            self.keep(lead_id, name, version, text, state)
            decoded += 1
        return decoded
