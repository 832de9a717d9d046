"""Backtest models against what converted: score every lead as of a cut-off (the engine never
sees a later event) and compare with the conversions in the window after it.

Disqualified leads rank last (they are never handed to sales), whatever their points.
Per rule: a lead "fires" a rule when the rule gives it points (or its disqualifying condition
holds), read from the per-rule columns of the same scoring run (`score_rules`). That equals
scoring the model with that rule alone (`rule_models`, the reference the tests hold it to)
without running the plan once per rule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadscore.engine.batch import score_many, score_rules
from leadscore.engine.sql.plan import rule_column
from leadscore.errors import InputError
from leadscore.learn import metrics
from leadscore.learn.inputs import Inputs, Step, When, as_of_us, open_inputs, quiet
from leadscore.model.schema import Engagement, Model, Thresholds
from leadscore.timeutil import iso

LAST = -1e18     # the rank score of a disqualified lead
PREDICTIVE = "predictive (LightGBM)"


@dataclass
class Evaluation:
    """How one model ranked the leads that converted after the cut-off."""

    model: str
    as_of: str
    window_days: float | None
    leads: int
    conversions: int
    summary: dict[str, Any]
    gains: pd.DataFrame
    calibration: pd.DataFrame
    by_grade: pd.DataFrame
    by_temperature: pd.DataFrame
    by_stage: pd.DataFrame
    rules: pd.DataFrame
    scores: pd.DataFrame = field(repr=False)     # lead_id, score, rank_score, converted, ...
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Backtest:
    """Every model's evaluation on the same leads, and the differences from the first."""

    evaluations: list[Evaluation]
    comparison: pd.DataFrame
    notes: list[str]


def evaluate(models: Model | Sequence[Model], events: Any, leads: Any = None,
             outcomes: Any = None, *, as_of: When = None, window_days: float | None = None,
             rules: bool = True, replicates: int = 200, seed: int = 0, step: Step = quiet,
             inputs: Inputs | None = None, predictive: bool = False) -> Backtest:
    """Backtest each model as of `as_of` against the outcomes in the `window_days` after it
    (None: any time after it; outcomes without dates count as "in the window").

    `predictive`: also rank the same leads by the gradient-boosted add-on, trained on the
    window before the cut-off (`predictive.backtest_predictive`), as one more evaluation after
    the models, named `PREDICTIVE` — compared with the first model like any other, never
    replacing it. Disqualified leads (by the first model) rank last there too."""
    model_list = [models] if isinstance(models, Model) else list(models)
    data = inputs or open_inputs(events, leads, outcomes, step=step, share=0.15)
    con = data.con
    cut = as_of_us(as_of, data.data_end)
    notes = []
    data.population(cut, "ls_eval_pop")
    data.labels("ls_eval_pop", cut, window_days, "ls_eval_labels")
    [(excluded,)] = con.sql(f"SELECT count(*) FROM ls_eval_pop AS p JOIN {data.outcomes.table} "
                            f"AS o USING (lead_id) WHERE o.converted_at <= {cut}").fetchall()
    if excluded:
        notes.append(f"{excluded:,} leads had converted by the cut-off and are left out")
    [(unknown,)] = con.sql(
        f"SELECT count(*) FROM {data.outcomes.table} AS o WHERE o.converted AND "
        f"(o.converted_at IS NULL OR o.converted_at > {cut}) AND lead_id NOT IN "
        f"(SELECT lead_id FROM ls_eval_pop)").fetchall()
    if unknown:
        notes.append(f"{unknown:,} converted leads were unknown at the cut-off (no event, no "
                     "lead row) and are not counted")
    labels = con.sql("SELECT lead_id, converted FROM ls_eval_labels").df()
    evaluations = []
    for i, model in enumerate(model_list):
        step(f"scoring {model.name} as of {iso(cut)}"
             + (" with per-rule columns" if rules else ""),
             0.2 + (0.5 if predictive else 0.7) * i / len(model_list))
        started = time.perf_counter()
        events, leads = data.at(cut)       # a stream: what was known at the cut-off
        scored = (score_rules(model, events, leads, as_of=cut, con=con) if rules
                  else score_many(model, events, leads, as_of=cut, con=con))
        table = scored.to_pandas()
        seconds = time.perf_counter() - started
        frame = labels.merge(table, on="lead_id", how="inner")
        if frame.empty:
            raise InputError(f"model {model.name!r} scored none of the {len(labels):,} leads "
                             "as of the cut-off (check its applies_to and --as-of)")
        started = time.perf_counter()
        rule_table = _rules(model, frame) if rules else pd.DataFrame()
        evaluations.append(evaluation(model, frame, cut, window_days, rule_table, {
            "score": seconds, "rules": time.perf_counter() - started}))
    if predictive:
        from leadscore.learn.predictive import backtest_predictive

        step("training the predictive model on the window before the cut-off", 0.7)
        started = time.perf_counter()
        first = evaluations[0].scores
        probability, note = backtest_predictive(data, cut, window_days,
                                                first["lead_id"].to_numpy(), seed=seed)
        notes.append(note)
        frame = first[["lead_id", "converted", "disqualified"]].assign(
            score=probability, mql=False)
        evaluations.append(evaluation(None, frame, cut, window_days, pd.DataFrame(),
                                       {"score": time.perf_counter() - started}))
    step("bootstrapping confidence intervals", 0.9)
    return compare(evaluations, notes, replicates=replicates, seed=seed)


