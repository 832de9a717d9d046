"""The batch engine on Apache Spark: the plans DuckDB runs (`engine.sql.plan`, the interest and
account plans, dialect "spark"), rendered by sqlglot and executed by Spark SQL — no second
implementation of the semantics.

Inputs are Spark DataFrames, paths Spark reads (local, `hdfs://`, `s3a://`, … — `.parquet`
files or hive-partitioned folders of them, `.csv`) or in-memory tables (Arrow, pandas, polars),
which `leadscore.io` canonicalises exactly as for DuckDB before Spark gets them. Paths and
DataFrames are canonicalised here, in Spark, to the columns of `leadscore.io.readers`.

Spark settings the plan needs, set for the duration of a run and restored afterwards:
`spark.sql.session.timeZone=UTC` (days and epochs are computed in the session time zone) and
`spark.sql.ansi.enabled=false` — sqlglot renders `TRY_CAST` as a plain `CAST` for Spark, which
ANSI mode turns into an error on text such as "n/a" where the model format says non-match —
and `spark.sql.constraintPropagation.enabled=false`, which works around an optimiser failure
(see SESSION_CONF).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute

from leadscore.engine.batch.filters import (
    EMAIL_COLUMNS,
    Read,
    agent_verdicts,
    ip_verdicts,
    judged_sql,
    lead_verdicts,
    ordered,
    typed_columns,
    warn_filtered,
)
from leadscore.engine.batch.inputs import read_accounts, warn_rejected
from leadscore.engine.batch.schema import (
    ACCOUNT_SCHEMA,
    INTEREST_TYPE,
    SCORE_SCHEMA,
    account_table,
    append_links,
    link_table,
    output_schema,
    typed,
)
from leadscore.engine.batch.spark_columns import DIALECT, timestamp_sql, value_columns
from leadscore.engine.sql.account_plan import compile_account_plan, links_query
from leadscore.engine.sql.interest_plan import compile_interest_plan
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.errors import EngineError, InputError
from leadscore.events import EVENT_TYPES
from leadscore.filters import Filters
from leadscore.io.sqltext import literal, quote
from leadscore.model.accounts import compile_account
from leadscore.model.schema import Model
from leadscore.scores import OUTPUT_COLUMNS

DEFAULT_MASTER = "local[*]"
# Session settings the plan relies on (see the module docstring). Constraint propagation off:
# Spark 4.x's optimiser failed on the account plan of a stream that names no account
# ("key not found: account_id#…" in Union's constraints), and it only adds inferred filters.
SESSION_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false",
                "spark.sql.constraintPropagation.enabled": "false"}
_sequence = count()



def session(master: str = DEFAULT_MASTER, app_name: str = "leadscore", **conf: str) -> Any:
    """A SparkSession for scoring (`master`: `local[*]`, `spark://…`, `yarn`, `k8s://…`)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("the Spark engine needs PySpark: pip install 'leadscore[spark]'") \
            from None
    if master.startswith("local"):
        # Python workers (the content ids of messages without messageId) run this
        # interpreter, with leadscore's dependencies, not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**SESSION_CONF, "spark.ui.enabled": "false",
                         "spark.ui.showConsoleProgress": "false", **conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@contextmanager
def settings(spark: Any) -> Iterator[None]:
    """SESSION_CONF for the duration of a run; the caller's values restored afterwards."""
    before = {key: spark.conf.get(key, None) for key in SESSION_CONF}
    for key, value in SESSION_CONF.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


# ----------------------------------------------------------------------------- inputs

def _is_frame(source: Any) -> bool:
    return type(source).__module__.startswith("pyspark.")


def _load(spark: Any, source: str) -> Any:
    """A path Spark reads: `.csv` (header row, text columns) or Parquet (a file or a folder,
    hive partitions such as `month=2026-01/` become columns)."""
    lowered = source.lower().rstrip("/")
    try:
        if lowered.endswith((".csv", ".tsv", ".txt")):
            return spark.read.option("header", "true").option("inferSchema", "false") \
                .option("sep", "\t" if lowered.endswith(".tsv") else ",").csv(source)
        return spark.read.option("mergeSchema", "true").parquet(source)
    except InputError:
        raise
    except Exception as exc:   # Spark's AnalysisException: path not found, not Parquet, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{source}: Spark cannot read it: {first}") from None


