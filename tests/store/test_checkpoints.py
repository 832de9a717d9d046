"""WAL checkpoints in the background (`Database.checkpoint_in_background`, what `serve` runs):
the store's connections no longer checkpoint in their commits, the thread copies the WAL back
into the database file, and every committed row is there, also after reopening."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from leadscore.store.database import Database
from leadscore.store.migrate import migrate
from leadscore.store.schema import identities

ROWS = 3000


def autocheckpoint(db: Database) -> int:
    with db.read() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 0)


def write_rows(db: Database) -> None:
    for start in range(0, ROWS, 300):
        db.write(lambda c, start=start: c.execute(identities.insert(), [
            {"kind": "user", "id": f"u{i}", "lead_id": f"u{i}", "created_at": i}
            for i in range(start, start + 300)]))


def test_background_checkpoints_copy_the_wal_back_and_keep_every_row(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = Database(path)
    migrate(db)
    assert autocheckpoint(db) == 1000           # SQLite's default without the thread
    db.checkpoint_in_background(seconds=0.01)
    assert autocheckpoint(db) == 0
    write_rows(db)
    checkpointer = db._checkpointer
    assert checkpointer is not None
    for _ in range(500):                          # bounded: until a round copied frames
        if checkpointer.backfilled > 0:
            break
        time.sleep(0.02)
    assert checkpointer.backfilled > 0
    db.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM identities").fetchone() == (ROWS,)


def test_no_background_checkpoints_for_postgresql_or_memory() -> None:
    for url in ("sqlite://", "postgresql://nobody@127.0.0.1:1/none"):
        db = Database(url)
        db.checkpoint_in_background()
        assert db._checkpointer is None
        db.close()
