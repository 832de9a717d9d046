"""Group commit, the store's single-writer queue: the writes of concurrent calls share one
transaction, so its fixed cost is paid once for all of them.

A call queues its items (`GroupCommit.write`); a caller that finds fewer than `writers`
transactions of this process under way writes every call queued (up to `GROUP_ITEMS` items)
in one transaction, while later callers wait for theirs. On SQLite each transaction holds the
database's only write lock, and its commit (an fsync with `synchronous=full`) and fixed
statements cost the same for 100 messages as for 1,000: shared by the calls waiting anyway,
they are paid once. A group that fails is written again call by call, so one call's failure is
never another's.

A call that has to wait for a writer spends the wait on `prepare`: reading and working out its
write outside the write lock (`ingest.optimistic`), left on its `Pending` for `apply` to use
where it still holds (`apply` checks, under the lock, that the store did not change under it).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection

from leadscore.store.database import Database

log = logging.getLogger("leadscore.store")
T = TypeVar("T")
R = TypeVar("R")

# At most this many items (messages) of concurrent calls share one transaction, and this many
# such transactions of one process run at once: SQLite has one writer at a time anyway, while
# PostgreSQL works on several (each waits for its round trips and its commit).
GROUP_ITEMS = 1000
GROUP_WRITERS = {"sqlite": 1, "postgresql": 4}


@dataclass
class Pending(Generic[T, R]):
    """The items of one call waiting for their transaction (`now`: the call's time, µs), then
    what became of them (or the error that stopped them)."""

    items: list[T]
    now: int
    result: R | None = None
    error: BaseException | None = None
    # What `prepare` worked out, once it is done (`apply` reads it once: a prepare finished
    # after its transaction began is not used).
    prepared: object | None = None


Apply = Callable[[Connection, list[Pending[T, R]]], Sequence[R]]
Prepare = Callable[[Pending[T, R]], None]
# At most this many calls of one process prepare at once (each holds a connection of the
# pool); a call finding them all busy is queued unprepared.
PREPARING = 2


class GroupCommit(Generic[T, R]):
    """Calls' items written by `apply(connection, group)`, a group of calls per transaction;
    `apply` returns one result (never None) per call and must be safe to repeat.
    `prepare(pending)`, where given, runs in the thread of a call that has to wait for a
    writer (its items queued), outside any write transaction (on SQLite, beside the
    writer): work that makes `apply` shorter but that `apply` must not rely on (it checks
    what `prepare` read; what it worked out goes in `pending.prepared`); its failure is
    logged and the items written all the same."""

    def __init__(self, db: Database, apply: Apply[T, R],
                 prepare: Prepare[T, R] | None = None):
        self.db, self.apply, self.prepare = db, apply, prepare
        self.writers = GROUP_WRITERS[db.dialect]
        self.queue: deque[Pending[T, R]] = deque()
        self._preparing = threading.BoundedSemaphore(PREPARING)
        self._queued = threading.Condition()
        self._writing = 0

    def write(self, items: list[T], now: int) -> R:
        """Queue the items and return their result once the transaction holding them is
        committed (or raise what stopped it)."""
        pending: Pending[T, R] = Pending(items, now)
        with self._queued:
            self.queue.append(pending)      # calls queue in the order they came
            waiting = self._writing >= self.writers
        if waiting:
            self._prepare(pending)
        with self._queued:
            while pending.result is None and pending.error is None:
                if self._writing >= self.writers or not self.queue:
                    self._queued.wait()
                    continue
                self._writing += 1
                group: list[Pending[T, R]] = []
                size = 0
                while self.queue and (not group or size + len(self.queue[0].items)
                                      <= GROUP_ITEMS):
                    group.append(self.queue.popleft())
                    size += len(group[-1].items)
                self._queued.release()
                try:
                    self._write_group(group)
                finally:
                    self._queued.acquire()
                    self._writing -= 1
                    self._queued.notify_all()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _prepare(self, pending: Pending[T, R]) -> None:
        """`prepare` the items of a call that waits for a writer anyway (while it works,
        this call's items may be taken into a transaction: `apply` does not rely on it)."""
        if self.prepare is None or not self._preparing.acquire(blocking=False):
            return
        try:
            self.prepare(pending)
        except Exception:
            log.warning("preparing a write failed; it is written without", exc_info=True)
        finally:
            self._preparing.release()

    def _write_group(self, group: list[Pending[T, R]]) -> None:
        try:
            written = self.db.write(lambda connection: self.apply(connection, group))
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for i, pending in enumerate(group):   # each alone: the failure is the culprit's
                try:
                    self._write_group([pending])
                except BaseException as stop:      # an interrupt: the rest must not wait on
                    for rest in group[i + 1:]:
                        rest.error = stop
                    raise
            return
        except BaseException as exc:
            for pending in group:
                pending.error = exc
            raise
        for pending, result in zip(group, written, strict=True):
            pending.result = result
