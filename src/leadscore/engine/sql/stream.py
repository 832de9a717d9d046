"""The stream stage: a Segment message history (the `messages` relation) as of `T` turned into
the canonical `events`, `leads` and `accounts` tables the scoring plan reads (docs: "Events and
leads as the engines see them"). sqlglot expressions only, rendered alike for DuckDB and Spark.

The `messages` relation (one row per message, before dedupe; `io.segment.message_table` and
the Spark reader make it):

    message_id VARCHAR, type VARCHAR, user_id VARCHAR, anonymous_id VARCHAR,
    previous_id VARCHAR (alias), timestamp TIMESTAMP WITH TIME ZONE (NULL: -infinity),
    event VARCHAR, path VARCHAR, account_id VARCHAR (a group's groupId, an identify's
    `traits.company` / `traits.account` id: `ingest.validate.company_account`), then the
    flattened `properties.<x>`, `context.<x>`, `traits.<x>` (identify) and `account.<x>`
    (a group's traits, the company object's other keys) columns.

A flattened column belongs to the top-level key that is its name's first dotted part
(`traits.a.b` → `a`; a key `a.b` counts as `a`). A message sets a key when one of the key's
columns is not null: a null does not erase, nor does an object whose values are all null.

The rules (the lead's spec, issue #15), every one as of `T` (messages with timestamp <= T):
- order key `(timestamp, message_id)`; one message per message_id, the smallest key;
- identities `u:<userId>` / `a:<anonymousId>`, a message's own one its userId, else its
  anonymousId; edges: alias U→P links U with user P and anonymous P; identify U+A links U
  with A only if U is A's first claimant (the smallest key among identify messages with A
  and a userId and aliases with previousId A);
- a lead is a connected component; its id the smallest userId in it that is the own userId
  of a message (an alias's previousId links, it never names the lead); a component without
  one is one anonymous id, its own id (`<id>#2` where a user lead has that id);
- traits: per top-level key, the value of the latest identify of the lead's identities
  holding it (a null does not erase); account: that of the latest group / identify naming
  one; account traits: per key the latest over the messages naming the account;
- a leads table given beside the stream is the base (no history: it holds at every as_of);
  the stream wins per key; an accounts table likewise for accounts.

Identity resolution needs no recursion: anonymous ids collapse onto their first claimant (a
star), then components of users over alias edges come from min-label propagation with
pointer jumping, `rounds` unrolled per statement; `unconverged` counts the edges whose ends
still differ, and the runner repeats `label_rounds` on its result until none do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

READ = "spark"        # the dialect the templates below are written in
NEVER = -(2**63) + 1  # the order key of a message without a timestamp: before every as_of
ROUNDS = 5            # label propagation rounds per statement (pointer jumping: chains of 32)
EVENT_KINDS = ("track", "page", "screen")
FIXED = ("message_id", "type", "user_id", "anonymous_id", "previous_id", "timestamp", "event",
         "path", "account_id")


def q(name: str) -> str:
    """A quoted identifier in the templates' dialect."""
    return exp.to_identifier(name, quoted=True).sql(READ)


def s(value: str) -> str:
    """A string literal in the templates' dialect."""
    return exp.Literal.string(value).sql(READ)


def parse(sql: str) -> exp.Query:
    found = sqlglot.parse_one(sql, read=READ)
    assert isinstance(found, exp.Query)
    return found


def top_key(column: str) -> str:
    """The top-level key of a flattened column: `traits.a.b` → `a`."""
    return column.split(".", 2)[1]


def value_columns(columns: Mapping[str, str], prefix: str) -> list[str]:
    return [c for c in columns if c.startswith(prefix) and len(c) > len(prefix)]


@dataclass(frozen=True)
class Names:
    """The tables (or CTEs) the stages read each other by."""

    messages: str = "messages"
    msg: str = "stream_msg"
    edges: str = "stream_edges"
    labels: str = "stream_labels"
    ids: str = "stream_ids"
    events: str = "stream_events"
    leads: str = "stream_leads"
    accounts: str = "stream_accounts"
    base_leads: str | None = None
    base_accounts: str | None = None


