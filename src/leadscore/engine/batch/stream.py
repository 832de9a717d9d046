"""The stream stage (`engine.sql.stream`) run on DuckDB: a `messages` table as of `as_of` into
canonical `events`, `leads` and `accounts` tables, identity labels iterated to convergence."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import duckdb

from leadscore.engine.sql.stream import Names, compile_stream, label_rounds, unconverged
from leadscore.errors import EngineError
from leadscore.io.sqltext import quote

_sequence = itertools.count()
MAX_STATEMENTS = 40     # label statements (of ROUNDS rounds each) before giving up


@dataclass(frozen=True)
class StreamTables:
    """The canonical tables the stream stage made, and their columns."""

    events: str
    leads: str
    accounts: str
    ids: str                    # ident (`u:<userId>` / `a:<anonymousId>`) → lead_id
    events_columns: dict[str, str]
    leads_columns: dict[str, str]
    accounts_columns: dict[str, str]


def run_stream(con: duckdb.DuckDBPyConnection, messages: str, as_of: int, *,
               base_leads: str | None = None, base_accounts: str | None = None
               ) -> StreamTables:
    """Stage the stream of table `messages` as of `as_of` (µs) as temporary tables."""
    n = next(_sequence)
    names = Names(messages=messages, msg=f"__stream_msg_{n}", edges=f"__stream_edges_{n}",
                  labels=f"__stream_labels_{n}", ids=f"__stream_ids_{n}",
                  events=f"__stream_events_{n}", leads=f"__stream_leads_{n}",
                  accounts=f"__stream_accounts_{n}", base_leads=base_leads,
                  base_accounts=base_accounts)
    # message ids all distinct (the usual export): no dedupe window, `msg` a view. Counted
    # by their hashes (cheaper than the text): as many distinct hashes as rows proves the ids
    # distinct; a collision only costs the dedupe, which is right in any case
    [(repeated,)] = con.sql(f"SELECT count(*) - count(DISTINCT hash(message_id)) "
                            f"FROM {quote(messages)}").fetchall()
    stage = compile_stream(columns_of(con, messages), as_of, names=names, dedupe=bool(repeated),
                           arg_max=True,
                           base_leads=columns_of(con, base_leads) if base_leads else None,
                           base_accounts=columns_of(con, base_accounts) if base_accounts
                           else None)
    try:
        if repeated:
            create(con, names.msg, stage.msg.sql(dialect="duckdb"))
        else:
            con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(names.msg)} AS "
                    f"{stage.msg.sql(dialect='duckdb')}")
        create(con, names.edges, stage.edges.sql(dialect="duckdb"))
        create(con, names.labels, stage.labels.sql(dialect="duckdb"))
        for _ in range(MAX_STATEMENTS):
            [(left,)] = con.sql(unconverged(names.edges, names.labels).sql(dialect="duckdb")
                                ).fetchall()
            if not left:
                break
            again = label_rounds(names.edges, names.labels).sql(dialect="duckdb")
            create(con, names.labels + "_next", again)
            con.sql(f"DROP TABLE {quote(names.labels)}")
            con.sql(f"ALTER TABLE {quote(names.labels + '_next')} RENAME TO "
                    f"{quote(names.labels)}")
        else:
            raise EngineError(f"identity resolution did not converge after {MAX_STATEMENTS} "
                              "statements of label propagation (an alias chain that long?)")
        create(con, names.ids, stage.ids.sql(dialect="duckdb"))
        if repeated:
            create(con, names.events, stage.events.sql(dialect="duckdb"))
        else:   # read once by the plan (which materializes its scan): no copy of the events
            con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(names.events)} AS "
                    f"{stage.events.sql(dialect='duckdb')}")
        create(con, names.accounts, stage.accounts.sql(dialect="duckdb"))
        create(con, names.leads, stage.leads.sql(dialect="duckdb"))
    except duckdb.Error as exc:
        raise EngineError(f"the stream stage failed: {exc}") from None
    finally:
        if repeated:    # else the events view reads it
            con.sql(f"DROP TABLE IF EXISTS {quote(names.msg)}")
        for table in (names.edges, names.labels):
            con.sql(f"DROP TABLE IF EXISTS {quote(table)}")
    return StreamTables(names.events, names.leads, names.accounts, names.ids,
                        columns_of(con, names.events), columns_of(con, names.leads),
                        columns_of(con, names.accounts))


def create(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> None:
    con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS {sql}")


def columns_of(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    rel = con.sql(f"SELECT * FROM {quote(name)} LIMIT 0")
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
