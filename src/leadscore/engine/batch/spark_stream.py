"""Segment message streams on Spark: JSON files read by Spark itself (`spark.read`, no
conversion step) into the `messages` relation of `engine.sql.stream`, and the stream stage run
on it — the same SQL as on DuckDB (`engine.batch.stream`), rendered for Spark.

The relation is built in Spark SQL from the parsed JSON, with the rules of the DuckDB reader
(`io.segment.message_row`): the timestamp is `timestamp`, else `originalTimestamp` (event
messages fall back to `sentAt` / `receivedAt` and need one); ids are text, blank is absent;
an identify's `traits` become `traits.<x>` and its `traits.company` (else `traits.account`)
object names its account (by id, else name, else domain); a group's traits are `account.<x>`;
a page's path is `properties.path`, else `context.page.path`, else the path of
`properties.url`, without query. A message that breaks a rule (unknown type, no id, an alias
without previousId, a group without groupId, a track without event name, an event without a
timestamp, JSON that does not parse) is left out and counted. A message without messageId
gets `ingest.validate.content_id` of its JSON line (a Python function, called on those rows
only); in a `.json` document (array or `{"batch": …}`) Spark has no line, so the content id
is that of the message as Spark parsed it, null fields left out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadscore.engine.batch.spark_columns import DIALECT, INTEGER, timestamp_sql, value_columns
from leadscore.engine.sql.stream import (
    Names,
    compile_stream,
    label_rounds,
    start_labels,
    unconverged,
)
from leadscore.errors import EngineError, InputError
from leadscore.events import EVENT_TYPES
from leadscore.ingest.validate import ACCOUNT_KEYS, ACCOUNT_OBJECTS, MAX_ID_LENGTH, content_id
from leadscore.io.segment import JSON_SUFFIXES, MESSAGE_KINDS
from leadscore.io.sqltext import literal, quote

_sequence = itertools.count()
MAX_ROUNDS = 64         # label propagation rounds (with pointer jumping) before giving up
_STRING = "STRING"


def is_stream(source: Any) -> bool:
    """A Segment message stream Spark reads: a JSON path (file, folder of them or glob)."""
    return isinstance(source, str | Path) and str(source).lower().rstrip("/").endswith(
        JSON_SUFFIXES)


def _q(name: str) -> str:
    return quote(name, DIALECT)


def _fields(dtype: Any) -> dict[str, Any]:
    from pyspark.sql import types as T

    return {f.name: f.dataType for f in dtype.fields} if isinstance(dtype, T.StructType) \
        else {}


def _kind(dtype: Any) -> str:
    return str(dtype.simpleString().split("(")[0])


def _text(expr: str, dtype: Any | None) -> tuple[str, str]:
    """(an id as text — blank is NULL —, SQL true where it is present but not an id)."""
    if dtype is None:
        return "CAST(NULL AS STRING)", "false"
    kind = _kind(dtype)
    if kind == "string" or kind in INTEGER:
        text = f"CAST({expr} AS STRING)"
        return f"CASE WHEN trim({text}) <> '' THEN {text} END", "false"
    return "CAST(NULL AS STRING)", f"({expr} IS NOT NULL)"


def _names_account(expr: str, dtype: Any) -> str:
    """SQL: the value names an account (`ingest.validate._names`), or NULL."""
    kind = _kind(dtype)
    if kind != "string" and kind not in INTEGER:
        return "CAST(NULL AS STRING)"
    text = f"CAST({expr} AS STRING)"
    return (f"CASE WHEN trim({text}) <> '' AND length({text}) <= {MAX_ID_LENGTH} "
            f"THEN {text} END")


@dataclass(frozen=True)
class Messages:
    """The `messages` relation as a Spark view, its column types, and the messages left out."""

    view: str
    columns: dict[str, str]
    rejected: int


def read_messages(spark: Any, sources: Sequence[str]) -> Messages:
    """The `messages` relation of Segment JSON files (JSON lines, or `.json` documents: an
    array or `{"batch": [...]}`) as a Spark view, bad messages counted."""
    lines = [s for s in sources if not _is_document(s)]
    documents = [s for s in sources if _is_document(s)]
    frames = []
    try:
        if lines:
            raw = spark.read.text(list(lines))
            # Spark infers it; a field null in every message is left out, as DuckDB reads
            # it (Spark would make it text, and so an account trait set elsewhere text too)
            schema = spark.read.option("dropFieldIfAllNull", "true").json(list(lines)).schema
            parsed = raw.selectExpr("value AS `_line`").withColumn(
                "_m", _from_json("_line", schema))
            frames.append(parsed)
        if documents:
            doc = spark.read.option("multiLine", "true").json(list(documents))
            if "batch" in doc.columns and "type" not in doc.columns:
                doc = doc.selectExpr("explode(batch) AS `_m`")
            else:
                doc = doc.selectExpr("struct(*) AS `_m`")
            frames.append(doc.selectExpr("CAST(NULL AS STRING) AS `_line`", "`_m`"))
    except Exception as exc:   # Spark's AnalysisException: path not found, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{', '.join(sources)}: Spark cannot read it: {first}") from None
    if not frames:
        raise InputError("no message stream given")
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other, allowMissingColumns=True)
    name = f"leadscore_messages_{next(_sequence)}"
    raw_view = f"{name}_raw"
    frame.createOrReplaceTempView(raw_view)
    struct = frame.schema["_m"].dataType
    mixed = _mixed_fields(spark, raw_view, struct) if lines and not documents else {}
    columns, good = _message_columns(struct, mixed)
    select = ", ".join(f"{sql} AS {_q(col)}" for col, sql, _ in columns)
    source = f"(SELECT *, try_parse_json(`_line`) AS `_v` FROM {_q(raw_view)})" if mixed \
        else _q(raw_view)
    kept = spark.sql(f"SELECT {select}, `_line`, `_m`, `_m` IS NOT NULL AND ({good}) AS "
                     f"`_good` FROM {source}")
    kept = _with_content_ids(spark, kept)
    names = [col for col, _, _ in columns]
    # Checkpointed (computed now, lineage cut): the stage reads the relation many times,
    # and Spark's analyser would otherwise walk this wide projection at every reference.
    checked = kept.where("`_good`").select(*(_q(c) for c in names)).localCheckpoint()
    checked.createOrReplaceTempView(name)
    total = frame.count()
    good_rows = checked.count()
    return Messages(name, {col: typ for col, _, typ in columns}, total - good_rows)


def _is_document(source: str) -> bool:
    """A `.json` file holding one document (array or object), not JSON lines."""
    path = Path(source)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith("["):
        return True
    if head.startswith("{"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return False     # JSON lines in a .json file
        return True
    return False


def _from_json(column: str, schema: Any) -> Any:
    from pyspark.sql import functions as F

    return F.from_json(F.col(column), schema, {"mode": "PERMISSIVE"})


def _with_content_ids(spark: Any, frame: Any) -> Any:
    """`message_id` filled with `content_id` where the message has none: a Python function
    called on those rows only (a separate branch, so the rest never reach Python)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def ids(line: str | None, message: Any) -> str | None:
        if line is not None:
            return content_id(json.loads(line))
        if message is None:
            return None
        return content_id(_without_nulls(message.asDict(recursive=True)))

    udf = F.udf(ids, T.StringType())
    have = frame.where("message_id IS NOT NULL OR NOT `_good`")
    need = frame.where("message_id IS NULL AND `_good`").withColumn(
        "message_id", udf(F.col("_line"), F.col("_m")))
    return have.unionByName(need)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