@dataclass(frozen=True)
class StreamStage:
    """The stage's queries, in order; each reads those before it by `names`."""

    names: Names
    msg: exp.Query
    edges: exp.Query
    labels: exp.Query              # start labels with `rounds` rounds applied
    ids: exp.Query
    events: exp.Query
    accounts: exp.Query
    leads: exp.Query
    columns: dict[str, dict[str, str]] = field(default_factory=dict)   # per output: types


def compile_stream(columns: Mapping[str, str], as_of_us: int, *, names: Names | None = None,
                   base_leads: Mapping[str, str] | None = None,
                   base_accounts: Mapping[str, str] | None = None,
                   rounds: int = ROUNDS, dedupe: bool = True, arg_max: bool = False
                   ) -> StreamStage:
    """The stream stage over the `messages` relation with `columns` (name → SQL type) as of
    `as_of_us`; `base_leads` / `base_accounts`: the columns of the tables named in `names`.
    `dedupe=False`: the runner knows every message_id is distinct (no window needed).
    `arg_max=True`: point-in-time values by DuckDB's `arg_max_null` (DuckDB only)."""
    names = names or Names()
    missing = [c for c in FIXED if c not in columns]
    if missing:
        raise ValueError(f"the messages relation has no column {', '.join(missing)}")
    account_cols = [c for c in value_columns(columns, "account.") if c != "account.id"]
    events_out = {"lead_id": "VARCHAR", "ts": "BIGINT", "type": "VARCHAR", "event": "VARCHAR",
                  "path": "VARCHAR"}
    for c in columns:
        if c.startswith(("properties.", "context.")):
            events_out[c] = columns[c]
    accounts_q, accounts_out = accounts_query(names, columns, account_cols, base_accounts,
                                              arg_max)
    leads_q, leads_out = leads_query(names, columns, accounts_out, base_leads, arg_max)
    return StreamStage(
        names, msg_query(names, as_of_us, columns, dedupe), edges_query(names),
        label_rounds(names.edges, None, rounds),
        ids_query(names), events_query(names, list(events_out)[5:]), accounts_q, leads_q,
        {"events": events_out, "leads": leads_out, "accounts": accounts_out})


def msg_query(names: Names, as_of_us: int, columns: Mapping[str, str], dedupe: bool = True
              ) -> exp.Query:
    """The messages at or before as_of, one per message_id (the smallest order key), with
    the order key `k` (µs; NEVER without a timestamp) and the own identity `ident`."""
    key = f"COALESCE(UNIX_MICROS({q('timestamp')}), {NEVER})"
    kept = ", ".join(q(c) for c in [*columns, "k", "ident"])
    if not dedupe:
        return parse(f"""
            SELECT *, {key} AS k,
                   CASE WHEN user_id IS NOT NULL THEN 'u:' || user_id
                        ELSE 'a:' || anonymous_id END AS ident
            FROM {q(names.messages)} WHERE {key} <= {int(as_of_us)}""")
    return parse(f"""
        SELECT {kept} FROM (
          SELECT m.*, ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY k) AS rn
          FROM (SELECT *, {key} AS k,
                  CASE WHEN user_id IS NOT NULL THEN 'u:' || user_id
                       ELSE 'a:' || anonymous_id END AS ident
                FROM {q(names.messages)} WHERE {key} <= {int(as_of_us)}) AS m
        ) AS d WHERE rn = 1""")


# Two rows, k = 0 and k = 1: a relation read once and crossed with them yields each of its
# rows twice — how a step below uses a relation two ways with one reference to it.
TWICE = "(SELECT 0 AS k UNION ALL SELECT 1 AS k)"


def claims_sql(names: Names) -> str:
    """Each anonymous id's first claimant: the userId of the earliest identify carrying it
    with a userId, or alias naming it as previousId (one read of the messages)."""
    anon = "CASE WHEN type = 'alias' THEN previous_id ELSE anonymous_id END"
    return f"""
        SELECT anon, claimant FROM (
          SELECT {anon} AS anon, user_id AS claimant,
                 ROW_NUMBER() OVER (PARTITION BY {anon} ORDER BY k, message_id) AS rn
          FROM {q(names.msg)}
          WHERE type = 'alias' OR (type = 'identify' AND user_id IS NOT NULL
                                   AND anonymous_id IS NOT NULL)) AS f WHERE rn = 1"""