def _canonical_events(frame: Any, label: str) -> tuple[list[tuple[str, str, str]], str]:
    """Canonical event columns (name, SQL, type) and the SQL of a good row."""
    fields = {f.name: f.dataType for f in frame.schema.fields}
    lead_col = "lead_id" if "lead_id" in fields else None
    ts_col = next((c for c in ("timestamp", "ts") if c in fields), None)
    for wanted, found in (("lead_id", lead_col), ("timestamp", ts_col)):
        if found is None:
            raise InputError(f"{label}: no column {wanted!r}; columns found: "
                             f"{', '.join(fields) or '(none)'}")
    assert lead_col is not None and ts_col is not None
    lead = f"CAST({quote(lead_col, DIALECT)} AS STRING)"
    ts = timestamp_sql(quote(ts_col, DIALECT), fields[ts_col], label)
    raw_path = f"CAST({quote('path', DIALECT)} AS STRING)" if "path" in fields \
        else "CAST(NULL AS STRING)"
    kind = (f"nullif(CAST({quote('type', DIALECT)} AS STRING), '')" if "type" in fields
            else "CAST(NULL AS STRING)")
    kind = f"coalesce({kind}, CASE WHEN {raw_path} <> '' THEN 'page' ELSE 'track' END)"
    event = f"CAST({quote('event', DIALECT)} AS STRING)" if "event" in fields \
        else "CAST(NULL AS STRING)"
    out = [("lead_id", lead, "STRING"), ("ts", ts, "BIGINT"), ("type", kind, "STRING"),
           ("event", event, "STRING"),
           ("path", f"regexp_replace({raw_path}, '[?#].*$', '')", "STRING")]
    for name, dtype in fields.items():
        if name in (lead_col, ts_col, "lead_id", "timestamp", "type", "event", "path"):
            continue
        canonical = name if name.startswith(("context.", "properties.")) \
            else f"properties.{name}"
        out += value_columns(quote(name, DIALECT), canonical, dtype)
    known = ", ".join(literal(t, DIALECT) for t in EVENT_TYPES)
    good = (f"{lead} IS NOT NULL AND {lead} <> '' AND ({ts}) IS NOT NULL "
            f"AND {kind} IN ({known})")
    return _dedupe(out), good


def _canonical_leads(frame: Any, label: str) -> tuple[list[tuple[str, str, str]], str]:
    fields = {f.name: f.dataType for f in frame.schema.fields}
    if "lead_id" not in fields:
        raise InputError(f"{label}: no column 'lead_id'; columns found: "
                         f"{', '.join(fields) or '(none)'}")
    lead = f"CAST({quote('lead_id', DIALECT)} AS STRING)"
    out = [("lead_id", lead, "STRING")]
    for name, dtype in fields.items():
        if name == "lead_id":
            continue
        canonical = name if name.startswith(("traits.", "account.")) else f"traits.{name}"
        out += value_columns(quote(name, DIALECT), canonical, dtype)
    return _dedupe(out), f"{lead} IS NOT NULL AND {lead} <> ''"


