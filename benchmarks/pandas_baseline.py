"""The benchmark model scored in plain pandas, the way an analyst would write it.

Boolean masks per rule, a groupby per rule, decay as a vectorised column. It reads the rules from
the model YAML (event names, page globs, `where`, points, limit, distinct, cap, decay) and the
fit rules' conditions, but only understands the parts of the format that model-17 uses; anything
else raises NotImplementedError rather than scoring wrongly.

    python benchmarks/pandas_baseline.py benchmarks/model-17.yaml \
        benchmarks/data/events-10m.parquet --leads benchmarks/data/leads-1m.parquet
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

import leadscore
from leadscore.model.schema import Model

AS_OF = pd.Timestamp("2026-06-30T00:00:00Z")
EVENT_COLUMNS = ["lead_id", "timestamp", "type", "event", "path"]
MISSING = object()


# ---- conditions as boolean masks ---------------------------------------------------------

def _column(df: pd.DataFrame, path: str) -> pd.Series | None:
    for prefix in ("traits.", "properties."):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return df[path] if path in df.columns else None


def _present(col: pd.Series) -> pd.Series:
    present = col.notna()
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        present &= col.ne("").fillna(False).astype(bool)
    return present


def _op(col: pd.Series | None, op: str, value: Any, index: pd.Index) -> pd.Series:
    if col is None:
        return pd.Series(op == "exists" and value is False, index=index)
    numeric = pd.api.types.is_numeric_dtype(col)
    if op == "exists":
        present = _present(col)
        return present if value else ~present
    if op in ("in", "eq"):
        values = value if op == "in" else [value]
        if numeric:
            values = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        else:
            values = [v for v in values if isinstance(v, str)]
        return col.isin(values).fillna(False).astype(bool)
    if op in ("gt", "gte", "lt", "lte", "range") and numeric:
        lo, hi = (value if op == "range" else (None, None))
        mask = {"gt": col > value, "gte": col >= value, "lt": col < value,
                "lte": col <= value}.get(op) if op != "range" else col.between(lo, hi)
        return mask.fillna(False).astype(bool)
    if op == "domain_in" and not numeric:
        # The domain is what follows the last @ (or the whole value): equal or a subdomain.
        lower = col.str.lower()
        mask = pd.Series(False, index=index)
        for d in value:
            d = d.lower()
            mask |= (lower.eq(d) | lower.str.endswith("@" + d)
                     | lower.str.endswith("." + d)).fillna(False).astype(bool)
        return mask
    raise NotImplementedError(f"the pandas baseline does not do {op!r} on {col.dtype}")


def mask(df: pd.DataFrame, condition: dict[str, Any]) -> pd.Series:
    """The rows of `df` for which a condition of the model format holds."""
    out = pd.Series(True, index=df.index)
    for key, spec in condition.items():
        if key == "all":
            for sub in spec:
                out &= mask(df, sub)
        elif key == "any":
            any_ = pd.Series(False, index=df.index)
            for sub in spec:
                any_ |= mask(df, sub)
            out &= any_
        elif key == "not":
            out &= ~mask(df, spec)
        else:
            col = _column(df, key)
            if not isinstance(spec, dict):
                spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
            for op, value in spec.items():
                out &= _op(col, op, value, df.index)
    return out


def glob_mask(paths: pd.Series, glob: str) -> pd.Series:
    """A page glob as an analyst writes it: ==, startswith, or a regex when it must."""
    if "*" not in glob and "?" not in glob:
        hit = paths.eq(glob)
    elif glob.endswith("*") and "*" not in glob[:-1] and "?" not in glob:
        hit = paths.str.startswith(glob[:-1])
    else:
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
        hit = paths.str.fullmatch(pattern)
    return hit.fillna(False).astype(bool)


# ---- scoring -----------------------------------------------------------------------------

def fit_scores(model: Model, leads: pd.DataFrame) -> pd.DataFrame:
    fit = pd.Series(0.0, index=leads.index)
    reason = pd.Series(None, index=leads.index, dtype=object)
    for rule in model.fit:
        if rule.bands is not None:
            col = _column(leads, rule.attribute or "")
            conds = [np.logical_and.reduce([_op(col, op, v, leads.index).to_numpy()
                                            for op, v in band.condition.items()])
                     for band in rule.bands]
            fit += np.select(conds, [b.points for b in rule.bands], 0.0)
            continue
        hit = mask(leads, rule.when or {})
        if rule.disqualify:
            reason = reason.where(reason.notna() | ~hit, rule.disqualify)
        else:
            fit += np.where(hit, rule.points, 0.0)
    return pd.DataFrame({"lead_id": leads["lead_id"], "fit": fit.to_numpy(),
                         "disqualify_reason": reason.to_numpy()})


def engagement_scores(model: Model, ev: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    ev = ev[ev["timestamp"] <= as_of]
    # Lead ids as integer codes once, rather than hashing the strings in every groupby.
    lead, lead_ids = pd.factorize(ev["lead_id"])
    lead = pd.Series(lead, index=ev.index)
    age_days = (as_of - ev["timestamp"]).dt.total_seconds() / 86_400.0
    local = ev["timestamp"] if model.timezone == "UTC" else \
        ev["timestamp"].dt.tz_convert(model.timezone)
    day = local.dt.floor("D")
    is_page = ev["type"].eq("page")
    week = None
    totals = []
    for rule in model.engagement.rules:
        if rule.page is not None:
            hit = pd.Series(False, index=ev.index)
            for glob in rule.pages:
                hit |= glob_mask(ev["path"], glob)
            hit &= is_page
        else:
            hit = ev["event"].isin(list(rule.events)) & ~is_page
        if rule.where:
            hit &= mask(ev, rule.where)
        sub = pd.DataFrame({"lead": lead[hit], "age": age_days[hit]})
        keys = ["lead"]
        if rule.limit == "daily":
            sub["day"] = day[hit]
            keys.append("day")
        elif rule.limit == "weekly":
            if week is None:
                days = (day - pd.Timestamp("1970-01-01", tz=day.dt.tz)).dt.days
                week = (days + 3) // 7
            sub["week"] = week[hit]
            keys.append("week")
        if rule.distinct:
            name = rule.distinct.removeprefix("properties.")
            sub["distinct"] = ev[name][hit]
            keys.append("distinct")
        if len(keys) > 1 or rule.limit == "once":
            # Only the most recent event of each bucket counts: the youngest.
            sub = sub.groupby(keys, sort=False, dropna=False, observed=True)["age"].min() \
                .reset_index()
        half_life = model.rule_half_life(rule)
        if half_life is None:
            sub["points"] = rule.points
        else:
            sub["points"] = rule.points * np.exp2(-sub["age"] / half_life)
        total = sub.groupby("lead", sort=False)["points"].sum()
        if rule.cap is not None:
            total = total.clip(-rule.cap, rule.cap)
        totals.append(total)
    # Every lead with an event is scored, whether or not a rule matched.
    engagement = np.zeros(len(lead_ids))
    for total in totals:
        np.add.at(engagement, total.index.to_numpy(), total.to_numpy())
    return pd.Series(engagement, index=pd.Index(lead_ids, name="lead_id"))


def score(model: Model, events: str, leads: str | None = None,
          as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """One row per lead: fit, engagement, score, grade, temperature, mql, disqualified."""
    if any(r.distinct and not r.distinct.startswith("properties.") and r.distinct != "path"
           for r in model.engagement.rules):
        raise NotImplementedError("distinct on a path other than properties.x or path")
    props = sorted({r.distinct.removeprefix("properties.") for r in model.engagement.rules
                    if r.distinct and r.distinct != "path"}
                   | {k.removeprefix("properties.") for r in model.engagement.rules
                      for k in (r.where or {})})
    ev = pd.read_parquet(events, columns=EVENT_COLUMNS + props)
    engagement = engagement_scores(model, ev, as_of).rename("engagement")
    del ev
    if leads is not None:
        fit = fit_scores(model, pd.read_parquet(leads))
    else:
        fit = pd.DataFrame({"lead_id": pd.Series([], dtype="str"), "fit": [],
                            "disqualify_reason": []})
    out = fit.merge(engagement.reset_index(), on="lead_id", how="outer")
    out["fit"] = out["fit"].fillna(0.0)
    out["engagement"] = out["engagement"].fillna(0.0)
    out["score"] = out["fit"] + out["engagement"]
    out["disqualified"] = out["disqualify_reason"].notna()
    grade = pd.Series("F" if model.grades else None, index=out.index, dtype=object)
    for letter, minimum in reversed(model.grade_order()):
        grade = grade.mask(out["fit"] >= minimum, letter)
    out["grade"] = grade
    if model.temperature is not None:
        t = model.temperature
        out["temperature"] = np.select(
            [out["disqualified"], out["engagement"] >= t.hot, out["engagement"] >= t.warm],
            ["dead", "hot", "warm"], "cold")
    mql = model.thresholds.mql
    out["mql"] = ~out["disqualified"] & (out["score"] >= (mql if mql is not None else np.inf))
    if model.thresholds.mql_requires_grade:
        out["mql"] &= out["grade"].notna() & (out["grade"] <= model.thresholds.mql_requires_grade)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("events")
    parser.add_argument("--leads")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    model = leadscore.load_model(args.model)
    started = time.perf_counter()
    out = score(model, args.events, args.leads)
    print(f"{len(out):,} leads in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    if args.out:
        out.to_parquet(args.out)
    else:
        print(out.sort_values("score", ascending=False).head(10).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
