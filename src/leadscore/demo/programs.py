"""The demo world's lifecycle: segments, a welcome program (art shop) and a B2B account play
(software), with their templates and content catalogue, shipped in `demo/lifecycle/`.

`install` copies them beside the demo's `models/` (where `leadscore serve` looks for them);
`run` keeps the segments and runs one round of the programs over the imported history, so a
newcomer opening the dashboard sees e-mails in the outbox, journeys, and leads leaving the
programs as MQLs. `leadscore demo --serve` then goes on running them live."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from leadscore.programs.scheduler import CURSOR
from leadscore.service import Service
from leadscore.store.lifecycle import actions, enrolments, lifecycle_cursor
from leadscore.store.schema import events

LIFECYCLE_DIR = Path(__file__).parent / "lifecycle"
PARTS = ("segments", "programs", "templates")


def install(folder: Path) -> Path:
    """Copy the demo's segments, programs, templates and content.yaml into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        target = folder / part
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(LIFECYCLE_DIR / part, target)
    shutil.copyfile(LIFECYCLE_DIR / "content.yaml", folder / "content.yaml")
    return folder


def run(service: Service, settings: Any, folder: Path) -> dict[str, Any]:
    """Segment memberships, enrolments and the due steps, once; a summary of what happened."""
    from leadscore.programs.live import open_lifecycle

    life = open_lifecycle(service, settings, folder=folder)
    life.keeper.refresh()
    while True:     # the whole imported log, a batch of events at a time
        with service.db.read() as connection:
            position = connection.execute(select(lifecycle_cursor.c.position).where(
                lifecycle_cursor.c.name == CURSOR)).scalar() or 0
            last = connection.execute(select(func.max(events.c.seq))).scalar() or 0
        if position >= last:
            break
        life.scheduler.enrol_from_log()
    steps = life.scheduler.tick()
    with service.db.read() as connection:
        emails = connection.execute(select(func.count()).select_from(actions).where(
            actions.c.kind == "email")).scalar() or 0
        by_program = {str(program): int(n) for program, n in connection.execute(select(
            enrolments.c.program, func.count()).group_by(enrolments.c.program))}
        mql = connection.execute(select(func.count()).select_from(enrolments).where(
            enrolments.c.exit_reason == "mql")).scalar() or 0
    return {"steps": steps, "emails": int(emails), "enrolled": by_program,
            "exited_mql": int(mql)}