def _dedupe(columns: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return list({c[0]: c for c in columns}.values())


def _frame(spark: Any, table: pa.Table, types: dict[str, str], name: str) -> str:
    """An Arrow table as a Spark temp view `name` (typed even when empty)."""
    frame = spark.createDataFrame(table) if table.num_rows else spark.createDataFrame(
        [], ", ".join(f"{quote(n, DIALECT)} {t}" for n, t in types.items()))
    frame.createOrReplaceTempView(name)
    return name


def register(spark: Any, source: Any, kind: str) -> tuple[str, dict[str, str], int]:
    """Register `source` as a canonical temp view: (view name, column types, rows rejected)."""
    name = f"leadscore_{kind}_{next(_sequence)}"
    if not _is_frame(source) and not isinstance(source, str):
        # In-memory tables: leadscore.io canonicalises them exactly as for DuckDB.
        from leadscore.io.readers import read_events, read_leads

        con = duckdb.connect()
        try:
            reader = read_events if kind == "events" else read_leads
            report = reader(source, con, name="canonical")
            table = con.sql('SELECT * FROM "canonical"').to_arrow_table()
        finally:
            con.close()
        types = {n: _spark_type(t) for n, t in report.columns.items()}
        return _frame(spark, table, types, name), types, report.rejected
    label = source if isinstance(source, str) else f"<Spark DataFrame {kind}>"
    frame = _load(spark, source) if isinstance(source, str) else source
    raw = f"{name}_raw"
    frame.createOrReplaceTempView(raw)
    columns, good = (_canonical_events if kind == "events" else _canonical_leads)(frame, label)
    select = ", ".join(f"{sql} AS {quote(col, DIALECT)}" for col, sql, _ in columns)
    checked = f"SELECT {select}, ({good}) AS `_good` FROM {quote(raw, DIALECT)}"
    if kind == "leads":   # a lead_id given twice keeps its first row
        checked = (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY lead_id ORDER BY "
                   f"`_row`) AS `_n` FROM (SELECT *, monotonically_increasing_id() AS `_row` "
                   f"FROM ({checked}))) WHERE `_n` = 1 OR NOT `_good`")
    names = ", ".join(quote(col, DIALECT) for col, _, _ in columns)
    spark.sql(f"SELECT {names} FROM ({checked}) WHERE `_good`").createOrReplaceTempView(name)
    total = frame.count()
    kept = spark.table(name).count()
    return name, {col: typ for col, _, typ in columns}, total - kept


def register_files(spark: Any, files: Sequence[str], name: str) -> str:
    """Event files (Parquet or CSV, not mixed) as the canonical events view `name`, bad rows
    left out and not counted (`--state` reads a few files at a time; `register` counts)."""
    lowered = [f.lower() for f in files]
    if all(f.endswith((".parquet", ".pq")) for f in lowered):
        frame = spark.read.option("mergeSchema", "true").parquet(*files)
    elif all(f.endswith(".csv") for f in lowered):
        frame = spark.read.option("header", "true").option("inferSchema", "false").csv(
            list(files))
    else:
        raise InputError(f"{files[0]}: mixed file types; use Parquet or CSV throughout")
    raw = f"{name}_raw"
    frame.createOrReplaceTempView(raw)
    columns, good = _canonical_events(frame, files[0])
    select = ", ".join(f"{sql} AS {quote(col, DIALECT)}" for col, sql, _ in columns)
    spark.sql(f"SELECT {select} FROM {quote(raw, DIALECT)} WHERE {good}") \
        .createOrReplaceTempView(name)
    return name


def _spark_type(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    return {"VARCHAR": "STRING"}.get(upper, upper)


# ----------------------------------------------------------------------------- scoring

def plan_sql(model: Model, events_view: str, events_columns: dict[str, str],
             leads_view: str | None, leads_columns: dict[str, str] | None,
             as_of_us: int) -> str:
    """The model's batch plan rendered for Spark SQL."""
    plan = compile_plan(model, events_columns, leads_columns, as_of_us,
                        options=PlanOptions(events_table=events_view, leads_table=leads_view,
                                            dialect=DIALECT))
    return plan.sql(dialect=DIALECT)


def _interests_sql(model: Model, events_view: str, events_columns: dict[str, str],
                   as_of_us: int) -> str | None:
    """Per lead, its ranked interests as an array of (topic, weight), or None."""
    plan = compile_interest_plan(model, events_columns, as_of_us, events_table=events_view,
                                 dialect=DIALECT)
    if plan is None:
        return None
    return ("SELECT lead_id, transform(array_sort(collect_list(struct(`rank`, topic, weight))), "
            "x -> named_struct('topic', x.topic, 'weight', x.weight)) AS interests "
            f"FROM ({plan.sql(dialect=DIALECT)}) GROUP BY lead_id")


_NO_INTERESTS = "CAST(array() AS ARRAY<STRUCT<topic: STRING, weight: DOUBLE>>)"


def score_frame(models: Model | Sequence[Model], events: Any, leads: Any = None, *,
                as_of_us: int, spark: Any, filters: Filters | None = None
                ) -> tuple[Any, int | None, int | None]:
    """The scores as a Spark DataFrame (timestamps as µs integers; the columns of
    OUTPUT_COLUMNS and `interests`), and the rows of events and leads that were rejected
    (of a message stream: its messages, counted as events). The session's SESSION_CONF must
    be in force while it runs."""
    model_list = [models] if isinstance(models, Model) else list(models)
    found = inputs(spark, events, leads, None, as_of_us, filters)
    return score_views(model_list, found.events, found.events_columns, found.leads,
                       found.leads_columns, as_of_us=as_of_us, spark=spark), \
        found.bad_events, found.bad_leads


@dataclass(frozen=True)
class Inputs:
    """Canonical views on Spark for one as_of, their columns, and the rows left out."""

    events: str
    events_columns: dict[str, str]
    leads: str | None
    leads_columns: dict[str, str] | None
    accounts: str | None = None
    accounts_columns: dict[str, str] = field(default_factory=dict)
    bad_events: int | None = None
    bad_leads: int | None = None
    stream: bool = False


def inputs(spark: Any, events: Any, leads: Any, accounts: Any, as_of_us: int,
           filters: Filters | None = None) -> Inputs:
    """`found_inputs`, the events `filters` catch left out (default `Filters()`; as on
    DuckDB: `engine.batch.filters`)."""
    found = found_inputs(spark, events, leads, accounts, as_of_us)
    kept = filter_view(spark, found, Filters() if filters is None else filters,
                       events if isinstance(events, str) else "events")
    return replace(found, events=kept)


def filter_view(spark: Any, found: Inputs, filters: Filters, source: str) -> str:
    """The name of a view of the events without those a filter catches (the events' own
    view where none can be); a `FilteredEventsWarning` counts them per filter. The verdict
    tables and the SQL are DuckDB's (`engine.batch.filters`)."""
    kept, counts = filtered_view(spark, found, filters)
    if counts:
        warn_filtered(source, counts, stacklevel=6)
    return kept


def filtered_view(spark: Any, found: Inputs, filters: Filters) -> tuple[str, dict[str, int]]:
    """`filter_view` without the warning: the view, and how many each filter caught."""
    def q(name: str) -> str:
        return quote(name, DIALECT)

    read = Read.of(found.events_columns, filters)
    tables: dict[str, str | None] = {"agent": None, "ip": None, "lead": None}
    for kind, column, verdicts in (("agent", read.agent, agent_verdicts),
                                   ("ip", read.ip, ip_verdicts)):
        if column is not None:
            values = [r[0] for r in spark.sql(
                f"SELECT DISTINCT {q(column)} FROM {q(found.events)} WHERE {q(column)} IS NOT "
                "NULL").collect()]
            caught = verdicts(values, filters)
            if caught[kind]:
                tables[kind] = _frame(spark, typed_columns(caught), {},
                                      f"leadscore_{kind}_verdicts_{next(_sequence)}")
    if filters.lead_ids or filters.internal_domains:
        email = next((c for c in EMAIL_COLUMNS if c in (found.leads_columns or {})), None)
        rows = [] if found.leads is None else [tuple(r) for r in spark.sql(
            f"SELECT lead_id, {q(email) if email else 'NULL'} FROM {q(found.leads)}"
        ).collect()]
        caught = lead_verdicts(rows, filters)
        if caught["filter"]:
            tables["lead"] = _frame(spark, typed_columns(caught), {},
                                    f"leadscore_lead_verdicts_{next(_sequence)}")
    judged = judged_sql(found.events, read, tables, filters, q)
    if judged is None:
        return found.events, {}
    joined, verdict = judged
    counts = {str(r[0]): int(r[1]) for r in spark.sql(
        f"SELECT {verdict}, count(*) {joined} WHERE {verdict} IS NOT NULL GROUP BY 1"
    ).collect()}
    kept = f"leadscore_kept_{next(_sequence)}"
    spark.sql(f"SELECT e.* {joined} WHERE {verdict} IS NULL").createOrReplaceTempView(kept)
    return kept, ordered(counts)


def found_inputs(spark: Any, events: Any, leads: Any, accounts: Any, as_of_us: int
                 ) -> Inputs:
    """Events, leads and accounts (each optional but events) as canonical Spark views at
    `as_of_us`. A Segment JSON path as events or leads is a message stream (both: one
    history), read by Spark and turned into the canonical views by the stream stage
    (`spark_stream`); a leads or accounts table beside it is the base it updates."""
    from leadscore.engine.batch.spark_stream import is_stream, read_messages, run_stream

    accounts_view, accounts_columns = (None, {}) if accounts is None else \
        register_accounts(spark, accounts)
    streams = [str(s) for s in (events, leads) if s is not None and is_stream(s)]
    if not streams:
        events_view, events_columns, bad_events = register(spark, events, "events")
        leads_view, leads_columns, bad_leads = (None, None, None) if leads is None else \
            register(spark, leads, "leads")
        return Inputs(events_view, events_columns, leads_view, leads_columns, accounts_view,
                      accounts_columns, bad_events, bad_leads)
    messages = read_messages(spark, list(dict.fromkeys(streams)))
    base, bad_leads = None, None
    if leads is not None and not is_stream(leads):
        view, columns, bad_leads = register(spark, leads, "leads")
        base = (view, columns)
    made = run_stream(spark, messages, as_of_us, base_leads=base,
                      base_accounts=(accounts_view, accounts_columns) if accounts_view
                      else None)
    events_view, events_columns, bad_events = made.events, made.events_columns, \
        messages.rejected
    if events is not None and not is_stream(events):
        # the stream is the leads: its bad messages are counted there
        events_view, events_columns, bad_events = register(spark, events, "events")
        bad_leads = messages.rejected
    return Inputs(events_view, events_columns, made.leads, made.leads_columns, made.accounts,
                  made.accounts_columns, bad_events, bad_leads, stream=True)


def score_views(models: Sequence[Model], events_view: str, events_columns: dict[str, str],
                leads_view: str | None, leads_columns: dict[str, str] | None, *,
                as_of_us: int, spark: Any) -> Any:
    """`score_frame` over canonical views already registered (`register`)."""
    frames = []
    for model in sorted(models, key=lambda m: m.name):
        plan = compile_plan(model, events_columns, leads_columns, as_of_us,
                            options=PlanOptions(events_table=events_view,
                                                leads_table=leads_view, dialect=DIALECT))
        sql = (staged(spark, plan, "ev") if STAGE_EVENTS else plan).sql(dialect=DIALECT)
        interests = _interests_sql(model, events_view, events_columns, as_of_us)
        if interests is None:
            sql = f"SELECT *, {_NO_INTERESTS} AS interests FROM ({sql})"
        else:
            sql = (f"SELECT s.*, coalesce(i.interests, {_NO_INTERESTS}) AS interests "
                   f"FROM ({sql}) AS s LEFT JOIN ({interests}) AS i ON s.lead_id = i.lead_id "
                   "ORDER BY s.lead_id")
        try:
            frames.append(spark.sql(sql))
        except Exception as exc:   # Spark's AnalysisException / ParseException
            raise EngineError(f"model {model.name!r}: the Spark plan failed: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    if not frames:
        raise InputError("no model to score")
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionAll(frame)
    return result.select(*(quote(c, DIALECT) for c in (*OUTPUT_COLUMNS, "interests")))


# Stage the plan's `ev` CTE (the events scan with every rule's flags) as a cached frame: Spark
# inlines a CTE at each of its (six) references, scanning and matching the events again for
# each, where DuckDB's runner stages it as a temporary table. LEADSCORE_SPARK_STAGE=0: inline.
STAGE_EVENTS = os.environ.get("LEADSCORE_SPARK_STAGE", "1") != "0"
_STAGED: list[Any] = []


def staged(spark: Any, plan: Any, name: str) -> Any:
    """`plan` (sqlglot) with its CTE `name` replaced by a cached Spark view of it; the frame
    stays cached until `release`."""
    from sqlglot import exp

    plan = plan.copy()
    ctes = plan.args["with_"].expressions
    cte = next(c for c in ctes if c.alias == name)
    view = f"leadscore_{name}_{next(_sequence)}"
    frame = spark.sql(cte.this.sql(dialect=DIALECT)).cache()
    frame.createOrReplaceTempView(view)
    _STAGED.append(frame)
    plan.args["with_"].set("expressions", [c for c in ctes if c is not cte])
    for found in plan.find_all(exp.Table):
        if found.name == name:
            found.set("this", exp.to_identifier(view, quoted=True))
    return plan


def release() -> None:
    """Unpersist the frames `staged` cached (call once the scores are collected/written)."""
    while _STAGED:
        _STAGED.pop().unpersist()


def score_many(models: Model | Sequence[Model], events: Any, leads: Any = None, *,
               as_of_us: int, spark: Any, filters: Filters | None = None) -> pa.Table:
    """`leadscore.score_many` on Spark: the scores collected to an Arrow table."""
    model_list = [models] if isinstance(models, Model) else list(models)
    if not model_list:
        return output_schema(SCORE_SCHEMA).empty_table()
    with settings(spark):
        frame, bad_events, bad_leads = score_frame(model_list, events, leads,
                                                   as_of_us=as_of_us, spark=spark,
                                                   filters=filters)
        try:
            scored = to_arrow(frame)
        finally:
            release()
    warn_bad([(events, bad_events, rejected_kind(events, "events")),
              (leads, bad_leads, rejected_kind(leads, "leads"))])
    return scored


def rejected_kind(source: Any, kind: str) -> str:
    """What a source's bad rows are: "messages" of a stream (as on DuckDB), else `kind`."""
    from leadscore.engine.batch.spark_stream import is_stream

    return "messages" if source is not None and is_stream(source) else kind


def warn_bad(inputs: Sequence[tuple[Any, int | None, str]], stacklevel: int = 5) -> None:
    """A `RejectedRowsWarning` for each (source, rows rejected, kind) that had any: used
    without them, but never silently (as on DuckDB). `stacklevel` 5: the user's call, through
    the engine's entry point and the API function's."""
    for source, bad, kind in inputs:
        if bad:
            label = source if isinstance(source, str) else f"<{type(source).__name__}>"
            warn_rejected(label, bad, kind, stacklevel=stacklevel)


def to_arrow(frame: Any) -> pa.Table:
    """A scores frame collected to Arrow, in the DuckDB engine's output schema."""
    try:
        result = frame.toArrow()
    except Exception as exc:
        raise EngineError(f"the Spark plan failed: {str(exc).strip().splitlines()[0]}") \
            from None
    interests = result.column("interests").cast(INTEREST_TYPE)
    return typed(result.drop_columns(["interests"])).append_column(
        pa.field("interests", INTEREST_TYPE), interests)


def write_frame(frame: Any, path: str) -> None:
    """Write scores with Spark's own writer (a folder of part files), format by suffix."""
    from pyspark.sql.functions import to_json

    lowered = path.lower().rstrip("/")
    typed = frame.withColumn("customer_since", frame["customer_since"].cast("long")) \
        .selectExpr(*(f"timestamp_micros({quote(c, DIALECT)}) AS {quote(c, DIALECT)}"
                      if c in ("customer_since", "as_of") else quote(c, DIALECT)
                      for c in (*OUTPUT_COLUMNS, "interests")))
    writer = typed.write.mode("overwrite")
    if lowered.endswith(".csv"):   # CSV has no lists: interests as JSON text
        typed.withColumn("interests", to_json(typed["interests"])).write.mode("overwrite") \
            .option("header", "true").csv(path)
    elif lowered.endswith((".json", ".jsonl", ".ndjson")):
        writer.json(path)
    else:
        writer.parquet(path)


# ----------------------------------------------------------------------------- accounts

def register_accounts(spark: Any, source: Any) -> tuple[str, dict[str, str]]:
    """The accounts table as a Spark view of `account_id, account.<x>`, and its column types."""
    con = duckdb.connect()
    try:
        columns = read_accounts(source, con, "accounts")
        table = con.sql('SELECT * FROM "accounts"').to_arrow_table()
    finally:
        con.close()
    types = {n: _spark_type(t) for n, t in columns.items()}
    return _frame(spark, table, types, f"leadscore_accounts_{next(_sequence)}"), types


def _leads(spark: Any, leads: Any) -> tuple[str, dict[str, str]]:
    if leads is None:    # the plan joins a leads table: an empty one
        return _frame(spark, pa.table({"lead_id": pa.array([], pa.string())}),
                      {"lead_id": "STRING"}, f"leadscore_no_leads_{next(_sequence)}"), {
                          "lead_id": "STRING"}
    view, columns, _ = register(spark, leads, "leads")
    return view, columns


def _collect(spark: Any, sql: str, what: str) -> pa.Table:
    try:
        return spark.sql(sql).toArrow()
    except Exception as exc:   # Spark's AnalysisException / ParseException
        raise EngineError(f"{what}: the Spark plan failed: "
                          f"{str(exc).strip().splitlines()[0]}") from None


def with_account_links(spark: Any, scores: pa.Table, leads: Any, accounts: Any,
                       events: Any = None, as_of_us: int | None = None) -> pa.Table:
    """`scores` with each lead's `account_id` and `account_match`, the links found on Spark
    (from a message stream in `events` or `leads`: as of `as_of_us`)."""
    with settings(spark):
        found: dict[str, tuple[str, str]] = {}
        if leads is not None or events is not None:
            given = inputs(spark, events, leads, accounts, as_of_us or 0) \
                if events is not None and as_of_us is not None else None
            if given is not None and given.stream:
                leads_view, lead_columns = given.leads, given.leads_columns or {}
                accounts_view, account_columns = given.accounts, given.accounts_columns
            elif leads is not None:
                accounts_view, account_columns = register_accounts(spark, accounts)
                leads_view, lead_columns = _leads(spark, leads)
            else:
                return append_links(scores, found)
            assert leads_view is not None
            query = links_query(leads_view, lead_columns, accounts_view, account_columns)
            links = link_table(_collect(spark, query.sql(dialect=DIALECT), "account links"))
            found = {lead: (account, kind) for lead, account, kind in zip(
                *(links.column(c).to_pylist() for c in links.column_names), strict=True)}
    return append_links(scores, found)


def score_accounts(models: Model | Sequence[Model], events: Any, leads: Any, accounts: Any, *,
                   as_of_us: int, spark: Any, scores: pa.Table | None = None,
                   filters: Filters | None = None) -> pa.Table:
    """`engine.batch.accounts.score_accounts` on Spark: every account under every model with an
    `account:` section (ACCOUNT_SCHEMA), sorted by model then account_id. From a message
    stream, the accounts are those it names (and the accounts table's, the base)."""
    from leadscore.engine.batch.spark_stream import is_stream

    model_list = [models] if isinstance(models, Model) else list(models)
    wanted = sorted((m for m in model_list if compile_account(m) is not None),
                    key=lambda m: m.name)
    stream = any(s is not None and is_stream(s) for s in (events, leads))
    if not wanted or (leads is None and accounts is None and not stream):
        return ACCOUNT_SCHEMA.empty_table()
    if scores is None and not stream:
        scores = score_many(wanted, events, leads, as_of_us=as_of_us, spark=spark,
                            filters=filters)
    tables = []
    with settings(spark):
        if stream:
            given = inputs(spark, events, leads, accounts, as_of_us, filters)
            leads_view, lead_columns = given.leads, given.leads_columns or {}
            accounts_view, account_columns = given.accounts, given.accounts_columns
            assert leads_view is not None
            if scores is None:   # the leads' scores from the same views: the stream read once
                try:
                    scores = to_arrow(score_views(wanted, given.events, given.events_columns,
                                                  leads_view, given.leads_columns,
                                                  as_of_us=as_of_us, spark=spark))
                finally:
                    release()
                warn_bad([(events, given.bad_events, rejected_kind(events, "events")),
                          (leads, given.bad_leads, rejected_kind(leads, "leads"))])
        else:
            accounts_view, account_columns = (None, {}) if accounts is None else \
                register_accounts(spark, accounts)
            leads_view, lead_columns = _leads(spark, leads)
        assert scores is not None
        for model in wanted:
            mine = scores.filter(pa.compute.equal(scores.column("model"), model.name)) \
                .select(["lead_id", "engagement", "disqualified"])
            scores_view = _frame(spark, mine, {"lead_id": "STRING", "engagement": "DOUBLE",
                                               "disqualified": "BOOLEAN"},
                                 f"leadscore_account_scores_{next(_sequence)}")
            plan = compile_account_plan(model, scores_view, leads_view, lead_columns,
                                        accounts_view, account_columns, as_of_us)
            account = compile_account(model)
            assert account is not None
            tables.append(account_table(account, _collect(
                spark, plan.sql(dialect=DIALECT), f"model {model.name!r}: accounts")))
    return pa.concat_tables(tables)
