"""`leadscore score`: every lead of an events file scored under one or more models, on DuckDB
(in one query, or from a saved `--state`) or on Spark, with a summary by model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from leadscore.cli.console import clean_errors, err, fail, out, say
from leadscore.cli.options import as_of_us
from leadscore.cli.progress import partitions, spinner
from leadscore.model.schema import Model
from leadscore.timeutil import iso

if TYPE_CHECKING:
    from leadscore.engine.batch.state import RunReport

commands = typer.Typer()


@commands.command()
@clean_errors
def score(
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE",
                                              help="A model file (repeat for several).")],
    events: Annotated[str, typer.Option("--events", "-e", metavar="FILE", help="Events: "
                                        ".parquet, .csv or .jsonl (Segment messages).")],
    out_path: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Scores file: "
                                          ".csv, .parquet, .json or .jsonl (with Spark also "
                                          "a URL: s3a://…).")],
    leads: Annotated[str | None, typer.Option("--leads", "-l", metavar="FILE", help="Leads "
                                              "(traits): .parquet, .csv or .jsonl.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="TIME", help="Score as of "
                                              "this time (ISO 8601); default: now.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad row "
                                         "instead of skipping it.")] = False,
    rejected: Annotated[Path | None, typer.Option("--rejected", metavar="FILE", help="Where "
                                                  "to write skipped rows; default: next to "
                                                  "--out.")] = None,
    accounts_out: Annotated[Path | None, typer.Option(
        "--accounts", metavar="FILE", help="Also score accounts (models with `account:`): "
        "one row per account and model written here (.csv, .parquet, .json, .jsonl).")
    ] = None,
    account_traits: Annotated[str | None, typer.Option(
        "--account-traits", metavar="FILE", help="Accounts table: account_id plus traits "
                                                 "incl. domain (.csv, .parquet, .jsonl).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", metavar="ENGINE", help="duckdb "
                                        "(in-process) or spark.")] = "duckdb",
    master: Annotated[str, typer.Option("--master", metavar="URL", help="Spark master: "
                                        "local[*], spark://…, yarn, k8s://…")] = "local[*]",
    state: Annotated[Path | None, typer.Option("--state", metavar="DIR", help="Keep a "
                                               "per-lead state here; later runs read only "
                                               "new files.")] = None,
    memory_limit: Annotated[str | None, typer.Option("--memory-limit", metavar="SIZE",
                                                     help="DuckDB memory limit (e.g. 4GB); "
                                                     "spills beyond.")] = None,
) -> None:
    """Score every lead in an events file (and leads file) under one or more models."""
    from leadscore.engine.batch import scale
    from leadscore.io import read_events, read_leads, write_table
    from leadscore.model import load_models

    started = time.monotonic()
    when = as_of_us(as_of)
    models = load_models(list(model))
    if engine not in ("duckdb", "spark"):
        fail(f"error: --engine {engine!r}: expected duckdb or spark")
    if state is not None and accounts_out is not None:
        fail("error: --accounts cannot be combined with --state yet")
    if engine == "spark" and state is not None:
        from leadscore.engine.batch.spark import session

        target = Path(out_path)
        _check_output(target)
        spark = session(master)
        spark.sparkContext.setLogLevel("ERROR")
        with partitions(err) as step:
            scores = scale.score_with_state(models, events, leads, when, state, spark,
                                            step=step, scored=_scored_from_state)
        write_table(scores, target)
        say(f"wrote {scores.num_rows:,} scores to {target} on Spark ({master}) (as of "
            f"{iso(when)}) in {time.monotonic() - started:.1f} s", "green")
        return
    if engine == "spark":
        if scale.REMOTE_MARK not in out_path:
            _check_output(Path(out_path))
        if accounts_out is not None:
            _check_output(accounts_out)
        rows, kept = scale.score_on_spark(models, events, leads, out_path, when, master,
                                          keep=accounts_out is not None, skipped=_skipped)
        say(f"wrote {rows:,} scores to {out_path} on Spark ({master}) (as of {iso(when)}) in "
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
    target = Path(out_path)
    _check_output(target)
    con = scale.connect(memory_limit)
    if state is not None:
        with partitions(err) as step:
            scores = scale.score_with_state(models, events, leads, when, state, con,
                                            step=step, scored=_scored_from_state)
        write_table(scores, target)
        _summary(scores, con)
        say(f"wrote {scores.num_rows:,} scores to {target} (as of {iso(when)}) in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    if accounts_out is not None:
        _check_output(accounts_out)
    with spinner(err) as step:
        step("reading events")
        events_report = read_events(events, con, name="events", strict=strict)
        leads_report = None
        if leads is not None:
            step("reading leads")
            leads_report = read_leads(leads, con, name="leads", strict=strict)
        step(f"scoring {events_report.rows:,} events under {len(models)} "
             f"model{'s' * (len(models) != 1)}")
        scores = _score_many(models, con, leads is not None, when)
        step(f"writing {target}")
        write_table(scores, target)
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
        written = _rejected_path(rejected, target, suffix)
        report.write_rejected(written)
        say(f"skipped {report.rejected:,} bad row{'s' * (report.rejected != 1)} of "
            f"{report.source} (see {written})", "yellow")
    _summary(scores, con)
    say(f"wrote {scores.num_rows:,} scores to {target} (as of {iso(when)}) in "
        f"{time.monotonic() - started:.1f} s", "green")


def _check_output(path: Path) -> None:
    """Fail before any work if `path` cannot be written: unknown type, missing folder."""
    from leadscore.io.writers import WRITE_SUFFIXES

    if path.suffix.lower() not in WRITE_SUFFIXES:
        fail(f"error: --out {path}: unknown output type {path.suffix or '(no extension)'!r}; "
             f"expected one of {', '.join(WRITE_SUFFIXES)}")
    if not path.parent.exists():
        fail(f"error: --out {path}: folder {path.parent} does not exist")


def _rejected_path(given: Path | None, out_path: Path, suffix: str) -> Path:
    """Where skipped rows go: `--rejected` (with `suffix` for the leads' file), else beside
    the scores."""
    if given is not None:
        return given if not suffix else given.with_name(f"{given.stem}{suffix}{given.suffix}")
    return out_path.with_name(f"{out_path.stem}.rejected{suffix}.csv")


def _score_many(models: list[Model], con: Any, with_leads: bool, as_of: int) -> Any:
    """The batch engine over the canonical `events` (and `leads`) views registered in `con`."""
    from leadscore.engine.batch.duckdb import score_many

    return score_many(models, "events", "leads" if with_leads else None, as_of=as_of, con=con)


def _skipped(rows: int, source: str) -> None:
    say(f"skipped {rows:,} bad row{'s' * (rows != 1)} of {source}", "yellow", console=err)


def _scored_from_state(model: str, report: RunReport) -> None:
    say(f"{model}: {report.mode} ({report.reason or 'new files only'}); "
        f"{report.files_read:,} file{'s' * (report.files_read != 1)} read", "dim", console=err)


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
