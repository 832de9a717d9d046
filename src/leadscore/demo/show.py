"""`leadscore demo`: generate the world, score it with the example models, show the result."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from leadscore.demo.world import World, generate_world
from leadscore.demo.write import write_world
from leadscore.events import event_from_row, lead_from_row
from leadscore.model.schema import Model

# The example models (copies of examples/*.yaml, kept equal by a test).
MODELS_DIR = Path(__file__).parent / "models"
MODEL_FILES = ("b2c-art-supplies.yaml", "b2b-software.yaml")
TOP = 5
GRADES = ("A", "B", "C", "D", "F")
TEMPERATURES = ("hot", "warm", "cold", "dead")


def run_demo(folder: Path, seed: int, console: Console) -> pa.Table:
    """Write the world and its scores to `folder`, print the picture; return the scores."""
    from leadscore.engine.batch import score_many
    from leadscore.io import write_table
    from leadscore.model import load_models

    started = time.monotonic()
    world = generate_world(seed)
    paths = write_world(world, folder)
    models_dir = folder / "models"
    models_dir.mkdir(exist_ok=True)
    model_paths = [models_dir / name for name in MODEL_FILES]
    for name, target in zip(MODEL_FILES, model_paths, strict=True):
        shutil.copyfile(MODELS_DIR / name, target)
    models = load_models(list(model_paths))
    # One thread: DuckDB's parallel float sums differ in the last digits from run to run,
    # and the demo promises identical scores files for the same seed.
    con = duckdb.connect(config={"threads": 1})
    scores = score_many(models, world.events, world.leads, as_of=world.as_of, con=con)
    scores = scores.sort_by([("model", "ascending"), ("lead_id", "ascending")])
    scores_path = folder / "scores.csv"
    write_table(scores, scores_path)
    elapsed = time.monotonic() - started

    say = console.print
    say(f"[bold]leadscore demo[/] — seed {seed}: {world.leads.num_rows:,} leads and "
        f"{world.events.num_rows:,} events over 120 days up to {world.as_of_iso}, "
        f"scored with {len(models)} models in {elapsed:.1f} s\n")
    rows = scores.to_pylist()
    people = {row["lead_id"]: row for row in world.leads.to_pylist()}
    for model in models:
        _show_model(console, model, [r for r in rows if r["model"] == model.name], world,
                    people)
    _show_personas(console, rows, world)
    say("[bold]Files[/]")
    for path in (*paths.values(), *model_paths, scores_path):
        say(f"  {path}", highlight=False)
    say("\n[bold]Next[/]")
    say(f"  leadscore explain --model {model_paths[0]} --events {paths['events.parquet']} "
        f"--leads {paths['leads.parquet']} --lead {_best(rows, models[0].name)} "
        f"--as-of {world.as_of_iso}", highlight=False, markup=False)
    say(f"  leadscore check {' '.join(str(p) for p in model_paths)}", highlight=False,
        markup=False)
    return scores


def _show_model(console: Console, model: Model, rows: list[dict[str, Any]], world: World,
                people: dict[str, dict[str, Any]]) -> None:
    mql = sum(bool(r["mql"]) for r in rows)
    disqualified = [r for r in rows if r["disqualified"]]
    console.rule(f"[bold]{model.name}[/] — {len(rows):,} leads: {mql:,} MQL, "
                 f"{len(disqualified):,} disqualified", align="left")
    top = sorted((r for r in rows if not r["disqualified"]),
                 key=lambda r: (-r["score"], r["lead_id"]))[:TOP]
    table = Table(title="Top leads", title_justify="left", expand=False)
    for name in ("lead", "who", "score", "grade", "temp.", "stage", "why (top reasons)"):
        table.add_column(name, justify="right" if name == "score" else "left")
    for r in top:
        table.add_row(r["lead_id"], _who(people[r["lead_id"]]), f"{r['score']:.1f}",
                      r["grade"] or "-", _temperature(r["temperature"]), r["stage"],
                      _why(model, world, people[r["lead_id"]]))
    console.print(table)

    reasons = Counter(r["disqualify_reason"] for r in disqualified)
    table = Table(title="Disqualified: never handed to sales", title_justify="left")
    for name in ("reason", "leads", "for example", "engagement they showed"):
        table.add_column(name, justify="right" if name in ("leads",) else "left")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        example = max((r for r in disqualified if r["disqualify_reason"] == reason),
                      key=lambda r: (r["engagement"], r["lead_id"]))
        table.add_row(reason, f"{count:,}", f"{example['lead_id']}: "
                      f"{_who(people[example['lead_id']])}", f"{example['engagement']:.1f}")
    console.print(table)

    matrix = Counter((r["grade"] or "-", r["temperature"] or "-") for r in rows)
    table = Table(title="Leads by grade (fit) × temperature (engagement)", title_justify="left")
    table.add_column("grade")
    for temperature in TEMPERATURES:
        table.add_column(temperature, justify="right")
    for grade in GRADES:
        table.add_row(grade, *(f"{matrix[(grade, t)]:,}" if matrix[(grade, t)] else "·"
                               for t in TEMPERATURES))
    console.print(table)
    console.print()


def _show_personas(console: Console, rows: list[dict[str, Any]], world: World) -> None:
    """The world's truth next to the scores: the models should tell the personas apart."""
    persona = world.persona_of()
    table = Table(title="Who they really are vs. what the scores say", title_justify="left")
    for name in ("model", "persona", "leads", "MQL", "disqualified", "hot", "warm", "cold",
                 "dead", "usual stage"):
        table.add_column(name, justify="left" if name in ("model", "persona", "usual stage")
                         else "right")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], persona[r["lead_id"]]), []).append(r)
    for (model, who), members in sorted(groups.items()):
        n = len(members)
        temps = Counter(r["temperature"] for r in members)
        stage = Counter(r["stage"] for r in members).most_common(1)[0][0]
        table.add_row(model, who, f"{n:,}", _share(sum(bool(r["mql"]) for r in members), n),
                      _share(sum(bool(r["disqualified"]) for r in members), n),
                      *(_share(temps[t], n) for t in TEMPERATURES), stage)
    console.print(table)
    console.print()


