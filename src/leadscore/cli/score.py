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
from leadscore.cli.outputs import output_path
from leadscore.cli.progress import partitions, spinner
from leadscore.model.schema import Model
from leadscore.timeutil import iso

if TYPE_CHECKING:
    from leadscore.engine.batch.inputs import Canonical
    from leadscore.engine.batch.state import RunReport

commands = typer.Typer()


@commands.command()
@clean_errors
def score(
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE",
                                              help="A model file (repeat for several).")],
    out_path: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Scores file: "
                                          ".csv, .parquet, .json or .jsonl (with Spark also "
                                          "a URL: s3a://…); or a database table: "
                                          "postgresql://…/DB/SCHEMA.TABLE, a .duckdb file, "
                                          "with --engine postgres a table of --db.")],
    events: Annotated[str | None, typer.Option("--events", "-e", metavar="FILE", help="Events: "
                                               ".parquet, .csv or .jsonl (Segment messages); "
                                               "with --engine postgres a table of --db.")
                      ] = None,
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
        "one row per account and model written here (.csv, .parquet, .json, .jsonl; with "
        "--engine postgres also a table of --db, replaced or upserted by (account_id, "
        "model)).")] = None,
    account_traits: Annotated[str | None, typer.Option(
        "--account-traits", metavar="FILE", help="Accounts table: account_id plus traits "
                                                 "incl. domain (.csv, .parquet, .jsonl; with "
                                                 "--engine postgres a table of --db).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", metavar="ENGINE", help="duckdb "
                                        "(in-process), spark, or postgres (in the database "
                                        "--db: --events and --leads are its tables).")
                      ] = "duckdb",
    db: Annotated[str | None, typer.Option("--db", metavar="URL", help="With --engine "
                                           "postgres: postgresql://… holding the tables.")
                  ] = None,
    mode: Annotated[str, typer.Option("--mode", metavar="MODE", help="Into a database "
                                      "table: replace its rows, or upsert by (lead_id, "
                                      "model).")] = "replace",
    master: Annotated[str, typer.Option("--master", metavar="URL", help="Spark master: "
                                        "local[*], spark://…, yarn, k8s://…")] = "local[*]",
    state: Annotated[Path | None, typer.Option("--state", metavar="DIR", help="Keep a "
                                               "per-lead state here; later runs read only "
                                               "new files.")] = None,
    memory_limit: Annotated[str | None, typer.Option("--memory-limit", metavar="SIZE",
                                                     help="DuckDB memory limit (e.g. 4GB); "
                                                     "spills beyond.")] = None,
    layout: Annotated[str, typer.Option("--layout", metavar="LAYOUT", help="With --engine "
                                        "postgres: tables (--events, --leads) or segment "
                                        "(the loader tables of --schema).")] = "tables",
    schema: Annotated[str | None, typer.Option(
        "--schema", metavar="SCHEMA", help="With --layout segment: the schema Segment's or "
        "RudderStack's loader writes tracks, pages, identifies, groups, aliases to.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", metavar="FILE", help="Settings whose [filters] (bots, internal "
        "traffic, link scanners) leave events out, as the service does (default: "
        "$LEADSCORE_CONFIG, else ./leadscore.toml if there, else the maintained bot and "
        "scanner lists).")] = None,
) -> None:
    """Score every lead in an events file (and leads file) under one or more models."""
    from leadscore.config import load_settings
    from leadscore.engine.batch import scale
    from leadscore.engine.batch.duckdb import score_many
    from leadscore.io import write_table
    from leadscore.model import load_models

    started = time.monotonic()
    when = as_of_us(as_of)
    models = load_models(list(model))
    filters = load_settings(config).filters
    if engine not in ("duckdb", "spark", "postgres"):
        fail(f"error: --engine {engine!r}: expected duckdb, spark or postgres")
    if mode not in ("replace", "upsert"):
        fail(f"error: --mode {mode!r}: expected replace or upsert")
    if engine == "postgres":
        from leadscore.cli.warehouse import accounts_in_postgres, in_postgres, sources

        given, segment = sources(layout, schema, events, leads, "--events / --leads")
        if segment is not None and account_traits is not None:
            fail("error: --layout segment scores the accounts the loader's groups and "
                 "identifies name, with their traits: --account-traits goes with --layout "
                 "tables")
        in_postgres(models, db, given, leads, out_path, when, mode, segment)
        if accounts_out is not None:
            accounts_in_postgres(models, db, given, leads, account_traits,
                                 str(accounts_out), when, mode, segment)
        return
    if layout != "tables" or schema is not None:
        fail("error: --layout segment --schema reads a loader's tables in a database: with "
             "--engine postgres (a Segment message file is read as --events FILE.jsonl)")
    if events is None:
        fail("error: --events FILE is required")
    assert events is not None
    if state is not None and accounts_out is not None:
        from leadscore.io.readers import is_message_stream

        if not is_message_stream(events):
            fail("error: --accounts with --state needs a Segment message stream as --events "
                 "(the account links of its group and identify calls); an events table "
                 "has none: score accounts without --state")
        if account_traits is not None:
            fail("error: --account-traits cannot be combined with --state yet: give the "
                 "accounts' traits as group calls in the stream, or score without --state")
        _check_output(accounts_out)
    if engine == "spark" and state is not None:
        from leadscore.engine.batch.spark import session

        target = Path(out_path)
        _check_output(target)
        spark = session(master)
        spark.sparkContext.setLogLevel("ERROR")
        with partitions(err) as step:
            scores = scale.score_with_state(models, events, leads, when, state, spark,
                                            step=step, scored=_scored_from_state,
                                            filters=filters)
        write_table(scores, target)
        if accounts_out is not None:
            _accounts_from_state(models, scores, leads, when, state, spark, accounts_out)
        say(f"wrote {scores.num_rows:,} scores to {target} on Spark ({master}) (as of "
            f"{iso(when)}) in {time.monotonic() - started:.1f} s", "green")
        return
    database_out = _is_database(out_path)
    if engine == "spark":
        if scale.REMOTE_MARK not in out_path:
            _check_output(Path(out_path))
        if accounts_out is not None:
            _check_output(accounts_out)
        rows, kept = scale.score_on_spark(models, events, leads, out_path, when, master,
                                          keep=accounts_out is not None, skipped=_skipped,
                                          filters=filters)
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
    if not database_out:
        _check_output(target)
    con = scale.connect(memory_limit)
    if state is not None:
        with partitions(err) as step:
            scores = scale.score_with_state(models, events, leads, when, state, con,
                                            step=step, scored=_scored_from_state,
                                            filters=filters)
        _write(scores, out_path, mode)
        if accounts_out is not None:
            _accounts_from_state(models, scores, leads, when, state, con, accounts_out)
        _summary(scores, con)
        say(f"wrote {scores.num_rows:,} scores to {target} (as of {iso(when)}) in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    if accounts_out is not None:
        _check_output(accounts_out)
    with spinner(err) as step:
        found, reports = _read_inputs(events, leads, account_traits, con, when, strict, step,
                                      filters)
        step(f"scoring {_count(con, found.events):,} events under {len(models)} "
             f"model{'s' * (len(models) != 1)}")
        scores = score_many(models, found.events, found.leads, as_of=when, con=con,
                            filters=filters)
        step(f"writing {target}")
        _write(scores, out_path, mode)
        if accounts_out is not None:
            from leadscore.engine.batch.accounts import score_accounts

            step(f"scoring accounts into {accounts_out}")
            account_rows = score_accounts(models, found.events, found.leads, found.accounts,
                                          as_of=when, con=con, scores=scores)
            write_table(account_rows, accounts_out)
            say(f"wrote {account_rows.num_rows:,} account scores to {accounts_out}", "green")
    for report, suffix in reports:
        if not report.rejected:
            continue
        written = _rejected_path(rejected, Path("scores.csv") if database_out else target,
                                 suffix)
        report.write_rejected(written)
        say(f"skipped {report.rejected:,} bad row{'s' * (report.rejected != 1)} of "
            f"{report.source} (see {written})", "yellow")
    _summary(scores, con)
    for line in _unscored(models, scores, con, found, when):
        say(line, "yellow")
    warn_unmatched(models, found.events, con)
    say(f"wrote {scores.num_rows:,} scores to {target} (as of {iso(when)}) in "
        f"{time.monotonic() - started:.1f} s", "green")


def _accounts_from_state(models: list[Model], scores: Any, leads: str | None, when: int,
                         state: Path, con: Any, out: Path) -> None:
    """The accounts of the stream kept in `state`, written to `out`."""
    from leadscore.engine.batch import scale
    from leadscore.io import write_table

    rows = scale.accounts_with_state(models, scores, leads, when, state, con)
    write_table(rows, out)
    say(f"wrote {rows.num_rows:,} account scores to {out}", "green")


def _write(scores: Any, out_path: str, mode: str) -> None:
    """The scores to a file, or to a database table (replaced or upserted)."""
    if _is_database(out_path):
        from leadscore.io.databases import write_scores

        write_scores(scores, out_path, mode=mode)
    else:
        from leadscore.io import write_table

        write_table(scores, Path(out_path))


def _is_database(out_path: str) -> bool:
    """Whether --out names a database table (PostgreSQL URL or DuckDB file)."""
    from leadscore.io.databases import is_duckdb_file, is_postgres_url

    return is_postgres_url(out_path) or is_duckdb_file(out_path)


def _read_inputs(events: str, leads: str | None, account_traits: str | None, con: Any,
                 when: int, strict: bool, step: Any, filters: Any = None
                 ) -> tuple[Canonical, list[Any]]:
    """The canonical tables as of `when` and the readers' reports (with the suffix of their
    rejected-rows file): a Segment stream (events and/or leads JSON) is read once as the
    `messages` table, then the stream stage makes events, leads and accounts from it."""
    from leadscore.engine.batch.inputs import canonical_inputs
    from leadscore.io import read_events, read_leads
    from leadscore.io.readers import is_message_stream, read_messages

    reports: list[Any] = []
    streams = [s for s in (events, leads) if s is not None and is_message_stream(s)]
    events_arg, leads_arg = "events", "leads" if leads is not None else None
    if streams:
        step("reading messages")
        reports.append((read_messages(streams, con, name="messages", strict=strict), ""))
    if events in streams:
        events_arg = "messages"
    else:
        step("reading events")
        reports.append((read_events(events, con, name="events", strict=strict), ""))
    if leads is not None and leads in streams:
        leads_arg = None if events_arg == "messages" else "messages"
    elif leads is not None:
        step("reading leads")
        reports.append((read_leads(leads, con, name="leads", strict=strict), "-leads"))
    if streams:
        step("resolving identities and traits as of --as-of")
    return canonical_inputs(events_arg, leads_arg, con, when, account_traits, filters), \
        reports


def _count(con: Any, table: str) -> int:
    [(rows,)] = con.sql(f'SELECT count(*) FROM "{table}"').fetchall()
    return int(rows)


def _unscored(models: list[Model], scores: Any, con: Any, found: Canonical, when: int
              ) -> list[str]:
    """Why a model scored no lead: which input was empty, or which `applies_to` excluded
    every lead (one line per such model)."""
    import json

    done = set(scores.column("model").to_pylist()) if scores.num_rows else set()
    idle = [m for m in models if m.name not in done]
    if not idle:
        return []
    [(events, before, first)] = con.sql(
        f'SELECT count(*), count(*) FILTER (WHERE ts <= {when}), min(ts) '
        f'FROM "{found.events}"').fetchall()
    leads = _count(con, found.leads) if found.leads is not None else 0
    people = f'SELECT lead_id FROM "{found.events}" WHERE ts <= {when}' + (
        f' UNION SELECT lead_id FROM "{found.leads}"' if found.leads is not None else "")
    [(population,)] = con.sql(f"SELECT count(*) FROM ({people}) AS p").fetchall()
    source = "the message stream" if found.stream else "the events"
    if population == 0:
        if events == 0 and leads == 0:
            why = f"{source} holds no events" + (
                f" and no leads at or before --as-of {iso(when)}" if found.stream else
                (" and the leads file no leads" if found.leads is not None else
                 " (and no --leads was given)"))
        else:
            why = (f"no event is at or before --as-of {iso(when)} (the first is at "
                   f"{iso(int(first))})" if events and not before else
                   f"{source} names no lead at or before --as-of {iso(when)}")
        return [f"no lead was scored: {why}"]
    leads_word = f"{population:,} lead{'s' * (population != 1)}"
    return [f"{m.name}: no lead was scored: its applies_to "
            f"{json.dumps(m.applies_to, default=str)} excluded all {leads_word} "
            f"(as of {iso(when)})" for m in idle]


def warn_unmatched(models: list[Model], events: Any, con: Any = None) -> int:
    """Say which rules matched no event (a misspelled event name, most often); the count."""
    from leadscore.engine.batch.coverage import unmatched_rules

    found = unmatched_rules(models, events, con=con)
    for rule in found:
        say(f"warning: {rule}", "yellow", console=err)
    return len(found)


def _check_output(path: Path) -> None:
    """Fail before any work if `path` cannot be written (unknown type, a folder); make its
    folder; say so where it overwrites a file."""
    from leadscore.io.writers import WRITE_SUFFIXES

    output_path(path, "--out", WRITE_SUFFIXES)


def _rejected_path(given: Path | None, out_path: Path, suffix: str) -> Path:
    """Where skipped rows go: `--rejected` (with `suffix` for the leads' file), else beside
    the scores."""
    if given is not None:
        return given if not suffix else given.with_name(f"{given.stem}{suffix}{given.suffix}")
    return out_path.with_name(f"{out_path.stem}.rejected{suffix}.csv")


def _skipped(rows: int, source: str) -> None:
    say(f"skipped {rows:,} bad row{'s' * (rows != 1)} of {source}", "yellow", console=err)


def _scored_from_state(model: str, report: RunReport) -> None:
    say(f"{model}: {report.mode} ({report.reason or 'new files only'}); "
        f"{report.files_read:,} file{'s' * (report.files_read != 1)} read", "dim", console=err)


def _summary(scores: Any, con: Any) -> None:
    """Rows per model, MQLs, disqualified, and counts by grade and temperature."""
    if scores.num_rows == 0:
        return          # `_unscored` says why
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
