"""The registry of scoring engines: every entry of `ENGINES` gets every check of
`test_checks.py` (agrees with the reference, independent of event order, state round trip,
never mutates its inputs), as River's `checks/` does for every estimator.

An engine is a function from a `World` (worlds.py: models, leads, events, accounts, as_of) to
an `Output` (outputs.py: the leads' and accounts' scores by (model, id); the handoffs raised
and the reasons, where the engine gives them). `update_one` is the reference the others must
agree with.

To add an engine, write its `score(world, run)` and add one `Engine` to `ENGINES`:
- turn the world into what the engine reads, and hand each input through `run.given(…)` (the
  mutation check snapshots them there: objects, tables, files and folders);
- where the engine may split its work freely (batches, files), draw the split with `run.draw`
  (hypothesis), so that every check holds for every split;
- write files under `run.folder` (a fresh folder per run); a Spark engine sets `spark=True` and
  finds the session in `run.spark`;
- if it keeps state between runs, write `runs(world, steps, run)`: one run per step (the
  events that arrived, the `as_of` to score at), each starting from the state the run before
  saved, loaded back as a new process would; otherwise say why in `stateless`;
- if it scores no accounts, say why in `no_accounts`;
- `examples`: hypothesis examples of the agreement check (the other checks take a share of
  it); keep slow engines low — `LEADSCORE_CHECK_EXAMPLES` scales every count (e.g. 10 for a
  long soak).

The engines are imported by their current paths, through the public API where there is one;
the internal entry points (`fold_many`, the `--state` runner, the account plan) are imported
here only.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import strategies as st

from leadscore import Scorer, score_many
from leadscore.engine.batch import connect
from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.batch.inputs import table_columns
from leadscore.engine.batch.postgres import score_accounts_postgres, score_postgres
from leadscore.engine.batch.spark import settings as spark_settings
from leadscore.engine.batch.state import score_with_state
from leadscore.engine.incremental.accounts import AccountScorer
from leadscore.engine.incremental.fold_many import fold_many
from leadscore.engine.incremental.scorer import MANY
from leadscore.engine.sql.warehouse import Source, compile_scores, render
from leadscore.engine.sql.warehouse_accounts import compile_account_scores
from leadscore.events import Event, event_from_row, lead_from_row
from leadscore.io.databases import load_postgres
from leadscore.scores import Handoff
from leadscore.timeutil import parse_timestamp
from tests.conftest import postgres_url, require_postgres
from tests.engine.outputs import Output, handoff_row, rows_of
from tests.engine.worlds import World

T = TypeVar("T")
COMPILED_STATELESS = "the compiled statement scores every run from all the events"
SCALE = float(os.environ.get("LEADSCORE_CHECK_EXAMPLES", "1"))

Step = tuple[Sequence[dict[str, Any]], int]     # the event rows that arrived, and as_of


@dataclass
class Run:
    """One run of an engine: where to draw its free choices from, a fresh folder, the Spark
    session, and who watches the inputs it is given."""

    draw: Callable[[st.SearchStrategy[Any]], Any]
    folder: Path
    spark: Any = None
    watch: Callable[[Any], None] | None = None

    def given(self, value: T) -> T:
        """`value` is handed to the engine (the mutation check snapshots it here)."""
        if self.watch is not None:
            self.watch(value)
        return value


@contextmanager
def new_run(data: st.DataObject, spark: Any = None, watch: Callable[[Any], None] | None = None
            ) -> Iterator[Run]:
    """A run drawing from hypothesis' `data`, in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        yield Run(data.draw, Path(folder), spark, watch)


