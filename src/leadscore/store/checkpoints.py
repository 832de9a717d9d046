"""SQLite WAL checkpoints in a background thread instead of inside a request's commit.

By default SQLite checkpoints automatically: the commit that finds the WAL over 1,000 pages
copies the WAL back into the database file (and fsyncs it) before it returns — so one
request in every few hundred pays for everyone's writes, and after a burst, while readers
held the WAL, for a WAL of many megabytes at once (measured: a passive checkpoint of 3.4 MB
took 23–43 ms in-process under load). `Checkpointer` turns the automatic checkpoint off on the
store's connections and runs a PASSIVE checkpoint every `seconds` on its own connection: it
never takes the write lock, so writers go on meanwhile. Durability is unchanged (a commit is
in the WAL, fsynced or not as `synchronous` says, whether or not it is checkpointed yet).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

CHECKPOINT_SECONDS = 0.5
log = logging.getLogger("leadscore.store")


class Checkpointer:
    """PASSIVE WAL checkpoints of one SQLite file every `seconds`, in a thread."""

    def __init__(self, path: str, seconds: float = CHECKPOINT_SECONDS):
        self.path, self.seconds = path, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.backfilled = 0     # WAL frames copied into the database file, in all

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed)."""
        connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        self.runs += 1
        self.backfilled += max(done, 0)
        return busy, frames, done

    def run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.checkpoint()
            except sqlite3.Error:   # the file away for a moment: the next round retries
                log.exception("WAL checkpoint failed")

    def start(self) -> Checkpointer:
        self._thread = threading.Thread(target=self.run, name="wal-checkpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
