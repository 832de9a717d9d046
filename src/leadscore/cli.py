"""The `leadscore` command: check models, score files, explain a lead, run the demo.

Every error a user can cause ends as one clear red line (or one line per model problem) and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadscore import __version__
from leadscore.errors import LeadscoreError, ModelError, RejectedRowsWarning
from leadscore.model.schema import Model
from leadscore.timeutil import iso, now_us, parse_timestamp

app = typer.Typer(
    name="leadscore",
    help="Lead scoring that explains itself: fit, engagement and lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Tables get room when the output is a file or a pipe (rich would assume 80 columns).
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
out = Console(soft_wrap=True, highlight=False, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, highlight=False, width=_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


class Failed(Exception):
    """Already reported to the user: exit with status 1."""


def say(text: str, style: str | None = None, *, console: Console = out) -> None:
    """Print one line as it is (no markup, no wrapping)."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def fail(text: str) -> NoReturn:
    say(text, "bold red", console=err)
    raise Failed


def clean_errors(command: F) -> F:
    """Turn every error a user can cause into red lines and exit 1 (never a traceback)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():    # restores the previous display on the way out
                shown = warnings.showwarning

                def show(message: Any, category: Any, *rest: Any, **more: Any) -> None:
                    if issubclass(category, RejectedRowsWarning):  # a line, not a location
                        say(f"warning: {message}", "yellow", console=err)
                    else:
                        shown(message, category, *rest, **more)

                warnings.showwarning = show
                return command(*args, **kwargs)
        except Failed:
            raise typer.Exit(1) from None
        except ModelError as exc:
            for problem in exc.problems:
                say(str(problem), "red", console=err)
            raise typer.Exit(1) from None
        except (LeadscoreError, OSError) as exc:
            say(f"error: {exc}", "bold red", console=err)
            raise typer.Exit(1) from None
        except Exception as exc:  # a bug: one line unless asked for the traceback
            if os.environ.get("LEADSCORE_DEBUG"):
                raise
            say(f"internal error: {type(exc).__name__}: {exc} (set LEADSCORE_DEBUG=1 for the "
                "traceback, and please report it)", "bold red", console=err)
            raise typer.Exit(70) from None

    return run  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        say(f"leadscore {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Lead scoring that explains itself: fit, engagement and lifecycle."""


# ----------------------------------------------------------------------------- check

@app.command()
@clean_errors
def check(
    files: Annotated[list[Path], typer.Argument(help="Model files (YAML).")],
) -> None:
    """Validate model files and run their worked examples (`tests:`) through both engines."""
    from leadscore.checks import run_model_tests
    from leadscore.model import load_model

    bad = 0
    tests = passed = 0
    names: dict[str, Path] = {}
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
    summary = (f"{len(files)} model file{'s' * (len(files) != 1)}, {tests} worked example"
               f"{'s' * (tests != 1)}: {passed} passed")
    if bad:
        say(f"{summary}, {tests - passed} failed; {bad} file{'s' * (bad != 1)} with problems",
            "bold red")
        raise Failed
    say(summary, "bold green")


# ----------------------------------------------------------------------------- score