@dataclass(frozen=True)
class Engine:
    """A scoring engine as the checks see it: `score` a world at its as_of; `runs` from the
    state each run saves (None for a stateless engine: `stateless` says why); `no_accounts`
    says why it scores no accounts, if it does not; `examples` of the agreement check; `spark`
    when it needs the test run's SparkSession (its checks are marked `spark`)."""

    name: str
    score: Callable[[World, Run], Output]
    runs: Callable[[World, Sequence[Step], Run], list[Output]] | None = None
    stateless: str = ""          # why there is no `runs`
    no_accounts: str = ""        # why `score` gives no account scores
    examples: int = 50
    spark: bool = False
    postgres: bool = False       # needs the real PostgreSQL (marked `postgres`)

    def param(self) -> Any:
        marks = [pytest.mark.spark] if self.spark else []
        if self.postgres:
            marks.append(pytest.mark.postgres)
        return pytest.param(self, id=self.name, marks=marks)

    def examples_for(self, share: float, least: int = 2) -> int:
        """Examples of a check that takes `share` of the agreement check's."""
        return max(least, round(self.examples * share * SCALE))

    def session(self, request: pytest.FixtureRequest) -> Any:
        """The test run's SparkSession for a Spark engine (tests/engine/conftest.py); for a
        PostgreSQL engine, skips (or fails in CI) without a reachable server."""
        if self.postgres:
            require_postgres()
        return request.getfixturevalue("spark") if self.spark else None


# --------------------------------------------------------------- the incremental engines

Fold = Callable[[Scorer, list[Event], Run], list[Handoff]]


def fold_one(scorer: Scorer, events: list[Event], run: Run) -> list[Handoff]:
    """`Scorer.update_one`, event by event."""
    return [u.handoff for e in events for u in scorer.update_one(e) if u.handoff]


def fold_in_batches(scorer: Scorer, events: list[Event], run: Run) -> list[Handoff]:
    """`Scorer.update_many` over batches cut anywhere. update_many folds a batch of `MANY`
    events or more with the vectorised `fold_many`, fewer one by one; a smaller batch goes
    either way (drawn): to update_many, or to `fold_many` directly, so that small worlds
    exercise the vectorised fold too."""
    cuts = sorted(run.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    handoffs: list[Handoff] = []
    for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True):
        batch = events[start:end]
        if 1 < len(batch) < MANY and run.draw(st.booleans()):
            handoffs += fold_many(scorer, batch)
        else:
            handoffs += scorer.update_many(batch)
    return handoffs


def new_scorer(world: World, run: Run) -> Scorer:
    """A scorer of the world's models that knows its leads (traits hold at every as_of)."""
    scorer = Scorer(list(run.given(world.models)))
    for row in world.leads:
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, run.given(lead.traits), run.given(lead.account), as_of=0)
    return scorer


def reloaded(scorer: Scorer) -> Scorer:
    """A new Scorer with `scorer`'s leads saved and loaded back through JSON (as the store
    does between transactions)."""
    again = Scorer([m.model for m in scorer.models.values()])
    for lead_id in scorer.leads():
        again.load_state(json.loads(json.dumps(scorer.state(lead_id))))
    return again


def scorer_output(world: World, scorer: Scorer, as_of: int, handoffs: list[Handoff],
                  run: Run) -> Output:
    accounts = None
    if world.accounts is not None:      # account scores are a view of the leads' state
        book = AccountScorer(scorer)
        for row in world.accounts:
            book.identify_account(row["account_id"], run.given(
                {k: v for k, v in row.items() if k != "account_id" and v is not None}),
                as_of=as_of)
        accounts = {(a.model, a.account_id): a.row() for a in book.scores(as_of=as_of)}
    scores = list(scorer.scores(as_of=as_of))
    return Output({(s.model, s.lead_id): s.row() for s in scores}, accounts,
                  [handoff_row(h) for h in handoffs],
                  {(s.model, s.lead_id): [tuple(r) for r in s.reasons] for s in scores})


def incremental(fold: Fold) -> Callable[[World, Run], Output]:
    def score(world: World, run: Run) -> Output:
        scorer = new_scorer(world, run)
        events = run.given([e for e in map(event_from_row, world.events)
                            if e.timestamp <= world.as_of])
        return scorer_output(world, scorer, world.as_of, fold(scorer, events, run), run)
    return score