def edges_query(names: Names) -> exp.Query:
    """Edges between users (both directions, from one read of the pairs crossed with
    TWICE): alias U→P gives U–P and U–(P's first claimant); anonymous ids are then folded
    onto their claimants."""
    return parse(f"""
        SELECT DISTINCT CASE WHEN t.k = 0 THEN a ELSE b END AS src,
                        CASE WHEN t.k = 0 THEN b ELSE a END AS dst
        FROM ({_edge_pairs(names)}) AS p CROSS JOIN {TWICE} AS t""")


def _edge_pairs(names: Names) -> str:
    """Per alias U→P: U–P (k = 0) and U–(P's first claimant) (k = 1, none without one: its
    NULL fails `a <> b`), from one read of the alias messages."""
    return f"""
        SELECT a, b FROM (
          SELECT m.user_id AS a,
                 CASE WHEN t.k = 0 THEN m.previous_id ELSE f.claimant END AS b
          FROM {q(names.msg)} AS m
          LEFT JOIN ({claims_sql(names)}) AS f ON f.anon = m.previous_id
          CROSS JOIN {TWICE} AS t
          WHERE m.type = 'alias') AS p
        WHERE a <> b"""


def start_labels(edges: str) -> exp.Query:
    """Every user with an edge labelled with itself."""
    return parse(f"SELECT DISTINCT src AS node, src AS label FROM {q(edges)}")


def label_rounds(edges: str, labels: exp.Query | str | None, rounds: int = ROUNDS
                 ) -> exp.Query:
    """`rounds` rounds of min-label propagation, each followed by a pointer jump (a node
    takes its label's label), over the symmetric `edges` (with a self loop per node), from
    `labels` (a query or a table of node, label; None: every node its own label): one
    statement, a CTE per step, `node, label` out.

    Every step reads the one before exactly once, and the edges are read once in all, so
    engines that inline CTEs (Spark inlines each reference) see a plan that grows linearly
    with the rounds and holds the edges once. A round works on the edge rows themselves,
    each carrying its end's label (`ldst`): the smallest over a node's rows is its new label
    `c` (a window), the jump is a window too — each row once as its node's `c` (k = 0) and
    once asking for its `c`'s own (k = 1, partitioned by `c`, where that node's k = 0 rows
    give the value) — and a last window hands each row its end's new label the same way.
    Every label is itself a node of the round (a component's member, with its self loop),
    so the windows always find it, as the self-joins' inner joins did."""
    loops = f"""SELECT DISTINCT src, CASE WHEN t.k = 0 THEN dst ELSE src END AS dst
                FROM {q(edges)} CROSS JOIN {TWICE} AS t"""
    if labels is None:
        start = f"SELECT src, dst, dst AS ldst FROM ({loops}) AS e"
    else:
        given = f"({labels.sql(READ)})" if isinstance(labels, exp.Query) else q(labels)
        start = f"""SELECT e.src, e.dst, l.label AS ldst FROM ({loops}) AS e
                    JOIN {given} AS l ON l.node = e.dst"""
    ctes = [f"x0 AS ({start})"]
    for r in range(1, rounds + 1):
        # c: the node's smallest label over its edges; l: c's own c (the pointer jump)
        ctes.append(f"""j{r} AS (
            SELECT src, dst, label FROM (
              SELECT t.k, a.src, a.dst,
                     MIN(CASE WHEN t.k = 0 THEN a.c END) OVER (
                       PARTITION BY CASE WHEN t.k = 0 THEN a.src ELSE a.c END) AS label
              FROM (SELECT src, dst, MIN(ldst) OVER (PARTITION BY src) AS c
                    FROM x{r - 1}) AS a CROSS JOIN {TWICE} AS t) AS j
            WHERE j.k = 1)""")
        if r < rounds:    # each edge row its end's new label, for the next round
            ctes.append(f"""x{r} AS (
                SELECT src, dst, ldst FROM (
                  SELECT t.k, b.src, b.dst,
                         MIN(CASE WHEN t.k = 0 THEN b.label END) OVER (
                           PARTITION BY CASE WHEN t.k = 0 THEN b.src ELSE b.dst END) AS ldst
                  FROM j{r} AS b CROSS JOIN {TWICE} AS t) AS y
                WHERE y.k = 1)""")
    return parse(f"WITH {', '.join(ctes)} SELECT DISTINCT src AS node, label FROM j{rounds}")