@app.command()
@clean_errors
def score(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="A model file (repeat "
                                              "for several).")],
    events: Annotated[str, typer.Option("--events", "-e", help="Events: .parquet, .csv or "
                                        ".jsonl (Segment messages).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Scores file: .csv, .parquet, "
                                     ".json or .jsonl (with Spark also a URL: s3a://…).")],
    leads: Annotated[str | None, typer.Option("--leads", "-l", help="Leads (traits): "
                                              ".parquet, .csv or .jsonl.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Score as of this time "
                                              "(ISO 8601); default: now.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad row "
                                         "instead of skipping it.")] = False,
    rejected: Annotated[Path | None, typer.Option("--rejected", help="Where to write skipped "
                                                  "rows; default: next to --out.")] = None,
    accounts_out: Annotated[Path | None, typer.Option(
        "--accounts", help="Also score accounts (models with `account:`): one row per account "
        "and model written here (.csv, .parquet, .json, .jsonl).")] = None,
    account_traits: Annotated[str | None, typer.Option(
        "--account-traits", help="Accounts table: account_id plus traits incl. domain "
                                 "(.csv, .parquet, .jsonl).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="duckdb (in-process) or spark.")
                      ] = "duckdb",
    master: Annotated[str, typer.Option("--master", help="Spark master: local[*], spark://…, "
                                        "yarn, k8s://…")] = "local[*]",
    state: Annotated[Path | None, typer.Option("--state", help="Keep a per-lead state here; "
                                               "later runs read only new files.")] = None,
    memory_limit: Annotated[str | None, typer.Option("--memory-limit", help="DuckDB memory "
                                                     "limit (e.g. 4GB); spills beyond.")] = None,
) -> None:
    """Score every lead in an events file (and leads file) under one or more models."""
    from leadscore.engine import scale
    from leadscore.io import read_events, read_leads, write_table
    from leadscore.model import load_models

    started = time.monotonic()
    when = _as_of(as_of)
    models = load_models(list(model))
    if engine not in ("duckdb", "spark"):
        fail(f"error: --engine {engine!r}: expected duckdb or spark")
    if engine == "spark":
        if state is not None:
            fail("error: --state runs on DuckDB; drop it or --engine spark")
        if scale.REMOTE_MARK not in out:
            _check_output(Path(out))
        if accounts_out is not None:
            _check_output(accounts_out)
        rows, kept = scale.score_on_spark(models, events, leads, out, when, master, err,
                                          keep=accounts_out is not None)
        say(f"wrote {rows:,} scores to {out} on Spark ({master}) (as of {iso(when)}) in "
            f"{time.monotonic() - started:.1f} s", "green")
        if accounts_out is not None:
            from leadscore.engine.batch.accounts import score_accounts
            from leadscore.engine.batch.spark import session

            # The account plan on Spark too, from the leads' scores just computed.
            account_rows = score_accounts(models, events, leads, account_traits, as_of=when,
                                          engine="spark", spark=session(master), scores=kept)
            write_table(account_rows, accounts_out)
            say(f"wrote {account_rows.num_rows:,} account scores to {accounts_out}", "green")
        return
    out_path = Path(out)
    _check_output(out_path)
    con = scale.connect(memory_limit)
    if state is not None:
        if accounts_out is not None:
            fail("error: --accounts cannot be combined with --state yet")
        scores = scale.score_with_state(models, events, leads, when, state, con, err)
        write_table(scores, out_path)
        _summary(scores, con)
        say(f"wrote {scores.num_rows:,} scores to {out_path} (as of {iso(when)}) in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    if accounts_out is not None:
        _check_output(accounts_out)
    with _progress() as step:
        step("reading events")
        events_report = read_events(events, con, name="events", strict=strict)
        leads_report = None
        if leads is not None:
            step("reading leads")
            leads_report = read_leads(leads, con, name="leads", strict=strict)
        step(f"scoring {events_report.rows:,} events under {len(models)} "
             f"model{'s' * (len(models) != 1)}")
        scores = _score_many(models, con, leads is not None, when)
        step(f"writing {out_path}")
        write_table(scores, out_path)
        if accounts_out is not None:
            from leadscore.engine.batch.accounts import score_accounts

            step(f"scoring accounts into {accounts_out}")
            account_rows = score_accounts(models, "events", "leads" if leads is not None
                                          else None, account_traits, as_of=when, con=con,
                                          scores=scores)
            write_table(account_rows, accounts_out)
            say(f"wrote {account_rows.num_rows:,} account scores to {accounts_out}", "green")
    for report, suffix in ((events_report, ""), (leads_report, "-leads")):
        if report is None or not report.rejected:
            continue
        target = _rejected_path(rejected, out_path, suffix)
        report.write_rejected(target)
        say(f"skipped {report.rejected:,} bad row{'s' * (report.rejected != 1)} of "
            f"{report.source} (see {target})", "yellow")
    _summary(scores, con)
    say(f"wrote {scores.num_rows:,} scores to {out_path} (as of {iso(when)}) in "
        f"{time.monotonic() - started:.1f} s", "green")


def _as_of(text: str | None) -> int:
    if text is None:
        return now_us()
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        fail(f"error: --as-of: {exc}; expected ISO 8601 such as 2026-05-01T00:00:00Z")


def _check_output(path: Path) -> None:
    from leadscore.io.writers import WRITE_SUFFIXES

    if path.suffix.lower() not in WRITE_SUFFIXES:
        fail(f"error: --out {path}: unknown output type {path.suffix or '(no extension)'!r}; "
             f"expected one of {', '.join(WRITE_SUFFIXES)}")
    if not path.parent.exists():
        fail(f"error: --out {path}: folder {path.parent} does not exist")


def _rejected_path(given: Path | None, out_path: Path, suffix: str) -> Path:
    if given is not None:
        return given if not suffix else given.with_name(f"{given.stem}{suffix}{given.suffix}")
    return out_path.with_name(f"{out_path.stem}.rejected{suffix}.csv")


def _score_many(models: list[Model], con: Any, with_leads: bool, as_of: int) -> Any:
    """The batch engine over the canonical `events` (and `leads`) views registered in `con`."""
    from leadscore.engine.batch.duckdb import score_many

    return score_many(models, "events", "leads" if with_leads else None, as_of=as_of, con=con)


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """Steps of a long run, shown with a spinner on a terminal (nothing otherwise)."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=err, transient=True, disable=not err.is_terminal)
    with progress:
        task = progress.add_task("starting", total=None)

        def step(text: str) -> None:
            progress.update(task, description=text)

        yield step


def _summary(scores: Any, con: Any) -> None:
    """Rows per model, MQLs, disqualified, and counts by grade and temperature."""
    if scores.num_rows == 0:
        say("no lead was scored: no events at or before --as-of, and no leads selected", "yellow")
        return
    con.register("scores__summary", scores)
    rows = con.sql("""
        SELECT model, count(*), count(*) FILTER (WHERE mql), count(*) FILTER (WHERE disqualified),
               count(*) FILTER (WHERE grade = 'A'), count(*) FILTER (WHERE grade = 'B'),
               count(*) FILTER (WHERE grade = 'C'), count(*) FILTER (WHERE grade = 'D'),
               count(*) FILTER (WHERE grade NOT IN ('A', 'B', 'C', 'D')),
               count(*) FILTER (WHERE temperature = 'hot'),
               count(*) FILTER (WHERE temperature = 'warm'),
               count(*) FILTER (WHERE temperature = 'cold'),
               count(*) FILTER (WHERE temperature = 'dead')
        FROM scores__summary GROUP BY model ORDER BY model""").fetchall()
    con.unregister("scores__summary")
    table = Table(title="Scores by model", title_justify="left")
    for name in ("model", "leads", "MQL", "disqualified", "A", "B", "C", "D", "F/other",
                 "hot", "warm", "cold", "dead"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in rows:
        table.add_row(str(row[0]), *(f"{v:,}" for v in row[1:]))
    out.print(table)


# ----------------------------------------------------------------------------- explain

@app.command()
@clean_errors
def explain(
    model: Annotated[Path, typer.Option("--model", "-m", help="The model file.")],
    events: Annotated[str, typer.Option("--events", "-e", help="Events: .parquet, .csv or "
                                        ".jsonl.")],
    lead: Annotated[str, typer.Option("--lead", help="The lead_id to explain.")],
    leads: Annotated[str | None, typer.Option("--leads", "-l", help="Leads (traits).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Explain the score as of this "
                                              "time (ISO 8601); default: now.")] = None,
) -> None:
    """Show why a lead has its score: every rule, its points, the events it matched."""
    import duckdb

    from leadscore.explain import explain as explain_lead
    from leadscore.io import events_of, lead_of, read_events, read_leads
    from leadscore.model import load_model

    when = _as_of(as_of)
    loaded = load_model(model)
    con = duckdb.connect()
    read_events(events, con, name="events")
    its_events = events_of(con, lead)
    profile = None
    if leads is not None:
        read_leads(leads, con, name="leads")
        profile = lead_of(con, lead)
    if not its_events and profile is None:
        fail(f"error: lead {lead!r} has no events in {events}"
             + (f" and no row in {leads}" if leads else ""))
    result = explain_lead(loaded, its_events, profile, as_of=when)
    show_explanation(result, loaded)


def show_explanation(result: Any, model: Model) -> None:
    """A table of the reasons, summing to the score, then grade, temperature, stage, MQL."""
    table = Table(title=f"lead {result.lead_id} under {model.name}, as of {iso(result.as_of)}",
                  title_justify="left")
    for name, justify in (("rule", "left"), ("kind", "left"), ("points", "right"),
                          ("matched", "right"), ("counted", "right"), ("last match", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for reason in result.reasons:
        engagement = reason.kind in ("engagement", "program")   # events behind them
        table.add_row(
            reason.rule,
            reason.kind if reason.kind != "disqualify" else f"disqualify: {reason.detail}",
            _points(reason.points),
            str(reason.matched) if engagement else "",
            str(reason.counted) if engagement else "",
            _when(reason.last_at) if engagement and reason.last_at is not None else "",
            style="red" if reason.kind == "disqualify" else None,
        )
    table.add_section()
    table.add_row("score", "", _points(result.score), style="bold")
    out.print(table)
    say(f"score {_num(result.score)} = fit {_num(result.fit)} + engagement "
        f"{_num(result.engagement)}", "bold")
    verdict = (f"grade {result.grade or '-'} · {result.temperature or '-'} · stage "
               f"{result.stage} · MQL {'yes' if result.mql else 'no'}")
    if result.disqualified:
        verdict += f" · disqualified: {result.disqualify_reason}"
    if result.customer_since is not None:
        verdict += (f" · customer since {iso(result.customer_since)[:10]} "
                    f"({result.purchases} purchase{'s' * (result.purchases != 1)})")
    say(verdict, "bold")
    if getattr(result, "interests", ()):
        from leadscore.model.interests import summary

        say(summary(result.interests, top=5), "bold")


def _when(us: int) -> str:
    return iso(us)[:16].replace("T", " ")


def _points(value: float) -> str:
    return f"{value:+.2f}"


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


# ----------------------------------------------------------------------------- demo

@app.command()
@clean_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the demo "
                                          "world and its scores to.")] = Path("leadscore-demo"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world.")] = 7,
    serve: Annotated[bool, typer.Option("--serve", help="Load the world into a SQLite store "
                                        "through the service and serve the dashboard.")] = False,
    port: Annotated[int, typer.Option("--port", help="Port of --serve.")] = 8000,
) -> None:
    """Generate a demo world, score it with the example models, and show what came out."""
    if serve:
        from leadscore.demo.serve import serve_demo

        serve_demo(out_dir, seed, port)
        return
    from leadscore.demo.show import run_demo

    run_demo(out_dir, seed, out)


# ----------------------------------------------------------------------------- evaluate, learn

def _register_learn() -> None:
    from leadscore.learn.commands import register

    register(app, clean_errors)


_register_learn()


# ----------------------------------------------------------------------------- the service

def _register_service() -> None:
    from leadscore.cli_service import register

    register(app, clean_errors)


_register_service()
__import__("leadscore.cli_lifecycle").cli_lifecycle.register(app, clean_errors)


def main() -> None:
    """Entry point of the `leadscore` console script."""
    app()


if __name__ == "__main__":
    main()