def incremental_runs(fold: Fold, reload: bool = True
                     ) -> Callable[[World, Sequence[Step], Run], list[Output]]:
    """Successive runs, each scored at its as_of, the state saved and loaded back between
    them. An event after a run's as_of has not happened yet: it waits for the run whose as_of
    reaches it (a batch engine reading it from a file ignores it until then)."""
    def runs(world: World, steps: Sequence[Step], run: Run) -> list[Output]:
        scorer = new_scorer(world, run)
        waiting: list[Event] = []
        outputs = []
        for rows, as_of in steps:
            arrived = waiting + [event_from_row(r) for r in rows]
            due = run.given([e for e in arrived if e.timestamp <= as_of])
            waiting = [e for e in arrived if e.timestamp > as_of]
            outputs.append(scorer_output(world, scorer, as_of, fold(scorer, due, run), run))
            if reload:
                scorer = reloaded(scorer)
        return outputs
    return runs


# ----------------------------------------------------------------------- the batch engines

def batch_inputs(world: World, run: Run, *, files: bool) -> tuple[Any, Any, Any]:
    """Events, leads and accounts as Arrow tables, or (drawn, with `files`) as Parquet files."""
    tables = (world.events_table(), world.leads_table(),
              world.accounts_table() if world.accounts is not None else None)
    if not files or not run.draw(st.booleans()):
        events, leads, accounts = (run.given(t) for t in tables)
        return events, leads, accounts
    paths: list[str | None] = []
    for name, table in zip(("events", "leads", "accounts"), tables, strict=True):
        if table is None:
            paths.append(None)
            continue
        path = run.folder / f"{name}.parquet"
        pq.write_table(table, path)
        paths.append(str(run.given(path)))
    return paths[0], paths[1], paths[2]


def sql_plan(**engine: Any) -> Callable[[World, Run], Output]:
    """The batch SQL plan (`score_many`, and `score_accounts` for accounts) on DuckDB, or with
    `engine="spark"` on the run's Spark session."""
    def score(world: World, run: Run) -> Output:
        on = dict(engine, spark=run.spark) if engine else {}
        events, leads, accounts = batch_inputs(world, run, files=not engine)
        models = list(run.given(world.models))
        scores = score_many(models, events, leads, as_of=world.as_of, **on)
        account_rows = None
        if accounts is not None:
            account_rows = rows_of(score_accounts(models, events, leads, accounts,
                                                  as_of=world.as_of, scores=scores, **on),
                                   "account_id")
        return Output(rows_of(scores), account_rows)
    return score


# ------------------------------------------------------------ the compiled plan (#20)

COMPILED_MISSING = ("interests",)
NO_INTERESTS = "the compiled statement gives the scores' columns, not the interest profiles"


def compiled_on_duckdb(world: World, run: Run) -> Output:
    """`leadscore compile --dialect duckdb` over the world's tables in DuckDB (the timestamp
    a TIMESTAMPTZ column, as a warehouse loader writes it), run as one statement; with
    accounts, the account scores' statement (`--accounts-table`, `--accounts-out`) too."""
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        leads = world.leads_table()
        tables = [("events", world.events_table()), ("leads", leads)]
        if world.accounts is not None:
            tables.append(("accounts", world.accounts_table()))
        for name, frame in tables:
            con.register("__arrow", run.given(frame))
            con.sql(f'CREATE TABLE "{name}" AS SELECT * FROM "__arrow"')
            con.unregister("__arrow")
        models = list(run.given(world.models))
        events = Source("events", table_columns(con, "events"))
        lead_source = Source("leads", table_columns(con, "leads")) if leads.num_rows else None
        statement = compile_scores(models, events, lead_source, as_of_us=world.as_of,
                                   dialect="duckdb")
        result = con.sql(render(statement, "duckdb")).to_arrow_table()
        accounts = None
        if world.accounts is not None:
            statement = compile_account_scores(
                models, events, lead_source, Source("accounts", table_columns(con, "accounts")),
                as_of_us=world.as_of, dialect="duckdb")
            accounts = rows_of(con.sql(render(statement, "duckdb")).to_arrow_table(),
                               "account_id")
    finally:
        con.close()
    return Output(rows_of(result), accounts, missing=COMPILED_MISSING)