def unconverged(edges: str, labels: str) -> exp.Query:
    """How many edges join two different labels (0: every component has its minimum)."""
    return parse(f"""
        SELECT COUNT(*) AS n FROM {q(edges)} AS e
        JOIN {q(labels)} AS a ON a.node = e.src JOIN {q(labels)} AS b ON b.node = e.dst
        WHERE a.label <> b.label""")


def ids_query(names: Names) -> exp.Query:
    """`ident, lead_id` for every own identity of a message: a user's lead is its
    component's smallest own userId; an anonymous id claimed by a user joins that user's lead,
    an unclaimed one is a lead of its own (`<id>#2` where a user lead has its id).

    One relation of identities (own userIds, anonymous ids with their first claimant) reads
    the labels once, and windows do what joins back would (a statement that inlines each CTE
    reference, as Spark's does, then holds the labels once): the component's smallest userId
    over the rows of its root, then whether a user lead has an anonymous id's name."""
    m = q(names.msg)
    nodes = f"""
        SELECT 'u' AS kind, u AS id, CAST(NULL AS STRING) AS claimant
        FROM (SELECT DISTINCT user_id AS u FROM {m} WHERE user_id IS NOT NULL) AS o
        UNION ALL
        SELECT 'a', a.a, c.claimant
        FROM (SELECT DISTINCT anonymous_id AS a FROM {m} WHERE user_id IS NULL) AS a
        LEFT JOIN ({claims_sql(names)}) AS c ON c.anon = a.a"""
    # an anonymous id's root is its claimant's (none unclaimed: a NULL partition of no user)
    user = "CASE WHEN n.kind = 'u' THEN n.id ELSE n.claimant END"
    rooted = f"""
        SELECT n.kind, n.id, n.claimant, COALESCE(l.label, {user}) AS root
        FROM ({nodes}) AS n LEFT JOIN {q(names.labels)} AS l ON l.node = {user}"""
    led = f"""
        SELECT kind, id, claimant,
               MIN(CASE WHEN kind = 'u' THEN id END) OVER (PARTITION BY root) AS lead_id
        FROM ({rooted}) AS r"""
    return parse(f"""
        SELECT CASE WHEN kind = 'u' THEN 'u:' ELSE 'a:' END || id AS ident,
               CASE WHEN kind = 'u' OR claimant IS NOT NULL THEN lead_id
                    WHEN taken = 1 THEN id || '#2' ELSE id END AS lead_id
        FROM (SELECT kind, id, claimant, lead_id,
                     MAX(CASE WHEN kind = 'u' THEN 1 END) OVER (
                       PARTITION BY CASE WHEN kind = 'u' THEN lead_id ELSE id END) AS taken
              FROM ({led}) AS d) AS t""")


def events_query(names: Names, value_cols: list[str]) -> exp.Query:
    """The canonical events: track, page and screen messages with their lead's id. Most
    identities are their own lead (the userId, else the anonymousId): only the few that are
    not (`moved`: merged, claimed, renamed) are looked up, by the message's raw id and its
    kind (one read of the identities)."""
    values = "".join(f", m.{q(c)}" for c in value_cols)
    kinds = ", ".join(s(k) for k in EVENT_KINDS)
    moved = f"""SELECT SUBSTRING(ident, 1, 1) = 'u' AS is_user, SUBSTRING(ident, 3) AS id,
                       lead_id
                FROM {q(names.ids)} WHERE lead_id <> SUBSTRING(ident, 3)"""
    return parse(f"""
        SELECT COALESCE(mv.lead_id, m.user_id, m.anonymous_id) AS lead_id,
               m.k AS ts, m.type, m.event, m.path{values}
        FROM {q(names.msg)} AS m
        LEFT JOIN ({moved}) AS mv
          ON mv.id = COALESCE(m.user_id, m.anonymous_id)
         AND mv.is_user = (m.user_id IS NOT NULL)
        WHERE m.type IN ({kinds})""")


