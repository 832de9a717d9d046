"""`leadscore demo --serve`: the demo world loaded into a SQLite store through the service's
bulk import path (`ingest.bulk`), then the service and its dashboard served on one port.

The world is moved in time so that its last day is today: the dashboard shows it as it would
look live (hot leads are hot now, not four months ago).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from leadscore.config import Settings, hash_token, new_admin_token, new_write_key
from leadscore.demo import programs
from leadscore.demo.show import MODEL_FILES, MODELS_DIR
from leadscore.demo.world import World, generate_world
from leadscore.service import Service
from leadscore.timeutil import now_us

US_PER_MINUTE = 60_000_000
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class DemoStore:
    settings: Settings
    admin_token: str
    write_key: str
    leads: int
    events: int
    lifecycle: dict[str, Any] | None = None    # the first round of the demo's programs


def shifted(world: World, now: int) -> pa.Table:
    """The world's events moved so that its `as_of` falls a minute before `now`."""
    shift = (now - US_PER_MINUTE) - world.as_of
    column = world.events.column("timestamp").cast(pa.int64())
    moved = pc.add(column, shift).cast(pa.timestamp("us", tz="UTC"))
    index = world.events.schema.get_field_index("timestamp")
    return world.events.set_column(index, "timestamp", moved)


def subset(world: World, leads: int | None) -> tuple[pa.Table, pa.Table]:
    """The first `leads` leads of the world (half of each business) and their events."""
    if leads is None:
        return world.leads, world.events
    ids = sorted(world.leads.column("lead_id").to_pylist())
    consumers = [i for i in ids if i.startswith("c-")][:leads // 2]
    business = [i for i in ids if not i.startswith("c-")][:leads - len(consumers)]
    keep = pa.array(consumers + business)
    return (world.leads.filter(pc.is_in(world.leads.column("lead_id"), keep)),
            world.events.filter(pc.is_in(world.events.column("lead_id"), keep)))


def build_store(folder: Path, seed: int = 7, *, port: int = 8000, host: str = "127.0.0.1",
                leads: int | None = None, progress: Progress | None = None) -> DemoStore:
    """Write `folder/dashboard.db` with the demo world (or its first `leads` leads) and the
    example models; return settings to serve it with a fresh admin token and write key.
    `progress(step, done, total)` is told of each step: world, models, leads, events,
    segments and programs."""

    def step(name: str, done: int, total: int | None) -> None:
        if progress is not None:
            progress(name, done, total)

    folder.mkdir(parents=True, exist_ok=True)
    models_dir = folder / "models"
    models_dir.mkdir(exist_ok=True)
    for name in MODEL_FILES:
        shutil.copyfile(MODELS_DIR / name, models_dir / name)
    programs.install(folder)     # segments, programs, templates beside models/
    db_path = folder / "dashboard.db"
    for stale in folder.glob("dashboard.db*"):
        stale.unlink()
    step("world", 0, 1)
    world = generate_world(seed)
    world = World(shifted(world, now_us()), world.leads, world.personas,
                  now_us() - US_PER_MINUTE, world.seed)
    lead_table, event_table = subset(world, leads)
    token, write_key = new_admin_token(), new_write_key()
    settings = Settings(db=f"sqlite:///{db_path.resolve()}", models_dir=str(models_dir),
                        write_keys=(write_key,), admin_token_sha256=hash_token(token),
                        host=host, port=port, log_level="warning", log_requests=False,
                        enrol_max_age_hours=0,
                        link_secret=secrets.token_urlsafe(32))     # the demo's own, unshared
    step("world", 1, 1)
    step("models", 0, 1)
    service = Service.open(settings.db, models_dir=settings.models_dir, background=False)
    step("models", 1, 1)
    try:
        parts: tuple[tuple[Literal["leads", "events"], pa.Table], ...] = (
            ("leads", lead_table), ("events", event_table))
        for kind, table in parts:
            # Through the bulk import path: nobody else writes yet. The world plays its
            # history as if it were happening: it enrols in programs.
            service.import_events(table, kind=kind, progress=partial(step, kind),
                                  history=False)
        step("segments and programs", 0, None)
        lifecycle = programs.run(service, settings, folder)
        step("segments and programs", 1, 1)
    finally:
        service.close()
    return DemoStore(settings, token, write_key, lead_table.num_rows, event_table.num_rows,
                     lifecycle)


def serve_demo(folder: Path, seed: int, port: int, host: str = "127.0.0.1") -> None:
    """Build the demo store, print where to go and the admin token, serve until Ctrl-C."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from leadscore.server import serve

    console = Console(highlight=False)
    console.print(f"[bold]leadscore demo[/] — loading the demo world (seed {seed}) into "
                  f"{folder / 'dashboard.db'} through the service …")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(kind: str, done: int, total: int | None) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind, total=total)
            bar.update(tasks[kind], completed=done, total=total)

        store = build_store(folder, seed, port=port, host=host, progress=progress)
    url = f"http://{host}:{port}/dashboard/"
    console.print(f"{store.leads:,} leads and {store.events:,} events loaded.")
    if store.lifecycle:
        life = store.lifecycle
        enrolled = ", ".join(f"{n:,} in {name}" for name, n in sorted(life["enrolled"].items()))
        console.print(f"Programs: {enrolled or 'nobody enrolled'}; {life['emails']:,} e-mails "
                      f"in the outbox; {life['exited_mql']:,} left as MQLs.")
    console.print(f"[bold]Dashboard:[/]   {url}", markup=True)
    console.print(f"[bold]Admin token:[/] {store.admin_token}", markup=True)
    console.print(f"Write key:   {store.write_key}   (POST /v1/track … to add events live)")
    console.print("Ctrl-C stops the server.")
    serve(store.settings)
