"""`leadscore check`: validate model files and run their worked examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import Failed, clean_errors, say
from leadscore.errors import ModelError

commands = typer.Typer()


@commands.command()
@clean_errors
def check(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Model files (YAML).")],
    events: Annotated[str | None, typer.Option(
        "--events", "-e", metavar="FILE", help="A sample of events (.parquet, .csv, .jsonl): "
        "report rules that match none of them, with the closest event names seen.")] = None,
) -> None:
    """Validate model files and run their worked examples (`tests:`) through both engines;
    with --events, also report rules that match nothing in a sample of real events."""
    from leadscore.checks import run_model_tests
    from leadscore.model import load_model

    bad = 0
    tests = passed = 0
    names: dict[str, Path] = {}
    loaded = []
    for file in files:
        try:
            model = load_model(file)
        except ModelError as exc:
            bad += 1
            for problem in exc.problems:
                say(str(problem), "red")
            continue
        if model.name in names:
            bad += 1
            say(f"{file}: name: model {model.name!r} is also defined in {names[model.name]}; "
                "expected a unique name per model", "red")
        names.setdefault(model.name, file)
        loaded.append(model)
        results = run_model_tests(model)
        failed = [r for r in results if not r.ok]
        tests += len(results)
        passed += len(results) - len(failed)
        mark, style = ("✓", "green") if not failed else ("✗", "red")
        say(f"{mark} {file}: model {model.name!r}: {len(results) - len(failed)}/{len(results)} "
            "worked examples pass", style)
        for result in failed:
            for line in result.messages():
                say(f"  {line}", "red")
        bad += bool(failed)
    if events is not None and loaded:
        from leadscore.cli.score import warn_unmatched

        unmatched = warn_unmatched(loaded, events)
        say(f"{events}: every rule matched at least one event" if not unmatched else
            f"{events}: {unmatched} rule{'s' * (unmatched != 1)} matched no event",
            "green" if not unmatched else "yellow")
    summary = (f"{len(files)} model file{'s' * (len(files) != 1)}, {tests} worked example"
               f"{'s' * (tests != 1)}: {passed} passed")
    if bad:
        say(f"{summary}, {tests - passed} failed; {bad} file{'s' * (bad != 1)} with problems",
            "bold red")
        raise Failed
    say(summary, "bold green")