def pivot(source: str, cols: list[str], owner: str, arg_max: bool = False) -> str:
    """One row per owner of `source`: per top-level key of `cols`, the key's columns from the
    latest (order key) row of the owner that sets it (one of the key's columns not null), and
    `has.<key>` flags telling which keys the stream set (a base table's value holds
    otherwise). The rows are repeated once per key they set (a CROSS JOIN with the keys),
    the latest per owner and key kept by a window: no lists, no arg_max, no join back.
    `arg_max`: one grouping instead, DuckDB's `arg_max_null` per column (NULL values kept)
    filtered to the rows setting its key — the same result, a fraction of the work."""
    if not cols:
        return f"SELECT DISTINCT m.{q(owner)} FROM {source} AS m"
    keys: dict[str, list[str]] = {}
    for c in cols:
        keys.setdefault(top_key(c), []).append(c)
    if arg_max:
        setting = {k: " OR ".join(f"m.{q(c)} IS NOT NULL" for c in found)
                   for k, found in keys.items()}
        picks = [f"ARG_MAX_NULL(m.{q(c)}, STRUCT(m.k, m.message_id)) FILTER (WHERE "
                 f"{setting[top_key(c)]}) AS {q(c)}" for c in cols]
        flags = [f"MAX(CASE WHEN {setting[k]} THEN 1 ELSE 0 END) AS {q('has.' + k)}"
                 for k in sorted(keys)]
        return f"""
            SELECT m.{q(owner)} AS {q(owner)}{''.join(', ' + p for p in picks + flags)}
            FROM {source} AS m GROUP BY m.{q(owner)}"""
    values = ", ".join(f"({s(k)})" for k in keys)
    sets = " ".join(f"WHEN {s(k)} THEN " + " OR ".join(f"m.{q(c)} IS NOT NULL" for c in found)
                    for k, found in keys.items())
    carried = "".join(f", m.{q(c)}" for c in cols)
    picks = [f"MAX(CASE WHEN w.key = {s(top_key(c))} THEN w.{q(c)} END) AS {q(c)}"
             for c in cols]
    flags = [f"MAX(CASE WHEN w.key = {s(k)} THEN 1 ELSE 0 END) AS {q('has.' + k)}"
             for k in sorted(keys)]
    return f"""
        SELECT w.owner AS {q(owner)}{''.join(', ' + p for p in picks + flags)}
        FROM (
          SELECT x.*, ROW_NUMBER() OVER (PARTITION BY owner, key ORDER BY k DESC,
                                         message_id DESC) AS rn
          FROM (SELECT m.{q(owner)} AS owner, m.message_id, m.k, keys.key{carried}
                FROM {source} AS m CROSS JOIN (VALUES {values}) AS keys(key)
                WHERE CASE keys.key {sets} ELSE FALSE END) AS x
        ) AS w WHERE w.rn = 1
        GROUP BY w.owner"""


def pick(c: str, stream_cols: Mapping[str, str], base_cols: Mapping[str, str],
         stream_holds: str, stream_sets_none: str | None) -> tuple[str, str]:
    """(SQL, type) of column `c` merged from the stream (`s`) and a base table (`b`): the
    stream's value where `stream_holds`, else the base's (NULL where `stream_sets_none`: the
    stream set the key, its value has no such column); text where the types differ."""
    in_s, in_b = c in stream_cols, c in base_cols
    if in_s and not in_b:
        return f"s.{q(c)}", stream_cols[c]
    if in_b and not in_s:
        if stream_sets_none is None:
            return f"b.{q(c)}", base_cols[c]
        return f"CASE WHEN {stream_sets_none} THEN NULL ELSE b.{q(c)} END", base_cols[c]
    if stream_cols[c] == base_cols[c]:
        return f"CASE WHEN {stream_holds} THEN s.{q(c)} ELSE b.{q(c)} END", stream_cols[c]
    return (f"CASE WHEN {stream_holds} THEN CAST(s.{q(c)} AS STRING) "
            f"ELSE CAST(b.{q(c)} AS STRING) END", "VARCHAR")


def merge_base(stream_cols: Mapping[str, str], base_cols: Mapping[str, str], prefix: str
               ) -> list[tuple[str, str, str]]:
    """(column, SQL, type) of the `prefix` columns of the stream's rows (`s`, with
    `has.<k>` flags) over a base table's (`b`): per top-level key the stream's value where it
    set the key, else the base's."""
    out = []
    names = dict.fromkeys([*stream_cols, *(c for c in base_cols if c.startswith(prefix))])
    for c in names:
        flag = f"s.{q('has.' + top_key(c))} = 1"
        keyed = any(top_key(x) == top_key(c) for x in stream_cols)
        sql, kind = pick(c, stream_cols, base_cols, flag, flag if keyed else None)
        out.append((c, sql, kind))
    return out


