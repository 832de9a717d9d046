"""Segment JSON lines read by DuckDB into the `messages` relation, the same table the Python
reader (`io.segment.message_table`) makes, many times faster.

DuckDB splits the file into numbered lines and reads each with an explicit schema of the
message's fields (`SCHEMA`). A line is *read in SQL* only where SQL gives exactly what
`segment.message_row` would: a JSON object of a known type with a messageId, string ids,
an ISO-8601 timestamp with a zone, objects where objects belong, a page path from
`properties.path` or `context.page.path`, no account object in an identify's traits, no
integer beyond 64 bits. Every other line — a bad one, one without messageId (its id is a hash
of its content), one with an epoch timestamp — goes through the Python reader, which counts
and reports it as before. Flattened columns (`properties.<x>`, …) take the type Python's
would over all lines (`segment.typed_array`); a value SQL would write differently (a number
in a text column, a list, an object where others hold a scalar) sends its line to Python.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.errors import EventError
from leadscore.events import EVENT_TYPES
from leadscore.io import segment
from leadscore.io.sqltext import literal, quote

_sequence = itertools.count()
LINES_SUFFIXES = (".jsonl", ".ndjson")   # `.json` may hold one document: Python reads it

# The fields of a message read by the schema, each as JSON text (checked below).
FIELDS = ("type", "messageId", "userId", "anonymousId", "previousId", "groupId", "timestamp",
          "originalTimestamp", "sentAt", "receivedAt", "event", "name", "properties",
          "context", "traits")
SCHEMA = json.dumps({f: "JSON" for f in FIELDS})
ISO = (r"\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
       r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)")
# where a flattened prefix comes from: (prefix, field, the message types it is read for)
PREFIXES = (("properties.", "properties", EVENT_TYPES), ("context.", "context", EVENT_TYPES),
            ("traits.", "traits", ("identify",)), ("account.", "traits", ("group",)))
SQL_TYPES = {"bool": "BOOLEAN", "int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR"}
STRUCTURE_KINDS = {"BOOLEAN": {"bool"}, "BIGINT": {"int"}, "UBIGINT": {"int"},
                   "DOUBLE": {"float"}, "VARCHAR": {"str"}, "NULL": set()}


class Unreadable(Exception):
    """DuckDB cannot split this file into lines as Python does (the caller reads it in Python)."""


def read_message_lines(path: Path, con: duckdb.DuckDBPyConnection, name: str, *,
                       strict: bool) -> tuple[int, segment.Rejected]:
    """Create the temporary table `name` holding the `messages` relation of the JSON-lines
    file `path`: (rows, rejected), as `segment.message_table` reports them. Raises
    Unreadable where the file cannot be split into lines here."""
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            raise Unreadable("a byte-order mark")  # Python reads it as part of line 1
    n = next(_sequence)
    lines, parsed = f"__lines_{n}", f"__parsed_{n}"
    try:
        _split_lines(con, path, lines)
        con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(parsed)} AS {_parsed_sql(lines)}")
        con.sql(f"DROP TABLE {quote(lines)}")
        [(cr,)] = con.sql(f"SELECT bool_or(cr) FROM {quote(parsed)}").fetchall()
        if cr:
            raise Unreadable("a carriage return inside a line")
        return _assemble(con, path, parsed, name, strict)
    finally:
        for table in (lines, parsed):
            con.sql(f"DROP TABLE IF EXISTS {quote(table)}")


def _split_lines(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    """The file's lines in order (blank ones NULL), numbered by rowid. No quoting and a
    delimiter valid JSON never holds: a line that has one is not JSON and fails the read."""
    [(kept,)] = con.sql("SELECT current_setting('preserve_insertion_order')").fetchall()
    con.sql("SET preserve_insertion_order = true")
    try:
        con.sql(f"""CREATE OR REPLACE TEMP TABLE {quote(table)} AS SELECT line FROM read_csv(
            {literal(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false,
            delim = '\x01', quote = '', escape = '', auto_detect = false)""")
    except duckdb.Error as exc:
        raise Unreadable(str(exc)) from None
    finally:
        con.sql(f"SET preserve_insertion_order = {'true' if kept else 'false'}")


def _text(field: str) -> str:
    """The string a JSON field holds (NULL where it is not a string)."""
    return f"CASE WHEN starts_with(f.{quote(field)}::VARCHAR, '\"') THEN f.{quote(field)}->>'$' END"


def _absent(field: str, table: str = "f.") -> str:
    return f"({table}{quote(field)} IS NULL OR {table}{quote(field)}::VARCHAR = 'null')"


def _parsed_sql(lines: str) -> str:
    """Every line's fields (all NULL: not JSON), its objects as JSON text, `fast` (SQL reads
    it as Python) and `cr` (it holds a carriage return, which Python splits lines at)."""
    ids = {k: _text(k) for k in ("messageId", "userId", "anonymousId", "previousId", "groupId")}
    id_ok = " AND ".join(f"({_absent(k)} OR regexp_matches({v}, '[0-9A-Za-z]'))"
                         for k, v in ids.items())
    events = ", ".join(literal(k) for k in EVENT_TYPES)
    kinds = ", ".join(literal(k) for k in segment.MESSAGE_KINDS)
    # Python takes the first key that is not null: timestamp, originalTimestamp, then for
    # events sentAt and receivedAt
    stamp = (f"CASE WHEN NOT {_absent('timestamp')} THEN f.timestamp "
             f"WHEN NOT {_absent('originalTimestamp')} THEN f.originalTimestamp "
             f"WHEN type IN ({events}) AND NOT {_absent('sentAt')} THEN f.sentAt "
             f"WHEN type IN ({events}) AND NOT {_absent('receivedAt')} THEN f.receivedAt END")
    objects = " AND ".join(f"({_absent(k)} OR starts_with(f.{k}::VARCHAR, '{{'))"
                           for k in ("properties", "context", "traits"))
    page = ("CASE WHEN json_type(f.properties, '$.path') = 'VARCHAR' "
            "AND f.properties->>'$.path' <> '' THEN f.properties->>'$.path' "
            "WHEN json_type(f.context, '$.page.path') = 'VARCHAR' "
            "AND f.context->>'$.page.path' <> '' THEN f.context->>'$.page.path' END")
    return f"""
    SELECT n, type, message_id, user_id, anonymous_id, previous_id, group_id,
           ts, event, path, f.properties, f.context, f.traits, cr, false AS late,
           coalesce(f IS NOT NULL AND type IN ({kinds}) AND message_id IS NOT NULL AND ids_ok
           AND objects_ok
           AND (type <> 'alias' OR (user_id IS NOT NULL AND previous_id IS NOT NULL))
           AND (type = 'alias' OR user_id IS NOT NULL OR anonymous_id IS NOT NULL)
           AND (type <> 'group' OR group_id IS NOT NULL)
           AND CASE WHEN stamp IS NULL THEN type NOT IN ({events})
                    ELSE ts IS NOT NULL END
           AND (type <> 'track' OR event IS NOT NULL)
           AND (type <> 'page' OR path IS NOT NULL
                OR json_type(f.properties, '$.url') IS DISTINCT FROM 'VARCHAR')
           AND (type <> 'identify' OR NOT coalesce(
                json_type(f.traits, '$.company') = 'OBJECT'
                OR json_type(f.traits, '$.account') = 'OBJECT', false))
           AND NOT regexp_matches(line, '\\d{{19}}'), false) AS fast   -- NULL: not fast
    FROM (
      SELECT n, line, f, cr, {_text('type')} AS type, {ids['messageId']} AS message_id,
             {ids['userId']} AS user_id, {ids['anonymousId']} AS anonymous_id,
             {ids['previousId']} AS previous_id, {ids['groupId']} AS group_id,
             {id_ok} AS ids_ok, {objects} AS objects_ok, stamp,
             CASE WHEN starts_with(stamp::VARCHAR, '"')
                       AND regexp_full_match(stamp->>'$', '{ISO}')
                  THEN try_cast(stamp->>'$' AS TIMESTAMPTZ) END AS ts,
             CASE WHEN type = 'track' THEN {_text('event')}
                  WHEN type IN ({events}) THEN {_text('name')} END AS event,
             CASE WHEN type = 'page'
                  THEN regexp_replace({page}, '[?#][\\s\\S]*$', '') END AS path
      FROM (SELECT n, line, f, cr, {_text('type')} AS type, {stamp} AS stamp
            FROM (SELECT rowid + 1 AS n, line, try(from_json(line, {literal(SCHEMA)})) AS f,
                         contains(line, chr(13)) AS cr
                  FROM {quote(lines)} WHERE line IS NOT NULL) AS r) AS f0
    ) AS p"""


def _assemble(con: duckdb.DuckDBPyConnection, path: Path, parsed: str, name: str,
              strict: bool) -> tuple[int, segment.Rejected]:
    """The fast lines' columns typed as Python types them over all lines, the other lines
    read by Python, both in table `name`."""
    # an object or a list where other lines hold a scalar (flattened into other columns),
    # or a list anywhere (written as JSON text): the line goes to Python
    mixed = _leaves(_structures(con, parsed), lambda s: s == "JSON" or isinstance(s, list))
    if mixed:
        con.sql(f"UPDATE {quote(parsed)} SET fast = false WHERE fast AND ("
                + " OR ".join(f"json_type({_source(p)}, {literal(_json_path(keys))}) "
                              f"IN ('OBJECT', 'ARRAY')" for p, keys, _ in mixed) + ")")
    structures = _structures(con, parsed)
    rejected = segment.Rejected()
    rows = _python_rows(con, parsed, path, rejected, strict, "NOT fast")
    columns: dict[str, tuple[str, tuple[str, ...], set[str]]] = {}
    for prefix, keys, leaf in _leaves(structures, lambda s: not isinstance(s, dict)):
        found = STRUCTURE_KINDS.get(leaf, {"str", "other"}) if isinstance(leaf, str) \
            else {"other"}
        column = prefix + ".".join(keys)
        if column in columns:   # `{"a.b": 1}` beside `{"a": {"b": 2}}`: Python's key order
            raise Unreadable(f"two keys flatten to {column!r}")
        columns[column] = (prefix, keys, found)
    # a key null in some lines and an object in others: Python has a column for the nulls
    for prefix, keys in _null_objects(con, parsed, structures):
        columns.setdefault(prefix + ".".join(keys), ("", (), set()))
    for row in rows:
        for column in row:
            if column not in segment.MESSAGE_COLUMNS and column not in columns:
                columns[column] = ("", (), set())
    kinds = {c: k | segment.kinds_of(row.get(c) for row in rows)
             for c, (_, _, k) in columns.items()}
    # a number SQL would write into a text column: Python writes it (json.dumps)
    numbers = [(p, keys) for c, (p, keys, _) in columns.items() if p and _sql_type(kinds[c])
               == "VARCHAR" and (kinds[c] & {"float", "other"})]
    if numbers:
        con.sql(f"UPDATE {quote(parsed)} SET fast = false, late = true WHERE fast AND ("
                + " OR ".join(f"json_type({_source(p)}, {literal(_json_path(keys))}) "
                              f"IN ('DOUBLE', 'OBJECT', 'ARRAY')" for p, keys in numbers) + ")")
        rows += _python_rows(con, parsed, path, segment.Rejected(), strict, "late")
    # the fast lines in SQL (one read of each object by its columns' schema), then Python's
    # rows appended with the same columns and types
    schemas: dict[str, dict[str, Any]] = {}
    for c, (prefix, keys, _) in columns.items():
        if prefix:
            node = schemas.setdefault(prefix, {})
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = _sql_type(kinds[c])
    objects = [f"CASE WHEN type IN ({_kinds(prefix)}) THEN from_json({_source(prefix)}, "
               f"{literal(json.dumps(schema))}) END AS {quote(prefix)}"
               for prefix, schema in schemas.items()]
    values = [f"{quote(p)}" + "".join(f"[{literal(k)}]" for k in keys) + f" AS {quote(c)}"
              if p else f"CAST(NULL AS {_sql_type(kinds[c])}) AS {quote(c)}"
              for c, (p, keys, _) in columns.items()]
    con.sql(f"""CREATE OR REPLACE TEMP TABLE {quote(name)} AS
        SELECT message_id, type, user_id, anonymous_id, previous_id, timestamp, event, path,
               account_id{''.join(', ' + v for v in values)}
        FROM (SELECT message_id, type, user_id, anonymous_id,
                     CASE WHEN type = 'alias' THEN previous_id END AS previous_id,
                     ts AS timestamp, event, path,
                     CASE WHEN type = 'group' THEN group_id END AS account_id
                     {''.join(', ' + o for o in objects)}
              FROM {quote(parsed)} WHERE fast) AS o""")
    if rows:
        table = pa.table({**{c: pa.array([r.get(c) for r in rows], type=t)
                             for c, t in segment.MESSAGE_COLUMNS.items()},
                          **{c: segment.typed_array([r.get(c) for r in rows], kinds[c])
                             for c in columns}})
        view = f"{name}__python_{next(_sequence)}"
        con.register(view, table)
        try:
            con.sql(f"INSERT INTO {quote(name)} BY NAME SELECT * FROM {quote(view)}")
        finally:
            con.unregister(view)
    [(count,)] = con.sql(f"SELECT count(*) FROM {quote(name)}").fetchall()
    return count, rejected


def _python_rows(con: duckdb.DuckDBPyConnection, parsed: str, path: Path,
                 rejected: segment.Rejected, strict: bool, where: str
                 ) -> list[dict[str, Any]]:
    """Rows of the lines `where` selects, read from the file by `segment.message_rows`."""
    wanted = {n for (n,) in con.sql(f"SELECT n FROM {quote(parsed)} WHERE {where}").fetchall()}
    if not wanted:
        return []
    with path.open(encoding="utf-8") as handle:
        found = [(n, line) for n, line in enumerate(handle, 1) if n in wanted]
    rows = segment.message_rows(segment.json_lines(found, rejected), rejected,
                                source=str(path), strict=strict)
    if strict and rejected:
        raise EventError(rejected.reasons[0], source=str(path), row=rejected.rows[0],
                         field=rejected.fields[0])
    return rows


def _structures(con: duckdb.DuckDBPyConnection, parsed: str) -> dict[str, Any]:
    """Per prefix, the merged JSON structure of the fast lines' objects."""
    # one object per distinct structure stands for its lines (the merge reads structures only)
    parts = [f"""(SELECT json_group_structure(x) FROM (
                   SELECT any_value({_source(prefix)}) AS x FROM {quote(parsed)} AS f
                   WHERE fast AND type IN ({_kinds(prefix)}) AND NOT {_absent(field, "")}
                   GROUP BY json_structure({_source(prefix)})))"""
             for prefix, field, _ in PREFIXES]
    [found] = con.sql(f"SELECT {', '.join(parts)}").fetchall()
    out: dict[str, Any] = {}
    for (prefix, _, _), text in zip(PREFIXES, found, strict=True):
        structure = json.loads(text) if text else {}
        if not isinstance(structure, dict):
            structure = {}
        if prefix == "account.":
            structure.pop("id", None)          # a group's `traits.id` is its id, not a trait
        out[prefix] = structure
    return out


def _kinds(prefix: str) -> str:
    """The message types whose field the prefix flattens, as a SQL list."""
    return ", ".join(literal(k) for k in dict((p, k) for p, _, k in PREFIXES)[prefix])


def _source(prefix: str) -> str:
    return dict((p, f) for p, f, _ in PREFIXES)[prefix]


def _leaves(structures: dict[str, Any], wanted: Any
            ) -> list[tuple[str, tuple[str, ...], Any]]:
    """(prefix, keys, structure) of every node `wanted` selects, objects walked into."""
    out: list[tuple[str, tuple[str, ...], Any]] = []

    def walk(prefix: str, keys: tuple[str, ...], node: Any) -> None:
        if keys and wanted(node):
            out.append((prefix, keys, node))
        if isinstance(node, dict):
            for key, child in node.items():
                walk(prefix, (*keys, key), child)

    for prefix, structure in structures.items():
        walk(prefix, (), structure)
    return out


def _null_objects(con: duckdb.DuckDBPyConnection, parsed: str, structures: dict[str, Any]
                  ) -> list[tuple[str, tuple[str, ...]]]:
    """The object keys some fast line holds null (Python makes a column of them)."""
    nodes = [(p, keys) for p, keys, _ in _leaves(structures, lambda s: isinstance(s, dict))]
    if not nodes:
        return []
    counts = ", ".join(f"count(*) FILTER (WHERE json_type({_source(p)}, "
                       f"{literal(_json_path(keys))}) = 'NULL')" for p, keys in nodes)
    [found] = con.sql(f"SELECT {counts} FROM {quote(parsed)} WHERE fast").fetchall()
    return [node for node, count in zip(nodes, found, strict=True) if count]


def _json_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join("." + json.dumps(k) for k in keys)


def _sql_type(kinds: set[str]) -> str:
    if kinds == {"bool"}:
        return "BOOLEAN"
    if kinds == {"int"}:
        return "BIGINT"
    if kinds and kinds <= {"int", "float"}:
        return "DOUBLE"
    return "VARCHAR"