def in_postgres(world: World, run: Run) -> Output:
    """`leadscore score --engine postgres`: the world's tables loaded into a fresh schema of
    the real PostgreSQL, scored there (`score_postgres`; the accounts: `score_accounts_postgres`
    with the accounts table)."""
    url = postgres_url()
    schema = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        leads = world.leads_table()
        load_postgres(url, f"{schema}.events", run.given(world.events_table()))
        if leads.num_rows:
            load_postgres(url, f"{schema}.leads", run.given(leads))
        models = list(run.given(world.models))
        lead_table = f"{schema}.leads" if leads.num_rows else None
        scores = score_postgres(models, url, f"{schema}.events", lead_table, as_of=world.as_of)
        accounts = None
        if world.accounts is not None:
            load_postgres(url, f"{schema}.accounts", run.given(world.accounts_table()))
            accounts = rows_of(score_accounts_postgres(
                models, url, f"{schema}.events", lead_table, f"{schema}.accounts",
                as_of=world.as_of), "account_id")
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    return Output(rows_of(scores), accounts, missing=COMPILED_MISSING)


SPARK_TYPES = {"string": "string", "timestamp[us, tz=UTC]": "timestamp", "int64": "bigint",
               "double": "double", "bool": "boolean"}


def compiled_on_spark(world: World, run: Run) -> Output:
    """`leadscore compile --dialect spark` run by `spark.sql` over temp views of the world's
    tables (the session in UTC, as the Spark runner sets it); with accounts, the account
    scores' statement too."""
    spark = run.spark
    sources: dict[str, Source] = {}
    tables = [("events", world.events_table()), ("leads", world.leads_table())]
    if world.accounts is not None:
        tables.append(("accounts", world.accounts_table()))
    for name, frame in tables:
        if name == "leads" and not frame.num_rows:
            continue
        view = f"{name}_{uuid.uuid4().hex[:8]}"
        schema = ", ".join(f"`{f.name}` {SPARK_TYPES.get(str(f.type), 'string')}"
                           for f in frame.schema)
        data = spark.createDataFrame(run.given(frame)) if frame.num_rows else \
            spark.createDataFrame([], schema)
        data.createOrReplaceTempView(view)
        sources[name] = Source(view, {f.name: f.dataType.simpleString()
                                      for f in spark.table(view).schema.fields})
    accounts = None
    try:
        with spark_settings(spark):
            models = list(run.given(world.models))
            statement = compile_scores(models, sources["events"], sources.get("leads"),
                                       as_of_us=world.as_of, dialect="spark")
            result = spark.sql(render(statement, "spark").rstrip().rstrip(";")).toArrow()
            if "accounts" in sources:
                statement = compile_account_scores(
                    models, sources["events"], sources.get("leads"), sources["accounts"],
                    as_of_us=world.as_of, dialect="spark")
                accounts = rows_of(spark.sql(render(statement, "spark").rstrip().rstrip(";"))
                                   .toArrow(), "account_id")
    finally:
        for source in sources.values():
            spark.catalog.dropTempView(source.name)
    return Output(rows_of(result), accounts, missing=COMPILED_MISSING)


# -------------------------------------------------------------------------------- --state