def joined(stream: str, key: str, base: str | None, picks: list[tuple[str, str, str]]
           ) -> tuple[str, dict[str, str]]:
    """The stream's rows full-outer-joined with the base table on `key`, as `picks`."""
    if base is None:
        picks = [(c, f"s.{q(c)}", t) for c, _, t in picks]
        head = f"s.{q(key)} AS {q(key)}"
    else:
        head = f"COALESCE(s.{q(key)}, b.{q(key)}) AS {q(key)}"
    sql = f"SELECT {head}{''.join(f', {x} AS {q(c)}' for c, x, _ in picks)} FROM ({stream}) AS s"
    if base is not None:
        sql += f" FULL OUTER JOIN {q(base)} AS b ON b.{q(key)} = s.{q(key)}"
    return sql, {key: "VARCHAR", **{c: t for c, _, t in picks}}


def accounts_query(names: Names, columns: Mapping[str, str], account_cols: list[str],
                   base: Mapping[str, str] | None, arg_max: bool = False
                   ) -> tuple[exp.Query, dict[str, str]]:
    """`account_id, account.<x>`: every account a group or identify names by as_of, each
    trait key the latest value naming it; over the accounts table when one is given."""
    m = q(names.msg)
    naming = f"(SELECT * FROM {m} WHERE account_id IS NOT NULL AND type IN ('group', 'identify'))"
    traits = pivot(naming, account_cols, "account_id", arg_max)
    stream = f"""
        SELECT a.account_id{''.join(', t.' + q(c) for c in account_cols)}
        {''.join(', t.' + q('has.' + k) for k in sorted({top_key(c) for c in account_cols}))}
        FROM (SELECT DISTINCT account_id FROM {naming} AS n) AS a
        LEFT JOIN ({traits}) AS t ON t.account_id = a.account_id"""
    stream_cols = {c: columns[c] for c in account_cols}
    sql, out = joined(stream, "account_id", names.base_accounts,
                      merge_base(stream_cols, base or {}, "account."))
    return parse(sql), out


def leads_query(names: Names, columns: Mapping[str, str], accounts: Mapping[str, str],
                base: Mapping[str, str] | None, arg_max: bool = False
                ) -> tuple[exp.Query, dict[str, str]]:
    """`lead_id, traits.<x>, account.id, account.<x>`: every lead with a message by as_of,
    its traits as of then, its latest account and that account's traits; over the leads
    table when one is given (its account columns hold where the stream names none)."""
    trait_cols = value_columns(columns, "traits.")
    account_cols = [c for c in accounts if c.startswith("account.")]
    flags = sorted({top_key(c) for c in trait_cols})
    if arg_max:
        stream = _leads_by_arg_max(names, trait_cols, account_cols, flags)
    else:
        stream = f"""
            SELECT p.lead_id{''.join(', p.' + q(c) for c in trait_cols)}
            {''.join(', p.' + q('has.' + k) for k in flags)},
            p.{q('account.id')}{''.join(', a.' + q(c) for c in account_cols)}
            FROM ({lead_pivot(names, trait_cols)}) AS p
            LEFT JOIN {q(names.accounts)} AS a ON a.account_id = p.{q('account.id')}"""
    base_cols = dict(base or {})
    picks = merge_base({c: columns[c] for c in trait_cols}, base_cols, "traits.")
    # the account: the stream's where it names one, else the base table's
    named = f"s.{q('account.id')} IS NOT NULL"
    stream_account = {"account.id": "VARCHAR", **{c: accounts[c] for c in account_cols}}
    for c in dict.fromkeys([*stream_account, *(c for c in base_cols
                                               if c.startswith("account."))]):
        sql, kind = pick(c, stream_account, base_cols, named, named)
        picks.append((c, sql, kind))
    sql, out = joined(stream, "lead_id", names.base_leads, picks)
    return parse(sql), out