def _share(count: int, total: int) -> str:
    if not count:
        return "·"
    share = 100 * count / total
    return f"{share:.0f}%" if share >= 1 else "<1%"


def _temperature(value: str | None) -> str:
    colour = {"hot": "red", "warm": "yellow", "cold": "blue", "dead": "dim"}.get(value or "")
    return f"[{colour}]{value}[/]" if colour else (value or "-")


def _who(person: dict[str, Any]) -> str:
    name = f"{person['first_name']} {person['last_name']}"
    if person.get("segment") == "business":
        return (f"{name}, {person.get('job_title')} at {person.get('company')} "
                f"({person.get('account.industry')}, {person.get('account.employees'):,})")
    return f"{name}, {person.get('age')}, {person.get('occupation')}, {person.get('city')}"


def _why(model: Model, world: World, person: dict[str, Any]) -> str:
    from leadscore.checks import reasons_text
    from leadscore.explain import explain

    mine = world.events.filter(pc.equal(world.events.column("lead_id"), person["lead_id"]))
    events = [event_from_row(row) for row in mine.to_pylist()]
    lead = lead_from_row(person)
    score = explain(model, events, lead, as_of=world.as_of)
    positive = [r for r in score.reasons if r.points > 0]
    return reasons_text(positive, limit=3, more=False)


def _best(rows: list[dict[str, Any]], model: str) -> str:
    mine = [r for r in rows if r["model"] == model and not r["disqualified"]]
    return str(max(mine, key=lambda r: (r["score"], r["lead_id"]))["lead_id"]) if mine else "?"