Column = tuple[str, str, str]      # (name, Spark SQL, type)
_VALUES = ("properties", "context", "traits")


def _string_paths(dtype: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The paths of the string-typed fields under a struct (where inference may have met
    values of several JSON kinds)."""
    out = []
    for name, inner in _fields(dtype).items():
        if not name or "'" in name or "\\" in name:
            continue       # not addressable by a JSON path: left as Spark typed it
        if _kind(inner) == "string":
            out.append((*path, name))
        out += _string_paths(inner, (*path, name))
    return out


def _json_path(path: Sequence[str]) -> str:
    return "$" + "".join(f"['{key}']" for key in path)


def _row_kind(path: Sequence[str]) -> str:
    """SQL: the JSON kind of the value at `path` in this row, as `io.segment.kinds_of` names
    them, or 'obj' for an object (NULL when absent). Spark's string field keeps only the
    value's text (a number 0 and a string "0" alike), so the kind comes from the line parsed
    as a variant; int or float from the number's text (the variant makes 1.0 a decimal 1)."""
    jp = literal(_json_path(path), DIALECT)
    schema = f"schema_of_variant(try_variant_get(`_v`, {jp}))"
    return (f"CASE WHEN {schema} LIKE 'OBJECT%' THEN 'obj' WHEN {schema} = 'STRING' THEN "
            f"'str' WHEN {schema} = 'BOOLEAN' THEN 'bool' WHEN {schema} LIKE 'ARRAY%' THEN "
            f"'other' WHEN {schema} LIKE 'DECIMAL%' OR {schema} IN ('BIGINT', 'DOUBLE', "
            f"'FLOAT', 'INT', 'SMALLINT', 'TINYINT') THEN CASE WHEN get_json_object(`_line`, "
            f"{jp}) RLIKE '^-?[0-9]+$' THEN 'int' ELSE 'float' END END")


def _mixed_fields(spark: Any, view: str, struct: Any) -> dict[tuple[str, ...], list[Column]]:
    """The columns of the fields that hold an object in some messages and a scalar in others
    (Spark infers text; DuckDB's reader flattens the objects to dotted sub-columns and types
    the scalars as `io.segment.typed_array` does), by their path in the message."""
    top = _fields(struct)
    paths = [p for key in _VALUES if key in top for p in _string_paths(top[key], (key,))]
    if not paths:
        return {}
    parsed = f"(SELECT *, try_parse_json(`_line`) AS `_v` FROM {_q(view)})"
    kinds = [f"collect_set({_row_kind(p)})" for p in paths]
    objects = [f"schema_of_variant_agg(CASE WHEN {_row_kind(p)} = 'obj' THEN try_variant_get("
               f"`_v`, {literal(_json_path(p), DIALECT)}) END)" for p in paths]
    [row] = spark.sql(f"SELECT {', '.join(kinds + objects)} FROM {parsed}").collect()
    spark.udf.register(JSON_TEXT, _json_text)
    out: dict[tuple[str, ...], list[Column]] = {}
    for i, path in enumerate(paths):
        found = set(row[i])
        if not found & {"obj", "other"}:
            continue      # scalars only: Spark's text is DuckDB's (json.dumps of non-text)
        out[path] = _scalar_column(path, found - {"obj"}) + _object_columns(
            path, str(row[len(paths) + i]))
    return out


JSON_TEXT = "leadscore_json_text"      # the Spark SQL function of `_json_text`


def _json_text(text: str | None) -> str | None:
    """A JSON value's text as `io.segment.typed_array` writes a list (`json.dumps`)."""
    return None if text is None else json.dumps(json.loads(text))


def _scalar_column(path: Sequence[str], kinds: set[str]) -> list[Column]:
    if not kinds:
        return []
    kind = _row_kind(path)
    text = f"get_json_object(`_line`, {literal(_json_path(path), DIALECT)})"
    if kinds == {"bool"}:
        return [("", f"CASE WHEN {kind} = 'bool' THEN CAST({text} AS BOOLEAN) END", "BOOLEAN")]
    if kinds == {"int"}:
        return [("", f"CASE WHEN {kind} = 'int' THEN CAST({text} AS BIGINT) END", "BIGINT")]
    if kinds <= {"int", "float"}:
        return [("", f"CASE WHEN {kind} IN ('int', 'float') THEN CAST({text} AS DOUBLE) END",
                 "DOUBLE")]
    # Spark's text of the value, but a list as Python's json.dumps writes it ("[1, 2]")
    field = "`_m`." + ".".join(_q(k) for k in path)
    return [("", f"CASE WHEN {kind} = 'other' THEN {JSON_TEXT}({field}) "
             f"WHEN {kind} <> 'obj' THEN {field} END", _STRING)]


def _object_columns(path: Sequence[str], schema: str) -> list[Column]:
    """The dotted sub-columns of the object values at `path`, from the variant schema of all
    of them (`OBJECT<k: BIGINT, …>`)."""
    from pyspark.sql import types as T

    if not schema.startswith("OBJECT<"):
        return []
    dtype = T._parse_datatype_string(schema.replace("OBJECT<", "STRUCT<"))
    return _variant_leaves(path, (), dtype)


def _variant_leaves(path: Sequence[str], sub: tuple[str, ...], dtype: Any) -> list[Column]:
    from pyspark.sql import types as T

    if isinstance(dtype, T.StructType):
        return [c for f in dtype.fields for c in _variant_leaves(path, (*sub, f.name),
                                                                  f.dataType)]
    jp = literal(_json_path((*path, *sub)), DIALECT)
    name = "".join(f".{k}" for k in sub)
    kind = _kind(dtype)
    if kind == "boolean":
        return [(name, f"try_variant_get(`_v`, {jp}, 'boolean')", "BOOLEAN")]
    if kind in INTEGER:
        return [(name, f"try_variant_get(`_v`, {jp}, 'bigint')", "BIGINT")]
    if kind in ("decimal", "double", "float"):
        return [(name, f"try_variant_get(`_v`, {jp}, 'double')", "DOUBLE")]
    if kind == "string":
        return [(name, f"try_variant_get(`_v`, {jp}, 'string')", _STRING)]
    # A list, or a field null in every object (its variant type VOID): JSON text, but a JSON
    # null is no value (SQL NULL, as DuckDB's reader gives), not the text 'null'.
    value = f"try_variant_get(`_v`, {jp})"
    return [(name, f"CASE WHEN NOT is_variant_null({value}) THEN to_json({value}) END",
             _STRING)]


def _value_columns(expr: str, path: tuple[str, ...], name: str, dtype: Any,
                   mixed: dict[tuple[str, ...], list[Column]]) -> list[Column]:
    """`value_columns`, with the mixed fields' columns in place of Spark's text."""
    if path in mixed:
        return [(name + suffix, sql, typ) for suffix, sql, typ in mixed[path]]
    if any(p[:len(path)] == path for p in mixed) and _fields(dtype):
        return [c for n, d in _fields(dtype).items() for c in _value_columns(
            f"{expr}.{_q(n)}", (*path, n), f"{name}.{n}", d, mixed)]
    return value_columns(expr, name, dtype)


def _message_columns(struct: Any, mixed: dict[tuple[str, ...], list[Column]] | None = None
                     ) -> tuple[list[tuple[str, str, str]], str]:
    """The `messages` relation's columns (name, Spark SQL over `_m`, `_v` and `_line`, type)
    and the SQL of a message that keeps to the rules (`io.segment.message_row`)."""
    mixed = mixed or {}
    top = _fields(struct)

    def field(name: str) -> str:
        return f"`_m`.{_q(name)}"

    kind = f"CAST({field('type')} AS STRING)" if "type" in top else "CAST(NULL AS STRING)"
    ids: dict[str, str] = {}
    bad_ids: list[str] = []
    for key in ("messageId", "userId", "anonymousId", "previousId", "groupId"):
        text, bad = _text(field(key), top.get(key))
        ids[key] = text
        bad_ids.append(bad)
    is_event = f"{kind} IN ({', '.join(literal(t, DIALECT) for t in EVENT_TYPES)})"
    stamps = {}
    for key in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        stamps[key] = timestamp_sql(field(key), top[key], key) if key in top else \
            "CAST(NULL AS BIGINT)"
    # the first key present holds the time; present but unreadable: a bad message
    present = [(k, f"{field(k)} IS NOT NULL" if k in top else "false") for k in stamps]
    chosen = ("CASE " + " ".join(f"WHEN {p} THEN {stamps[k]}" for k, p in present[:2])
              + f" WHEN {is_event} AND {present[2][1]} THEN {stamps['sentAt']}"
              + f" WHEN {is_event} AND {present[3][1]} THEN {stamps['receivedAt']} END")
    any_stamp = f"({present[0][1]} OR {present[1][1]} OR ({is_event} AND " \
        f"({present[2][1]} OR {present[3][1]})))"
    stamp_ok = f"(NOT {any_stamp} OR ({chosen}) IS NOT NULL)"
    properties, context, traits = (_fields(top.get(k)) if k in top else {}
                                   for k in ("properties", "context", "traits"))
    # the page path: properties.path, else context.page.path, else the path of properties.url
    candidates = []
    if "path" in properties and _kind(properties["path"]) == "string":
        candidates.append(f"nullif({field('properties')}.`path`, '')")
    page = _fields(context.get("page")) if "page" in context else {}
    if "path" in page and _kind(page["path"]) == "string":
        candidates.append(f"nullif({field('context')}.`page`.`path`, '')")
    if "url" in properties and _kind(properties["url"]) == "string":
        url = f"{field('properties')}.`url`"
        candidates.append(f"CASE WHEN {url} IS NOT NULL THEN coalesce(nullif(parse_url("
                          f"{url}, 'PATH'), ''), '/') END")
    raw_path = f"coalesce({', '.join(candidates)})" if candidates else "CAST(NULL AS STRING)"
    path = f"CASE WHEN {kind} = 'page' THEN regexp_replace({raw_path}, '[?#].*$', '') END"
    event_name = "CAST(NULL AS STRING)"
    track_name = f"CAST({field('event')} AS STRING)" if "event" in top and \
        _kind(top["event"]) == "string" else "CAST(NULL AS STRING)"
    other_name = f"CAST({field('name')} AS STRING)" if "name" in top and \
        _kind(top["name"]) == "string" else "CAST(NULL AS STRING)"
    event_name = (f"CASE WHEN {kind} = 'track' THEN {track_name} "
                  f"WHEN {kind} IN ('page', 'screen') THEN {other_name} END")
    # the account an identify's company (else account) object names, or a group's groupId
    names_sql, objects = [], []
    for key in ACCOUNT_OBJECTS:
        inner = _fields(traits.get(key)) if key in traits else {}
        if not inner:
            continue
        base = f"{field('traits')}.{_q(key)}"
        named = [_names_account(f"{base}.{_q(k)}", inner[k]) for k in ACCOUNT_KEYS
                 if k in inner]
        if named:
            names_sql.append(f"coalesce({', '.join(named)})")
            objects.append((base, ("traits", key), inner))
    company = f"coalesce({', '.join(names_sql)})" if names_sql else "CAST(NULL AS STRING)"
    account_id = (f"CASE WHEN {kind} = 'group' THEN {ids['groupId']} "
                  f"WHEN {kind} = 'identify' THEN {company} END")
    out: list[tuple[str, str, str]] = [
        ("message_id", ids["messageId"], _STRING), ("type", kind, _STRING),
        ("user_id", ids["userId"], _STRING), ("anonymous_id", ids["anonymousId"], _STRING),
        ("previous_id", f"CASE WHEN {kind} = 'alias' THEN {ids['previousId']} END", _STRING),
        ("timestamp", f"timestamp_micros({chosen})", "TIMESTAMP"),
        ("event", event_name, _STRING), ("path", path, _STRING),
        ("account_id", account_id, _STRING)]
    for prefix, source in (("properties", properties), ("context", context)):
        for name, dtype in source.items():
            for col, sql, typ in _value_columns(f"{field(prefix)}.{_q(name)}",
                                                (prefix, name), f"{prefix}.{name}", dtype,
                                                mixed):
                out.append((col, f"CASE WHEN {is_event} THEN {sql} END", typ))
    for name, dtype in traits.items():
        for col, sql, typ in _value_columns(f"{field('traits')}.{_q(name)}",
                                            ("traits", name), f"traits.{name}", dtype, mixed):
            out.append((col, f"CASE WHEN {kind} = 'identify' THEN {sql} END", typ))
    # account.<x>: a group's traits, or the identify's naming object, minus its `id`
    account_cols: dict[str, list[tuple[str, str, str]]] = {}
    for name, dtype in traits.items():
        if name == "id":
            continue
        for col, sql, typ in _value_columns(f"{field('traits')}.{_q(name)}",
                                            ("traits", name), f"account.{name}", dtype, mixed):
            account_cols.setdefault(col, []).append((f"{kind} = 'group'", sql, typ))
    for i, (base, base_path, inner) in enumerate(objects):
        earlier = [f"({n}) IS NULL" for n in names_sql[:i]]
        chosen_here = " AND ".join([f"{kind} = 'identify'", *earlier,
                                    f"({names_sql[i]}) IS NOT NULL"])
        for name, dtype in inner.items():
            if name == "id":
                continue
            for col, sql, typ in _value_columns(f"{base}.{_q(name)}", (*base_path, name),
                                                f"account.{name}", dtype, mixed):
                account_cols.setdefault(col, []).append((chosen_here, sql, typ))
    for col, cases in account_cols.items():
        types = {t for _, _, t in cases}
        typ = cases[0][2] if len(types) == 1 else _STRING
        whens = " ".join(f"WHEN {cond} THEN CAST({sql} AS {typ})" for cond, sql, _ in cases)
        out.append((col, f"CASE {whens} END", typ))
    out = list({c[0]: c for c in out}.values())
    known = ", ".join(literal(t, DIALECT) for t in MESSAGE_KINDS)
    good = " AND ".join([
        f"{kind} IN ({known})", *(f"NOT {b}" for b in bad_ids),
        f"({ids['userId']} IS NOT NULL OR ({kind} <> 'alias' AND {ids['anonymousId']} "
        "IS NOT NULL))",
        f"({kind} <> 'alias' OR {ids['previousId']} IS NOT NULL)",
        f"({kind} <> 'group' OR {ids['groupId']} IS NOT NULL)",
        f"({kind} <> 'track' OR {track_name} IS NOT NULL)",
        f"(NOT {is_event} OR ({chosen}) IS NOT NULL)", stamp_ok])
    return out, good


# ----------------------------------------------------------------------------- the stage

@dataclass(frozen=True)
class StreamViews:
    """The canonical views the stream stage made on Spark, and their columns."""

    events: str
    leads: str
    accounts: str
    events_columns: dict[str, str]
    leads_columns: dict[str, str]
    accounts_columns: dict[str, str]
    ids: str = ""               # ident (`u:<userId>` / `a:<anonymousId>`) → lead_id


def run_stream(spark: Any, messages: Messages, as_of: int, *,
               base_leads: tuple[str, dict[str, str]] | None = None,
               base_accounts: tuple[str, dict[str, str]] | None = None) -> StreamViews:
    """The stream stage of `messages` as of `as_of` (µs) as cached Spark views; the identity
    labels iterated until no edge joins two labels (an error after MAX_ROUNDS)."""
    n = next(_sequence)
    names = Names(messages=messages.view, msg=f"leadscore_stream_msg_{n}",
                  edges=f"leadscore_stream_edges_{n}", labels=f"leadscore_stream_labels_{n}",
                  ids=f"leadscore_stream_ids_{n}", events=f"leadscore_stream_events_{n}",
                  leads=f"leadscore_stream_leads_{n}",
                  accounts=f"leadscore_stream_accounts_{n}",
                  base_leads=base_leads[0] if base_leads else None,
                  base_accounts=base_accounts[0] if base_accounts else None)
    stage = compile_stream(messages.columns, as_of, names=names,
                           base_leads=base_leads[1] if base_leads else None,
                           base_accounts=base_accounts[1] if base_accounts else None)

    def make(name: str, query: Any, cache: bool = True) -> Any:
        frame = spark.sql(query.sql(dialect=DIALECT))
        if cache:
            # computed now and cut from its lineage: a cached frame keeps its whole plan, and
            # the scoring plan over events → ids → labels (every round) → msg grew so large
            # that analysing it exhausted the driver's heap
            frame = frame.localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        return frame

    try:
        make(names.msg, stage.msg)
        make(names.edges, stage.edges)
        # One round per statement, each materialised: Spark inlines CTEs, and the unrolled
        # rounds (each reads the one before four times) would grow the plan 4^rounds-fold.
        labels = make(names.labels, start_labels(names.edges))
        for _ in range(MAX_ROUNDS):
            [(left,)] = spark.sql(unconverged(names.edges, names.labels).sql(
                dialect=DIALECT)).collect()
            if not left:
                break
            again = spark.sql(label_rounds(names.edges, names.labels, rounds=1).sql(
                dialect=DIALECT)).localCheckpoint(eager=True)
            again.createOrReplaceTempView(names.labels)
            labels.unpersist()
            labels = again
        else:
            raise EngineError(f"identity resolution did not converge after {MAX_ROUNDS} "
                              "rounds of label propagation (an alias chain that long?)")
        make(names.ids, stage.ids)
        make(names.events, stage.events)
        make(names.accounts, stage.accounts)
        make(names.leads, stage.leads)
    except EngineError:
        raise
    except Exception as exc:   # Spark's AnalysisException / ParseException
        raise EngineError(f"the stream stage failed on Spark: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    return StreamViews(names.events, names.leads, names.accounts, _types(spark, names.events),
                       _types(spark, names.leads), _types(spark, names.accounts), names.ids)


def _types(spark: Any, view: str) -> dict[str, str]:
    return {f.name: f.dataType.simpleString().upper()
            for f in spark.table(_q(view)).schema.fields}
