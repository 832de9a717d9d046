"""Rules that match nothing in a sample of events: the usual sign of a misspelled event name
(`Email Opend`) or page glob. `leadscore check --events` and `leadscore score` report them with
the closest event names the sample does hold.

One DuckDB scan counts, per engagement, lifecycle and interest rule, the events it matches
(`engine.sql.semantics.matches`: the plan's own definition of a match), and the event names
seen with their counts, for suggestions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from leadscore.engine.batch.inputs import input_table, table_columns
from leadscore.engine.sql.semantics import matches
from leadscore.io.sqltext import quote
from leadscore.model.compiled import Matcher, compile_model
from leadscore.model.schema import Model
from leadscore.yamlfile import suggest


@dataclass(frozen=True)
class Unmatched:
    """A rule of `model` that matched none of the sample's events."""

    model: str
    rule: str                   # e.g. engagement rule 'opened', lifecycle rule 2 (customer)
    listens_to: str             # "event 'Email Opend'" or "pages /pricing*"
    suggestion: str | None      # the closest event name seen

    def __str__(self) -> str:
        text = (f"model {self.model!r}: {self.rule} matched no event "
                f"(it listens to {self.listens_to})")
        return text + (f"; did you mean {self.suggestion!r}?" if self.suggestion else "")


def unmatched_rules(models: Sequence[Model], events: Any, *,
                    con: duckdb.DuckDBPyConnection | None = None) -> list[Unmatched]:
    """The rules of `models` that match no event of `events` (anything `score_many` reads)."""
    connection = con or duckdb.connect()
    table = input_table(events, connection, "events")
    columns = table_columns(connection, table)
    listening: list[tuple[str, str, Matcher]] = []
    for model in models:
        compiled = compile_model(model)
        listening += [(model.name, f"engagement rule {r.name!r}", r.matcher)
                      for r in compiled.rules]
        listening += [(model.name, f"lifecycle rule {s.index + 1} ({s.stage})", s.matcher)
                      for s in compiled.stages if s.matcher is not None]
    if not listening:
        return []
    counts = ", ".join(f"count(*) FILTER (WHERE {matches(m, columns).sql(dialect='duckdb')})"
                       for _, _, m in listening)
    hits = connection.execute(f"SELECT {counts} FROM {quote(table)}").fetchone() or ()
    names = [name for name, in connection.execute(
        f"SELECT event FROM {quote(table)} WHERE event IS NOT NULL "
        "GROUP BY event ORDER BY count(*) DESC LIMIT 10000").fetchall()]
    found = []
    for (name, rule, matcher), hit in zip(listening, hits, strict=True):
        if hit:
            continue
        if matcher.pages:
            listens, close = "pages " + ", ".join(matcher.pages), None
        else:
            wanted = sorted(matcher.events)
            listens = ("event " if len(wanted) == 1 else "events ") + ", ".join(
                repr(w) for w in wanted)
            close = next((s for w in wanted if w not in names
                          for s in [suggest(w, names, ignore_case=True)] if s), None)
        if matcher.where is not None:
            listens += " with a `where`"
        found.append(Unmatched(name, rule, listens, close))
    return found
