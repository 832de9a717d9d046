"""Interests under `--state` (engine.state_store): per lead, interest rule and topic, the state
the incremental engine keeps too (engine.interests), as two DuckDB tables:

    sums     lead_id, r, topic, w   Σ points·2^((t − ref)/half-life) over the events of rules
                                    where every event counts, relative to the state's `ref`;
                                    a later run rescales it by 2^((ref − T)/half-life), exactly
                                    as the engagement sums
    buckets  lead_id, r, topic, b, d, ts   the latest event per bucket (day/week `b`, distinct
                                    value `d` as text) of `once`/`daily`/`weekly`/`distinct`
                                    rules; never closed, so an event folds in exactly whenever
                                    it arrives

Scores: each (lead, rule, topic) total = its rescaled sum + its buckets' decayed points, then
`interest_plan.ranked_plan` (cap, weight per topic, rank) as in a full re-score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlglot

from leadscore.engine.batch.schema import profiles
from leadscore.engine.sql.build import col
from leadscore.engine.sql.dialects import DuckDB
from leadscore.engine.sql.interest_plan import ranked_plan, topic_flags
from leadscore.engine.sql.semantics import bucket_day
from leadscore.model.interests import InterestRule, compile_interests
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

SUMS_FILE, BUCKETS_FILE = "interests.parquet", "interest_buckets.parquet"
_EMPTY_SUMS = ("SELECT CAST(NULL AS VARCHAR) AS lead_id, CAST(NULL AS INTEGER) AS r, "
               "CAST(NULL AS VARCHAR) AS topic, CAST(NULL AS DOUBLE) AS w WHERE false")
_EMPTY_BUCKETS = ("SELECT CAST(NULL AS VARCHAR) AS lead_id, CAST(NULL AS INTEGER) AS r, "
                  "CAST(NULL AS VARCHAR) AS topic, CAST(NULL AS BIGINT) AS b, "
                  "CAST(NULL AS VARCHAR) AS d, CAST(NULL AS BIGINT) AS ts WHERE false")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decay(ts: str, ref: int, half_life: float | None) -> str:
    if half_life is None:
        return "1.0"
    return f"pow(2.0, CAST({ts} - {ref} AS DOUBLE) / {float(half_life * US_PER_DAY)!r})"


def _per_rule(interests: tuple[InterestRule, ...], value: Any) -> str:
    """SQL: CASE r WHEN i THEN value(rule i) … END."""
    whens = " ".join(f"WHEN {i.index} THEN {value(i)}" for i in interests)
    return f"CASE r {whens} END"


class InterestFold:
    """One model's interest state in a DuckDB connection, folded file group by file group."""

    def __init__(self, con: Any, model: Model, prefix: str):
        self.con, self.model, self.prefix = con, model, prefix
        self.interests = compile_interests(model)
        self.sums: str | None = None
        self.buckets: str | None = None
        self.ref: int | None = None
        self._n = 0

    def load(self, folder: Path, ref: int) -> None:
        for attr, file in (("sums", SUMS_FILE), ("buckets", BUCKETS_FILE)):
            if (folder / file).exists():
                name = _q(f"{self.prefix}_i_old_{attr}")
                path = str(folder / file).replace("'", "''")
                self.con.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                             f"SELECT * FROM read_parquet('{path}')")
                setattr(self, attr, name)
        self.ref = ref

    def fold(self, view: str | None, columns: dict[str, str], where: str, ref: int) -> None:
        """Fold in the events of `view` (those `where` keeps; None: none) relative to `ref`."""
        flags = topic_flags(self.interests, columns) if view is not None else []
        sums = [_EMPTY_SUMS]
        buckets = [_EMPTY_BUCKETS]
        if flags:
            rendered = ", ".join(f.sql(dialect="duckdb") for _, f in flags)
            iv = f"SELECT *, {rendered} FROM {_q(view)} WHERE {where}"   # type: ignore[arg-type]
            for interest, _ in flags:
                rule, topic = interest.rule, f"t{interest.index}"
                head = f"lead_id, {interest.index} AS r, {topic} AS topic"
                if not rule.bucketed:
                    sums.append(f"SELECT {head}, sum({rule.points!r} * "
                                f"{_decay('ts', ref, rule.half_life_days)}) AS w FROM ({iv}) "
                                f"WHERE {topic} IS NOT NULL GROUP BY ALL")
                    continue
                day = "0"
                if rule.limit in ("daily", "weekly"):
                    day = bucket_day(rule.limit, col("ts"), self.model.timezone, DuckDB()) \
                        .sql(dialect="duckdb")
                value = f"CAST({_q(rule.distinct)} AS VARCHAR)" if rule.distinct is not None \
                    and rule.distinct in columns else "CAST(NULL AS VARCHAR)"
                buckets.append(f"SELECT {head}, CAST({day} AS BIGINT) AS b, {value} AS d, ts "
                               f"FROM ({iv}) WHERE {topic} IS NOT NULL")
        if self.sums is not None:
            assert self.ref is not None
            factor = _per_rule(self.interests, lambda i: _decay(
                str(self.ref), ref, i.rule.half_life_days))
            sums.append(f"SELECT lead_id, r, topic, w * {factor} AS w FROM {self.sums}")
        if self.buckets is not None:
            buckets.append(f"SELECT lead_id, r, topic, b, d, ts FROM {self.buckets}")
        self._n += 1
        self.sums = self._table("sums", "SELECT lead_id, r, topic, sum(w) AS w FROM ("
                                + " UNION ALL ".join(sums) + ") GROUP BY lead_id, r, topic")
        self.buckets = self._table("buckets", "SELECT lead_id, r, topic, b, d, max(ts) AS ts "
                                   "FROM (" + " UNION ALL ".join(buckets)
                                   + ") GROUP BY lead_id, r, topic, b, d")
        self.ref = ref

    def _table(self, kind: str, sql: str) -> str:
        name = _q(f"{self.prefix}_i_{kind}_{self._n}")
        self.con.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        return name

    def profiles(self) -> dict[str, list[dict[str, Any]]]:
        """lead_id → its ranked interests at the state's ref (the scoring time)."""
        if not self.interests or self.sums is None or self.buckets is None:
            return {}
        assert self.ref is not None
        worth = _per_rule(self.interests, lambda i: f"{i.rule.points!r} * "
                          f"{_decay('ts', self.ref or 0, i.rule.half_life_days)}")
        totals = (f"SELECT lead_id, r, topic, sum(w) AS w FROM (SELECT lead_id, r, topic, w "
                  f"FROM {self.sums} UNION ALL SELECT lead_id, r, topic, {worth} AS w FROM "
                  f"{self.buckets}) GROUP BY lead_id, r, topic")
        parsed = sqlglot.parse_one(totals, dialect="duckdb")
        assert isinstance(parsed, sqlglot.exp.Select)
        plan = ranked_plan(self.interests, parsed)
        return profiles(self.con.sql(plan.sql(dialect="duckdb")).to_arrow_table())

    def save(self, folder: Path) -> None:
        for table, file in ((self.sums, SUMS_FILE), (self.buckets, BUCKETS_FILE)):
            if table is not None:
                path = str(folder / file).replace("'", "''")
                self.con.sql(f"COPY {table} TO '{path}' (FORMAT parquet)")