def _leads_by_arg_max(names: Names, trait_cols: list[str], account_cols: list[str],
                      flags: list[str]) -> str:
    """The stream's leads on DuckDB (its stages are tables: reading the identities three
    times costs nothing there): traits by `pivot`, the account by ARG_MAX."""
    m, ids = q(names.msg), q(names.ids)
    identifies = f"""(SELECT i.lead_id, m.* FROM {m} AS m JOIN {ids} AS i
                      ON i.ident = m.ident WHERE m.type = 'identify')"""
    traits = pivot(identifies, trait_cols, "lead_id", arg_max=True)
    account = f"""
        SELECT i.lead_id, ARG_MAX(m.account_id, STRUCT(m.k, m.message_id)) AS account_id
        FROM {m} AS m JOIN {ids} AS i ON i.ident = m.ident
        WHERE m.account_id IS NOT NULL AND m.type IN ('group', 'identify')
        GROUP BY i.lead_id"""
    return f"""
        SELECT p.lead_id{''.join(', t.' + q(c) for c in trait_cols)}
        {''.join(', t.' + q('has.' + k) for k in flags)},
        la.account_id AS {q('account.id')}{''.join(', a.' + q(c) for c in account_cols)}
        FROM (SELECT DISTINCT lead_id FROM {ids}) AS p
        LEFT JOIN ({traits}) AS t ON t.lead_id = p.lead_id
        LEFT JOIN ({account}) AS la ON la.lead_id = p.lead_id
        LEFT JOIN {q(names.accounts)} AS a ON a.account_id = la.account_id"""


# Pseudo keys of `lead_pivot` beside the traits' top-level keys (which hold no dot): the
# lead itself (every identity's row sets it) and its account (a group / identify naming one).
LEAD_KEY, ACCOUNT_KEY = ".", ".account"


def lead_pivot(names: Names, trait_cols: list[str]) -> str:
    """`lead_id`, per trait key its columns and `has.<key>` flag, `account.id`: one row per
    lead, from ONE read of the identities (a statement that inlines each CTE reference, as
    Spark's does, holds them once). Each identity with its identify and group messages, the
    rows repeated per key they set (`pivot`'s way: the latest per lead and key by a window),
    with two pseudo keys: the lead (so that a lead without such messages has its row) and
    its account."""
    keys: dict[str, list[str]] = {}
    for c in trait_cols:
        keys.setdefault(top_key(c), []).append(c)
    sets = " ".join(
        f"WHEN {s(k)} THEN m.type = 'identify' AND ("
        + " OR ".join(f"m.{q(c)} IS NOT NULL" for c in found) + ")"
        for k, found in keys.items())
    values = ", ".join(f"({s(k)})" for k in [LEAD_KEY, ACCOUNT_KEY, *keys])
    carried = "".join(f", m.{q(c)}" for c in trait_cols)
    picks = [f"MAX(CASE WHEN w.key = {s(top_key(c))} THEN w.{q(c)} END) AS {q(c)}"
             for c in trait_cols]
    flags = [f"MAX(CASE WHEN w.key = {s(k)} THEN 1 ELSE 0 END) AS {q('has.' + k)}"
             for k in sorted(keys)]
    account = f"MAX(CASE WHEN w.key = {s(ACCOUNT_KEY)} THEN w.account_id END) AS " \
        f"{q('account.id')}"
    return f"""
        SELECT w.lead_id{''.join(', ' + p for p in [*picks, *flags, account])}
        FROM (
          SELECT x.*, ROW_NUMBER() OVER (PARTITION BY lead_id, key ORDER BY k DESC,
                                         message_id DESC) AS rn
          FROM (SELECT i.lead_id, m.message_id, m.k, m.account_id, keys.key{carried}
                FROM {q(names.ids)} AS i
                LEFT JOIN {q(names.msg)} AS m
                  ON m.ident = i.ident AND m.type IN ('identify', 'group')
                CROSS JOIN (VALUES {values}) AS keys(key)
                WHERE CASE keys.key WHEN {s(LEAD_KEY)} THEN TRUE
                                    WHEN {s(ACCOUNT_KEY)} THEN m.account_id IS NOT NULL
                                    {sets} ELSE FALSE END) AS x
        ) AS w WHERE w.rn = 1
        GROUP BY w.lead_id"""
