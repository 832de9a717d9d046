"""The message history `--state` keeps for a Segment stream (`state.stream`): every message
read so far, so that a later identify, alias or group can be followed back — the events an
anonymous id sent before it was claimed move to the person, and traits are point in time.

On disk, beside the model's state folder (`<model>.messages/`), one pair of Parquet parts per
run, never rewritten:

    part-<n>.parquet     the messages the run's new files held (the `messages` relation of
                         `engine.sql.stream`, plus the order key `k` and own identity
                         `ident`), minus repeats of a message kept before
    idents-<n>.parquet   each identity an event of those messages was sent with, its first
                         time (`ident, k`): the stream stage needs the identities of events,
                         not the events, so it runs over the identify, alias and group
                         messages plus one message per identity — a small input, whatever
                         the number of events

The state's `meta.json` lists the parts it has folded (a part a crashed run wrote is not
listed, and is written again). The SQL is sqlglot (the stream stage's templates, in Spark's
dialect), run by the state's runner on DuckDB or Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from leadscore.engine.batch.state.fold import union_by_name
from leadscore.engine.batch.state.runner import Resolved, Runner
from leadscore.engine.sql.build import col
from leadscore.engine.sql.stream import EVENT_KINDS, FIXED, NEVER, parse, q, s

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
    """What the history holds after a run's new files were added."""

    messages: str               # every message kept (with `fresh`: 1 where read this run)
    columns: dict[str, str]
    idents: str                 # ident, k: every identity of an event and its first time
    new: str | None             # this run's messages (a table), None: no new file
    new_idents: str | None      # their events' identities (ident, k)
    earlier: int                # messages that came again earlier than the copy kept
    rejected: int               # bad messages left out of the new files


class History:
    """The kept messages of one model's state, in a runner."""

    def __init__(self, con: Runner, folder: Path, parts: list[int], prefix: str,
                 repeats: bool):
        self.con, self.folder, self.parts, self.prefix = con, folder, parts, prefix
        self.repeats = repeats      # a message kept twice (an earlier copy came later)

    def path(self, kind: str, part: int) -> Path:
        return self.folder / f"{kind}-{part:05d}.parquet"

    def read(self, files: list[str]) -> Read:
        """The history with the messages of `files` added (not yet saved)."""
        con, p = self.con, self.prefix
        old = con.load_parts(p + "_h_old", [self.path("part", n) for n in self.parts]) \
            if self.parts else None
        new, new_idents, earlier, rejected = None, None, 0, 0
        if files:
            raw, rejected = con.message_files(files, p + "_h_raw")
            new = con.create(p + "_h_keyed", keyed(raw))
            cols = list(con.columns(new))
            new = con.create(p + "_h_first", first_copies(new, cols))
            if old is not None:
                new = con.create(p + "_h_new", unseen(new, old))
                earlier = int(con.scalar(earlier_copies(new, old)))
            new_idents = con.create(p + "_h_new_idents", identities(new))
        parts: list[exp.Select] = []
        for name, fresh in ((old, 0), (new, 1)):
            if name is not None:
                parts.append(exp.select(*(col(c) for c in con.columns(name)),
                                        exp.alias_(exp.Literal.number(fresh), "fresh"))
                             .from_(name))
        everything = con.create(p + "_h_all", union_by_name(parts), kind="VIEW")
        columns = con.columns(everything)
        if self.repeats or earlier:
            self.repeats = True
            everything = con.create(p + "_h_once", first_copies(everything, list(columns)),
                                    kind="VIEW")
            idents = con.create(p + "_h_idents", identities(everything))
        else:
            sources = [self.path("idents", n) for n in self.parts]
            ident_parts = []
            if sources:
                ident_parts.append(exp.select(col("ident"), col("k")).from_(
                    con.load_parts(p + "_h_old_idents", sources)))
            if new_idents is not None:
                ident_parts.append(exp.select(col("ident"), col("k")).from_(new_idents))
            union = union_by_name(ident_parts)
            idents = con.create(p + "_h_idents", first_times_of(union))
        return Read(everything, columns, idents, new, new_idents, earlier, rejected)

    def resolve(self, read: Read, as_of: int,
                base_leads: tuple[str, dict[str, str]] | None) -> Resolved:
        """The stream stage as of `as_of` over the kept messages' identities and links."""
        con = self.con
        stage_in = con.create(self.prefix + "_h_stage", stream_input(
            read.messages, read.columns, read.idents,
            con.dialect.from_us(col("k"))))
        return con.stream(stage_in, as_of, base_leads)

    def save(self, read: Read) -> list[int]:
        """This run's part written; the parts the state now holds."""
        if read.new is None or read.new_idents is None:
            return self.parts
        part = max(self.parts, default=-1) + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        self.con.save(read.new, self.path("part", part))
        self.con.save(read.new_idents, self.path("idents", part))
        return [*self.parts, part]


def first_times_of(union: exp.Query) -> exp.Query:
    """`first_times` over a query."""
    return exp.select(col("ident"), exp.alias_(exp.Min(this=col("k")), "k")).from_(
        union.subquery()).group_by(col("ident"))
