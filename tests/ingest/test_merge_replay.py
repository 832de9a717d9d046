"""A merge replays the merged lead's whole history outside the store's write lock (#16):
other clients' messages are not held behind it, and messages for the merged lead that arrive
meanwhile are folded in, so the lead's score equals a rescore from the log afterwards.

SQLite only: there every write transaction holds the database's single write lock, which is
what a replay inside it held (PostgreSQL locks rows; another lead's write never waited)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from leadscore import load_model
from leadscore.service import Service
from tests.test_service import MODEL, NOW, track

HISTORY = 20000   # a merge long enough to tell (faster since decoded states are kept)


def test_other_writes_are_not_held_behind_a_big_merge(tmp_path: Path) -> None:
    model = load_model("web.yaml", text=MODEL)
    with Service.open(f"sqlite:///{tmp_path / 'store.db'}", models=[model],
                      background=False) as service:
        for start in range(0, HISTORY, 1000):
            service.ingest([track("big", "Email Opened", (i % 3000) / 100, email_id=f"e{i}",
                                  message_id=f"big-{i}")
                            for i in range(start, start + 1000)], received_at=NOW)
        service.ingest([track("small", "Demo Requested", 2), track("other", "Demo Requested",
                                                                   2)], received_at=NOW)
        started = threading.Event()
        took: list[float] = []

        def merge() -> None:
            started.set()
            begin = time.perf_counter()
            result = service.ingest([{"type": "alias", "userId": "big", "previousId": "small",
                                      "messageId": "the-alias"}], received_at=NOW)
            took.append(time.perf_counter() - begin)
            assert result.accepted == 1

        merging = threading.Thread(target=merge)
        merging.start()
        assert started.wait(10)
        time.sleep(0.05)
        waits: list[float] = []
        n = 0
        while merging.is_alive():
            n += 1
            begin = time.perf_counter()
            service.ingest([track("other", "Email Opened", 0.5, email_id=f"o{n}"),
                            track("small", "Email Opened", 0.5, email_id=f"s{n}")],
                           received_at=NOW)
            if merging.is_alive():
                waits.append(time.perf_counter() - begin)
        merging.join()
        assert took[0] > 0.5, f"the merge took {took[0]:.2f} s: too little to tell"
        # Held behind the replay, none would complete while the merging call is under way
        # (it returns right after its transaction); here most are as quick as ever (the
        # median: the replay shares the CPU, and the GIL, with them).
        assert len(waits) >= 3, (waits, took)
        assert statistics.median(waits) < took[0] / 4, (waits, took)
        merged = service.get_lead("small", as_of=NOW)
        assert merged["lead_id"] == "big"
        assert service.rescore() == 2
        again = service.get_lead("big", as_of=NOW)
        assert merged["score"] == pytest.approx(again["score"], abs=1e-9)
        assert merged["engagement"] > 30      # the demo and every open, of both ids


def test_a_replay_that_fails_leaves_the_lead_to_be_replayed_when_next_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from leadscore.ingest import transaction

    model = load_model("web.yaml", text=MODEL)
    with Service.open(f"sqlite:///{tmp_path / 'store.db'}", models=[model],
                      background=False) as service:
        service.ingest([track("big", "Email Opened", 1, email_id="e1"),
                        track("small", "Demo Requested", 2)], received_at=NOW)

        def broken(*_: object, **__: object) -> None:
            raise OSError("the disk went away")    # a fault injected after the commit

        monkeypatch.setattr(transaction, "replay", broken)
        result = service.ingest([{"type": "alias", "userId": "big", "previousId": "small",
                                  "messageId": "the-alias"}], received_at=NOW)
        monkeypatch.undo()
        assert result.accepted == 1
        assert "replay failed" in caplog.text
        merged = service.get_lead("small", as_of=NOW)      # replayed on load: both histories
        assert merged["lead_id"] == "big"
        assert merged["engagement"] == pytest.approx(30 * 2 ** -0.2 + 2 * 2 ** -0.1)
        assert service.rescore() == 1
        assert service.get_lead("big", as_of=NOW)["score"] == pytest.approx(merged["score"])
