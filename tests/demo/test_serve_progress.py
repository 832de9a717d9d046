"""`leadscore demo --serve` shows where it is while the world loads: the world made, the models
installed, leads, events, then the segments and programs, each to its end."""

from __future__ import annotations

from pathlib import Path

from leadscore.demo.serve import build_store


def test_loading_the_demo_world_reports_every_step_to_its_end(tmp_path: Path) -> None:
    seen: dict[str, list[tuple[int, int | None]]] = {}

    def progress(kind: str, done: int, total: int | None) -> None:
        seen.setdefault(kind, []).append((done, total))

    store = build_store(tmp_path / "world", leads=40, progress=progress)
    assert list(seen) == ["world", "models", "leads", "events", "segments and programs"]
    assert seen["world"] == seen["models"] == [(0, 1), (1, 1)]
    assert seen["events"][-1] == (store.events, store.events) and store.events > 0
    assert seen["leads"][-1][0] == seen["leads"][-1][1]
    assert seen["segments and programs"] == [(0, None), (1, 1)]