def write_events(rows: Sequence[dict[str, Any]], world: World, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(world.events_table(rows), path)


def state_inputs(world: World, run: Run) -> tuple[Path, Path]:
    events, leads = run.folder / "events", run.folder / "leads.parquet"
    events.mkdir(parents=True, exist_ok=True)
    pq.write_table(world.leads_table(), leads)
    return events, leads


def state_scores(world: World, events: Path, leads: Path, as_of: int, state: Path,
                 spark: Any = None) -> Output:
    """One `--state` run: every model from its state plus the files not read before, on a
    new connection (a new process, as far as the state can tell), or on the Spark session
    `spark` (its temporary views of earlier runs dropped: only the folder carries over)."""
    if spark is not None:
        from leadscore.engine.batch.spark import settings

        spark.catalog.clearCache()
        for view in spark.catalog.listTables():
            if view.isTemporary:
                spark.catalog.dropTempView(view.name)
        with settings(spark):
            tables = [score_with_state(model, str(events), str(leads), as_of, state, spark)[0]
                      for model in sorted(world.models, key=lambda m: m.name)]
        return Output(rows_of(pa.concat_tables(tables)))
    con = connect()
    try:
        tables = [score_with_state(model, str(events), str(leads), as_of, state, con)[0]
                  for model in sorted(world.models, key=lambda m: m.name)]
    finally:
        con.close()
    return Output(rows_of(pa.concat_tables(tables)))


def state_score(world: World, run: Run) -> Output:
    """A state built from scratch over partition folders: either in time order (each holds a
    later stretch of time, as `month=…` folders do, so the rebuild closes the buckets of each
    before folding the next) or with any event in any partition."""
    events, leads = state_inputs(world, run)
    rows = list(world.events)
    count = run.draw(st.integers(1, 3))
    if run.draw(st.booleans()):
        rows.sort(key=lambda e: parse_timestamp(e["timestamp"]))
        cuts = sorted(run.draw(st.lists(st.integers(0, len(rows)), min_size=count - 1,
                                        max_size=count - 1)))
        parts = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    else:
        where = run.draw(st.lists(st.integers(0, count - 1), min_size=len(rows),
                                  max_size=len(rows)))
        parts = [[r for r, p in zip(rows, where, strict=True) if p == n] for n in range(count)]
    for number, part in enumerate(parts):
        write_events(part, world, events / f"part={number}" / "part-0.parquet")
    for value in (events, leads, world.models):
        run.given(value)
    return state_scores(world, events, leads, world.as_of, run.folder / "state", run.spark)


def state_runs(world: World, steps: Sequence[Step], run: Run) -> list[Output]:
    """A daily run per step: the step's events in a new `day=…` file (late events and events
    after as_of included), scored from the state the run before saved."""
    events, leads = state_inputs(world, run)
    outputs = []
    for day, (rows, as_of) in enumerate(steps):
        write_events(rows, world, events / f"day={day}" / "part-0.parquet")
        outputs.append(state_scores(world, events, leads, as_of, run.folder / "state",
                                    run.spark))
    return outputs


# ------------------------------------------------------------------------------ registry

REFERENCE = Engine("update_one", incremental(fold_one), incremental_runs(fold_one),
                   examples=60)
ENGINES = {engine.name: engine for engine in (
    REFERENCE,
    Engine("update_many", incremental(fold_in_batches), incremental_runs(fold_in_batches),
           examples=80),
    Engine("duckdb", sql_plan(), stateless="the SQL plan scores every run from all the events",
           examples=60),
    Engine("spark", sql_plan(engine="spark"),
           stateless="the SQL plan scores every run from all the events", examples=10,
           spark=True),
    Engine("state", state_score, state_runs, examples=25,
           no_accounts="`--accounts` cannot be combined with `--state` yet"),
    Engine("spark-state", state_score, state_runs, examples=6, spark=True,
           no_accounts="`--accounts` cannot be combined with `--state` yet"),
    Engine("compiled-duckdb", compiled_on_duckdb, stateless=COMPILED_STATELESS,
           examples=20),
    Engine("postgres", in_postgres, stateless=COMPILED_STATELESS,
           examples=10, postgres=True),
    Engine("compiled-spark", compiled_on_spark, stateless=COMPILED_STATELESS,
           examples=3, spark=True),
)}


def reference_runs(world: World, steps: Sequence[Step], run: Run) -> list[Output]:
    """What the runs of a stateful engine must give: `update_one` over the same events, in
    the same order, in one Scorer that is never saved."""
    return incremental_runs(fold_one, reload=False)(world, steps, run)