def compare(evaluations: list[Evaluation], notes: list[str], *, replicates: int = 200,
            seed: int = 0) -> Backtest:
    """Intervals for every evaluation (same leads, same order) and paired differences from
    the first."""
    y = evaluations[0].scores["converted"].to_numpy(dtype=float)
    aligned = [e.scores.set_index("lead_id").loc[evaluations[0].scores["lead_id"],
                                                 "rank_score"].to_numpy()
               for e in evaluations]
    each, diffs = metrics.bootstrap(aligned, y, replicates=replicates, seed=seed)
    rows = []
    for i, (found, intervals) in enumerate(zip(evaluations, each, strict=True)):
        found.summary["intervals"] = intervals
        row: dict[str, Any] = {"model": found.model}
        for key, interval in intervals.items():
            row[key] = interval.estimate
            row[f"{key}_low"], row[f"{key}_high"] = interval.low, interval.high
        if i:
            for key, interval in diffs[i - 1].items():
                row[f"{key}_diff"] = interval.estimate
                row[f"{key}_diff_low"] = interval.low
                row[f"{key}_diff_high"] = interval.high
        rows.append(row)
    return Backtest(evaluations, pd.DataFrame(rows), notes)


def evaluation(model: Model | None, frame: pd.DataFrame, cut: int, window: float | None,
                rule_table: pd.DataFrame, seconds: dict[str, float], *,
                name: str = PREDICTIVE) -> Evaluation:
    """A points model's evaluation, or (model None) a ranking's only — the predictive add-on's
    or a customer-lifecycle field's (`name`): no MQL, grades, temperature or stages."""
    frame = frame.sort_values("lead_id").reset_index(drop=True)
    frame["rank_score"] = np.where(frame["disqualified"], LAST, frame["score"])
    y = frame["converted"].to_numpy(dtype=float)
    rank = frame["rank_score"].to_numpy()
    ranked = metrics.Ranked.of(rank, y)
    summary: dict[str, Any] = {"auc": ranked.auc(),
                               **{f"capture_{round(d * 100)}": ranked.capture(d)
                                  for d in metrics.DEPTHS},
                               "conversion_rate": float(y.mean()) if len(y) else float("nan")}
    if model is not None and model.thresholds.mql is not None:
        mql = frame["mql"].to_numpy(dtype=bool)
        summary.update({
            "mql_leads": int(mql.sum()),
            "mql_precision": float(y[mql].mean()) if mql.any() else float("nan"),
            "mql_recall": float(y[mql].sum() / y.sum()) if y.sum() else float("nan"),
            "conversion_below_mql": float(y[~mql].mean()) if (~mql).any() else float("nan"),
        })
    grade, temperature, stage = (_by(frame, c) if model is not None else pd.DataFrame()
                                 for c in ("grade", "temperature", "stage"))
    return Evaluation(
        model.name if model is not None else name, iso(cut), window, len(frame),
        int(y.sum()), summary, metrics.gains_table(rank, y),
        metrics.calibration_table(frame["score"].to_numpy(), y,
                                  probability=frame["score"].to_numpy()
                                  if model is None and name == PREDICTIVE else None),
        grade, temperature, stage, rule_table,
        frame[["lead_id", "score", "rank_score", "converted", "disqualified", "mql"]], seconds)


def _by(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    grouped = frame.assign(**{column: frame[column].fillna("-")}).groupby(column)["converted"]
    out = grouped.agg(leads="count", conversions="sum", conversion_rate="mean").reset_index()
    return out.sort_values(column).reset_index(drop=True)


def rule_models(model: Model) -> list[tuple[str, str, Model]]:
    """(rule name, kind, a model with that rule alone) for every fit and engagement rule."""
    bare: dict[str, Any] = {"grades": None, "temperature": None, "thresholds": Thresholds(),
                            "lifecycle": [], "tests": []}
    out = []
    for rule in model.fit:
        kind = "disqualify" if rule.disqualify else "fit"
        out.append((rule.name, kind, model.model_copy(update={
            **bare, "fit": [rule], "engagement": Engagement()})))
    for engagement_rule in model.engagement.rules:
        out.append((engagement_rule.name, "engagement", model.model_copy(update={
            **bare, "fit": [], "engagement": Engagement(decay=model.engagement.decay,
                                                        rules=[engagement_rule])})))
    return out


def _rules(model: Model, frame: pd.DataFrame) -> pd.DataFrame:
    """Per rule: the leads it fires for and the conversion rate with vs without it, from the
    per-rule columns of `frame` (the labelled leads joined to `score_rules`)."""
    y = frame["converted"].to_numpy(dtype=float)
    columns = [(r.name, "disqualify" if r.disqualify else "fit",
                rule_column("disqualify" if r.disqualify else "fit", i))
               for i, r in enumerate(model.fit)]
    columns += [(r.name, "engagement", rule_column("engagement", i))
                for i, r in enumerate(model.engagement.rules)]
    rows = []
    for name, kind, column in columns:
        values = frame[column]
        on = (values.fillna(False).to_numpy(dtype=bool) if kind == "disqualify"
              else values.fillna(0).to_numpy(dtype=float) != 0)
        with_rate = float(y[on].mean()) if on.any() else float("nan")
        without = float(y[~on].mean()) if (~on).any() else float("nan")
        rows.append({"rule": name, "kind": kind, "leads": int(on.sum()),
                     "share": float(on.mean()) if len(on) else float("nan"),
                     "conversions": int(y[on].sum()), "conversion_with": with_rate,
                     "conversion_without": without,
                     "lift": with_rate / without if without else float("nan")})
    return pd.DataFrame(rows)
