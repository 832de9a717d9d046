"""The benchmark model scored by a hand-written PySpark DataFrame job, the way a data engineer
would write it (the Spark twin of `pandas_baseline.py`): no SQL text, no plan compiler.

One scan of the events: the rules where every event counts are summed in a single
`groupBy(lead)` (decay as a column expression); each bucketed rule (`once`, `daily`, `weekly`,
`distinct`) keeps the youngest event per bucket with its own `groupBy(lead, bucket)`, then sums
per lead and clips to its cap. The rule totals are added up per lead and joined with the fit
of the leads table (the rules' conditions as Column expressions). Like the pandas baseline it
reads the rules from the model YAML but only understands what model-17 uses; anything else
raises NotImplementedError rather than scoring wrongly.

    python benchmarks/spark_baseline.py benchmarks/model-17.yaml \
        benchmarks/data/events-10m.parquet --leads benchmarks/data/leads-1m.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import reduce
from typing import Any

import leadscore
from leadscore.model.schema import Model

AS_OF = "2026-06-30T00:00:00Z"
US_PER_DAY = 86_400_000_000


def _column(frame: Any, path: str) -> Any:
    from pyspark.sql import functions as F

    for prefix in ("traits.", "properties."):
        path = path.removeprefix(prefix)
    return F.col(path) if path in frame.columns else None


def _op(frame: Any, col: Any, op: str, value: Any) -> Any:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if col is None:
        return F.lit(op == "exists" and value is False)
    kind = frame.select(col).schema.fields[0].dataType
    numeric = isinstance(kind, T.NumericType)
    if op == "exists":
        present = col.isNotNull() if numeric else (col.isNotNull() & (col != ""))
        return present if value else ~present
    if op in ("in", "eq"):
        values = value if op == "in" else [value]
        keep = (lambda v: isinstance(v, int | float) and not isinstance(v, bool)) if numeric \
            else (lambda v: isinstance(v, str))
        return F.coalesce(col.isin([v for v in values if keep(v)]), F.lit(False))
    if op in ("gt", "gte", "lt", "lte", "range") and numeric:
        test = {"gt": lambda: col > value, "gte": lambda: col >= value,
                "lt": lambda: col < value, "lte": lambda: col <= value,
                "range": lambda: col.between(value[0], value[1])}[op]()
        return F.coalesce(test, F.lit(False))
    if op == "domain_in" and not numeric:
        lower = F.lower(col)
        hits = [(lower == d.lower()) | lower.endswith("@" + d.lower())
                | lower.endswith("." + d.lower()) for d in value]
        return F.coalesce(reduce(lambda a, b: a | b, hits), F.lit(False))
    raise NotImplementedError(f"the Spark baseline does not do {op!r}")


def mask(frame: Any, condition: dict[str, Any]) -> Any:
    """A condition of the model format as a boolean Column."""
    from pyspark.sql import functions as F

    out = F.lit(True)
    for key, spec in condition.items():
        if key in ("all", "any"):
            parts = [mask(frame, sub) for sub in spec]
            out = out & reduce((lambda a, b: a & b) if key == "all" else (lambda a, b: a | b),
                               parts)
        elif key == "not":
            out = out & ~mask(frame, spec)
        else:
            if not isinstance(spec, dict):
                spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
            for op, value in spec.items():
                out = out & _op(frame, _column(frame, key), op, value)
    return out


def page_hit(glob: str) -> Any:
    from pyspark.sql import functions as F

    path = F.col("path")
    if "*" not in glob and "?" not in glob:
        return path == glob
    if glob.endswith("*") and "*" not in glob[:-1] and "?" not in glob:
        return path.startswith(glob[:-1])
    raise NotImplementedError(f"page glob {glob!r}")


def engagement(model: Model, events: Any, as_of_us: int) -> Any:
    """Per lead: the engagement points."""
    from pyspark.sql import functions as F

    if model.timezone != "UTC":
        raise NotImplementedError("a model time zone")
    ts = F.unix_micros(F.col("timestamp"))
    ev = events.where(ts <= as_of_us).select(
        "lead_id", "type", "event", "path", "email_id", "topic",
        ((F.lit(as_of_us) - ts) / F.lit(float(US_PER_DAY))).alias("age"),
        F.floor(ts / F.lit(US_PER_DAY)).alias("day"))
    ev = ev.withColumn("week", F.floor((F.col("day") + 3) / 7))
    every, bucketed = [], []
    for index, rule in enumerate(model.engagement.rules):
        if rule.page is not None:
            hit = (F.col("type") == "page") & reduce(lambda a, b: a | b,
                                                     map(page_hit, rule.pages))
        else:
            hit = (F.col("type") != "page") & F.col("event").isin(list(rule.events))
        if rule.where:
            hit = hit & mask(ev, rule.where)
        half_life = model.rule_half_life(rule)
        worth = F.lit(float(rule.points)) if half_life is None else \
            F.lit(float(rule.points)) * F.pow(F.lit(2.0), -F.col("age") / half_life)
        keys = {"daily": ["day"], "weekly": ["week"]}.get(rule.limit or "", [])
        if rule.distinct:
            keys.append(rule.distinct.removeprefix("properties."))
        if keys or rule.limit == "once":
            bucketed.append((index, rule, hit, keys, half_life))
        else:
            every.append((index, rule, F.coalesce(F.when(hit, worth), F.lit(0.0))))
    totals = []
    if every:
        sums = ev.groupBy("lead_id").agg(*(F.sum(w).alias(f"r{i}") for i, _, w in every))
        parts = []
        for i, rule, _ in every:
            part = F.col(f"r{i}")
            if rule.cap is not None:
                part = F.least(F.greatest(part, F.lit(-rule.cap)), F.lit(rule.cap))
            parts.append(part)
        totals.append(sums.select("lead_id", reduce(lambda a, b: a + b, parts).alias("points")))
    for _, rule, hit, keys, half_life in bucketed:
        youngest = ev.where(hit).groupBy("lead_id", *keys).agg(F.min("age").alias("age"))
        worth = F.lit(float(rule.points)) if half_life is None else \
            F.lit(float(rule.points)) * F.pow(F.lit(2.0), -F.col("age") / half_life)
        total = youngest.groupBy("lead_id").agg(F.sum(worth).alias("points"))
        if rule.cap is not None:
            total = total.select("lead_id", F.least(F.greatest("points", F.lit(-rule.cap)),
                                                    F.lit(rule.cap)).alias("points"))
        totals.append(total)
    # every lead with an event is scored, whether or not a rule matched
    leads = ev.select("lead_id").distinct().withColumn("points", F.lit(0.0))
    union = reduce(lambda a, b: a.unionByName(b), totals, leads)
    return union.groupBy("lead_id").agg(F.sum("points").alias("engagement"))


def fit(model: Model, leads: Any) -> Any:
    from pyspark.sql import functions as F

    points, reason = F.lit(0.0), F.lit(None).cast("string")
    for rule in model.fit:
        if rule.bands is not None:
            col = _column(leads, rule.attribute or "")
            band = F.lit(0.0)
            for b in reversed(rule.bands):   # the first band that holds wins
                hit = reduce(lambda a, c: a & c, [_op(leads, col, op, v)
                                                  for op, v in b.condition.items()])
                band = F.when(hit, F.lit(float(b.points))).otherwise(band)
            points = points + band
        elif rule.disqualify:
            reason = F.coalesce(reason, F.when(mask(leads, rule.when or {}),
                                               F.lit(rule.disqualify)))
        else:
            points = points + F.when(mask(leads, rule.when or {}),
                                     F.lit(float(rule.points))).otherwise(0.0)
    return leads.select("lead_id", points.alias("fit"), reason.alias("disqualify_reason"))


def score(model: Model, events: Any, leads: Any, as_of_us: int) -> Any:
    """One row per lead: fit, engagement, score, grade, temperature, mql, disqualified."""
    from pyspark.sql import functions as F

    out = fit(model, leads).join(engagement(model, events, as_of_us), "lead_id", "full_outer") \
        .fillna({"fit": 0.0, "engagement": 0.0})
    out = out.withColumn("score", F.col("fit") + F.col("engagement")) \
        .withColumn("disqualified", F.col("disqualify_reason").isNotNull())
    grade = F.lit("F" if model.grades else None)
    for letter, minimum in reversed(model.grade_order()):
        grade = F.when(F.col("fit") >= minimum, F.lit(letter)).otherwise(grade)
    out = out.withColumn("grade", grade)
    if model.temperature is not None:
        t = model.temperature
        out = out.withColumn("temperature", F.when(F.col("disqualified"), "dead")
                             .when(F.col("engagement") >= t.hot, "hot")
                             .when(F.col("engagement") >= t.warm, "warm").otherwise("cold"))
    mql = model.thresholds.mql
    is_mql = ~F.col("disqualified") & (F.col("score") >= (mql if mql is not None
                                                           else float("inf")))
    if model.thresholds.mql_requires_grade:
        is_mql = is_mql & F.col("grade").isNotNull() & (
            F.col("grade") <= model.thresholds.mql_requires_grade)
    return out.withColumn("mql", is_mql)


def main(argv: list[str] | None = None) -> int:
    from leadscore.engine.batch.spark import session
    from leadscore.timeutil import parse_timestamp

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("events")
    parser.add_argument("--leads")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    model = leadscore.load_model(args.model)
    spark = session(args.master)
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    table = score(model, spark.read.parquet(args.events), spark.read.parquet(args.leads),
                  parse_timestamp(AS_OF)).toArrow()
    print(f"{table.num_rows:,} leads in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
