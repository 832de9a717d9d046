"""The message history `--state` keeps for a Segment stream (`state.stream`): every message
read so far, so that a later identify, alias or group can be followed back — the events an
anonymous id sent before it was claimed move to the person, and traits are point in time.

On disk, in the state folder's `_messages/` (shared by its models: a model added later folds
the whole history), one pair of Parquet parts per run that brought new files, never
rewritten:

    part-<n>.parquet     the messages the run's new files held (the `messages` relation of
                         `engine.sql.stream`, plus the order key `k` and own identity
                         `ident`), minus repeats of a message kept before
    idents-<n>.parquet   each identity an event of those messages was sent with, its first
                         time (`ident, k`): the stream stage needs the identities of events,
                         not the events, so it runs over the identify, alias and group
                         messages plus one message per identity — a small input, whatever
                         the number of events

`_messages/meta.json` lists the files read and the parts (a part a crashed run wrote is not
listed, and is written again); each model's `meta.json` the parts it has folded. The SQL is
sqlglot (the stream stage's templates, in Spark's dialect), run by the state's runner on
DuckDB or Spark.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp

from leadscore.engine.batch.state.fold import union_by_name
from leadscore.engine.batch.state.runner import Resolved, Runner
from leadscore.engine.sql.build import col
from leadscore.engine.sql.stream import EVENT_KINDS, FIXED, NEVER, parse, q, s
from leadscore.errors import InputError
from leadscore.io import partitions

KINDS = ", ".join(s(k) for k in EVENT_KINDS)
SYNTHETIC = "\x00ident:"        # message ids of the stand-ins for identities: no real one


def keyed(view: str) -> exp.Query:
    """The messages of `view` with their order key `k` and own identity `ident` (as the
    stream stage's `msg` has them)."""
    return parse(f"""
        SELECT *, COALESCE(UNIX_MICROS({q('timestamp')}), {NEVER}) AS k,
               CASE WHEN user_id IS NOT NULL THEN 'u:' || user_id
                    ELSE 'a:' || anonymous_id END AS ident
        FROM {q(view)}""")


def first_copies(view: str, columns: list[str]) -> exp.Query:
    """One row per message_id of `view`: the smallest order key."""
    kept = ", ".join(q(c) for c in columns)
    return parse(f"""
        SELECT {kept} FROM (
          SELECT {kept}, ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY k) AS rn
          FROM {q(view)}) AS d
        WHERE rn = 1""")


def unseen(new: str, kept: str) -> exp.Query:
    """The messages of `new` that no copy in `kept` precedes (a copy kept at or before a new
    one's time makes the new one a repeat: the earliest counts)."""
    return parse(f"""
        SELECT n.* FROM {q(new)} AS n
        LEFT ANTI JOIN {q(kept)} AS h ON h.message_id = n.message_id AND h.k <= n.k""")


def earlier_copies(new: str, kept: str) -> exp.Query:
    """How many messages of `new` come again earlier than a copy kept before."""
    return parse(f"""
        SELECT COUNT(*) AS n FROM {q(new)} AS n
        LEFT SEMI JOIN {q(kept)} AS h ON h.message_id = n.message_id""")


def identities(messages: str) -> exp.Query:
    """Each identity an event of `messages` was sent with, and its first time."""
    return parse(f"""
        SELECT ident, MIN(k) AS k FROM {q(messages)} WHERE type IN ({KINDS})
        GROUP BY ident""")


def stream_input(history: str, columns: dict[str, str], idents: str, from_us: exp.Expr
                 ) -> exp.Query:
    """The stream stage's `messages`: the identify, alias and group messages of `history`
    (their `columns`), and per identity of `idents` one track message at its first time —
    the stage reads an event message for its identity only."""
    wanted = [c for c in columns if c in FIXED or c.startswith(("traits.", "account."))]
    links = ", ".join(q(c) for c in wanted)
    stand_ins = []
    for c in wanted:
        if c == "message_id":
            stand_ins.append(f"{s(SYNTHETIC)} || ident AS message_id")
        elif c == "type":
            stand_ins.append("'track' AS type")
        elif c == "user_id":
            stand_ins.append("CASE WHEN LEFT(ident, 2) = 'u:' THEN SUBSTRING(ident, 3) END "
                             "AS user_id")
        elif c == "anonymous_id":
            stand_ins.append("CASE WHEN LEFT(ident, 2) = 'a:' THEN SUBSTRING(ident, 3) END "
                             "AS anonymous_id")
        elif c == "timestamp":
            stand_ins.append(f"k AS {q('timestamp')}")
        else:       # typed by the union's first part (a CAST could not name a STRUCT)
            stand_ins.append(f"NULL AS {q(c)}")
    query = parse(f"""
        SELECT {links} FROM {q(history)} WHERE type NOT IN ({KINDS})
        UNION ALL
        SELECT {', '.join(stand_ins)} FROM {q(idents)}""")
    assert isinstance(query, exp.Union)
    stamp = query.expression.selects[wanted.index("timestamp")]
    stamp.set("this", from_us.copy())   # `k AS timestamp` → the dialect's µs → timestamp
    return query


def events(history: str, columns: dict[str, str], ids: str) -> exp.Query:
    """The canonical events of `history` (its `columns`) under the identities `ids`: lead_id,
    ts, type, event, path, properties and context, and `fresh` (read by this run)."""
    values = "".join(f", h.{q(c)}" for c in columns
                     if c.startswith(("properties.", "context.")))
    return parse(f"""
        SELECT i.lead_id, h.k AS ts, h.type, h.event, h.path{values}, h.fresh
        FROM {q(history)} AS h JOIN {q(ids)} AS i ON i.ident = h.ident
        WHERE h.type IN ({KINDS})""")


def moved(old_ids: str, ids: str) -> exp.Query:
    """The leads an identity left or joined since `old_ids`: both ends of every identity
    whose lead changed (a merge, a claim, a lead id that changed)."""
    pairs = f"""FROM {q(old_ids)} AS o JOIN {q(ids)} AS n ON n.ident = o.ident
                WHERE o.lead_id <> n.lead_id"""
    return parse(f"SELECT o.lead_id {pairs} UNION SELECT n.lead_id {pairs}")


@dataclass
class Read:
    """The kept messages as one model's state reads them."""

    messages: str               # every message kept, `fresh` 1 in the parts it has not folded
    columns: dict[str, str]
    idents: str                 # ident, k: every identity of an event and its first time
    earlier: int                # messages of those parts that came again earlier than a copy


class History:
    """The kept messages of a state folder, shared by its models (`meta.json` there: the
    files read, the parts, per part how many of its messages came again earlier than the
    copy kept before), in a runner."""

    def __init__(self, con: Runner, folder: Path, prefix: str):
        self.con, self.folder, self.prefix = con, folder, prefix
        path = folder / "meta.json"
        self.meta: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {
            "files": {}, "parts": [], "next": 0, "earlier": {}, "repeats": False}

    @property
    def parts(self) -> list[int]:
        return list(self.meta["parts"])

    def path(self, kind: str, part: int) -> Path:
        return self.folder / f"{kind}-{part:05d}.parquet"

    def add(self, files: list[str]) -> int:
        """The messages of the `files` not read before kept as a new part; how many bad
        messages were left out. A file read before that changed: every file is read anew if
        all those read before are among `files` (else an InputError)."""
        signatures = {f: partitions.signature(f) for f in files}
        seen: dict[str, list[int]] = self.meta["files"]
        changed = sorted(f for f in files if f in seen and seen[f] != signatures[f])
        if changed:
            missing = sorted(f for f in seen if f not in signatures)
            if missing:
                raise InputError(
                    f"{changed[0]}: read by an earlier --state run and changed since; the "
                    f"state keeps its messages as they were then. Give every file the state "
                    f"was built from ({missing[0]} is missing) to read them anew, or start a "
                    f"new --state folder")
            self.meta.update(files={}, parts=[], earlier={}, repeats=False)
            seen = {}
        new_files = [f for f in files if f not in seen]
        if not new_files:
            return 0
        con, p = self.con, self.prefix
        raw, rejected = con.message_files(new_files, p + "_h_raw")
        new = con.create(p + "_h_keyed", keyed(raw))
        new = con.create(p + "_h_first", first_copies(new, list(con.columns(new))))
        earlier = 0
        if self.parts:
            old = con.load_parts(p + "_h_kept", [self.path("part", n) for n in self.parts])
            new = con.create(p + "_h_new", unseen(new, old))
            earlier = int(con.scalar(earlier_copies(new, old)))
        part = int(self.meta["next"])
        self.folder.mkdir(parents=True, exist_ok=True)
        con.save(new, self.path("part", part))
        con.save(con.create(p + "_h_new_idents", identities(new)), self.path("idents", part))
        self.meta["files"] = {**seen, **{f: signatures[f] for f in new_files}}
        self.meta["parts"] = [*self.parts, part]
        self.meta["next"] = part + 1
        self.meta["earlier"][str(part)] = earlier
        self.meta["repeats"] = bool(self.meta["repeats"] or earlier)
        staging = self.folder / "meta.json.new"
        staging.write_text(json.dumps(self.meta))
        os.replace(staging, self.folder / "meta.json")     # the part is there: now listed
        return rejected

    def read(self, folded: list[int]) -> Read:
        """Every kept message, `fresh` where its part is not among `folded`."""
        con, p = self.con, self.prefix
        selects: list[exp.Select] = []
        for fresh, group in ((0, [n for n in self.parts if n in folded]),
                             (1, [n for n in self.parts if n not in folded])):
            if group:
                name = con.load_parts(f"{p}_h_parts{fresh}",
                                      [self.path("part", n) for n in group])
                selects.append(exp.select(*(col(c) for c in con.columns(name)),
                                          exp.alias_(exp.Literal.number(fresh), "fresh"))
                               .from_(name))
        everything = con.create(p + "_h_all", union_by_name(selects), kind="VIEW")
        columns = con.columns(everything)
        if self.meta["repeats"]:
            everything = con.create(p + "_h_once", first_copies(everything, list(columns)),
                                    kind="VIEW")
            idents = con.create(p + "_h_idents", identities(everything))
        else:
            kept = con.load_parts(p + "_h_idents_parts",
                                  [self.path("idents", n) for n in self.parts])
            idents = con.create(p + "_h_idents", first_times_of(
                exp.select(col("ident"), col("k")).from_(kept)))
        earlier = sum(int(self.meta["earlier"].get(str(n), 0)) for n in self.parts
                      if n not in folded)
        return Read(everything, columns, idents, earlier)

    def resolve(self, read: Read, as_of: int,
                base_leads: tuple[str, dict[str, str]] | None) -> Resolved:
        """The stream stage as of `as_of` over the kept messages' identities and links."""
        con = self.con
        stage_in = con.create(self.prefix + "_h_stage", stream_input(
            read.messages, read.columns, read.idents, con.dialect.from_us(col("k"))))
        return con.stream(stage_in, as_of, base_leads)


def first_times_of(union: exp.Query) -> exp.Query:
    """Per identity, its first time."""
    return exp.select(col("ident"), exp.alias_(exp.Min(this=col("k")), "k")).from_(
        union.subquery()).group_by(col("ident"))
