"""Learn a scorecard from leads, events and outcomes, and write it as a model YAML (§3).

1. Split by time: features as of the cut-off `as_of`, labels = converted in the `window_days`
   after it (train); the test is the same one window later (features as of `as_of + window`,
   conversions in the window after that). Outcomes without dates allow no time split: 30 % of
   the leads are held out instead, and a warning says so.
2. Candidates (`features`): trait bands and levels, event and page-group counts in three
   variants, for several half-lives. Per source, the variant that ranks best alone is kept.
3. An L2-regularised logistic regression; the half-life and the strength of the penalty are
   chosen on a validation part of the training leads; then refit on all of them.
4. Points: log-odds × pdo / ln 2, rounded ("every `pdo` points double the odds"); the MQL
   threshold for a target volume or precision; grades and temperature from quantiles; each rule
   with its evidence as a comment. The model is then scored by the batch engine on the test
   cut-off: the test AUC is that of the YAML as written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadscore.errors import LeadscoreError
from leadscore.io.sqltext import quote
from leadscore.learn import features as feats
from leadscore.learn.inputs import Inputs, Step, When, as_of_us, open_inputs, quiet
from leadscore.learn.metrics import Ranked, auc
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY, iso

C_GRID = (0.003, 0.01, 0.1, 1.0)
LEAKAGE_AUC = 0.98


class LearnError(LeadscoreError):
    """Too little or unsuitable data to learn a model from."""


@dataclass
class Design:
    """A feature matrix and what each column is."""

    x: np.ndarray
    columns: list[feats.Candidate]
    caps: list[float | None]


@dataclass
class Learned:
    """A learned model, its YAML, its rules with their evidence, and how well it tested."""

    model: Model
    yaml: str
    rules: pd.DataFrame
    validation: pd.DataFrame
    test: dict[str, Any]
    warnings: list[str]
    half_life_days: float | None
    train: dict[str, Any] = field(default_factory=dict, repr=False)

    def write(self, path: Any) -> None:
        from pathlib import Path

        Path(path).write_text(self.yaml, encoding="utf-8")


def learn(events: Any, leads: Any = None, outcomes: Any = None, *, as_of: When = None,
          window_days: float = 30.0, target_volume: float | None = 0.2,
          target_precision: float | None = None, pdo: float = 20.0, name: str = "learned",
          min_conversions: int = 50, max_leads: int = 250_000, seed: int = 0,
          half_lives: tuple[float | None, ...] = feats.HALF_LIVES,
          step: Step = quiet, inputs: Inputs | None = None) -> Learned:
    """Learn a model (see module doc). `events` may be None when leads have traits only.

    Raises LearnError when there are too few conversions to learn from."""
    if outcomes is None and inputs is None:
        raise LearnError("learning needs outcomes: a file with lead_id and converted / "
                         "converted_at, or event:<name>")
    data = inputs or open_inputs(events, leads, outcomes, step=step, share=0.1)
    con = data.con
    warnings: list[str] = []
    window = float(window_days)
    default = data.data_end - int((2 if data.dated else 0) * window * US_PER_DAY)
    t_train = as_of_us(as_of, default)
    t_test = t_train + int(window * US_PER_DAY)
    time_split = data.dated and t_test + window * US_PER_DAY <= data.data_end + US_PER_DAY
    if not time_split:
        t_test = t_train
        warnings.append(
            "outcomes have no dates: the test holds out 30 % of the leads (not a later time)"
            if not data.dated else
            f"the data end ({iso(data.data_end)[:10]}) leaves no second window after the "
            f"cut-off: the test holds out 30 % of the leads instead of a later time")

    step("labelling the training leads", 0.12)
    data.population(t_train, "ls_train_pop")
    data.labels("ls_train_pop", t_train, window if data.dated else None, "ls_train_all")
    held_out = "hash(lead_id || 'leadscore') % 10 < 3"
    train_filter = "" if time_split else f"WHERE NOT ({held_out})"
    con.sql(f"CREATE OR REPLACE TEMP TABLE ls_train AS SELECT * FROM ls_train_all "
            f"{train_filter} USING SAMPLE reservoir({int(max_leads)} ROWS) REPEATABLE ({seed})")
    [(n_train, conversions)] = con.sql(
        "SELECT count(*), coalesce(sum(converted), 0) FROM ls_train").fetchall()
    if conversions < min_conversions:
        raise LearnError(
            f"only {conversions} of {n_train:,} leads converted in the window after "
            f"{iso(t_train)[:10]}: learning needs at least {min_conversions} conversions "
            f"(about 10 per rule it may learn); widen --window-days, move --as-of earlier, "
            f"or add outcomes")

    step("finding candidate features", 0.18)
    exclude = (data.outcomes.event,) if data.outcomes.event else ()
    train_events, train_leads = data.at(t_train)     # a stream: as known then
    fit_candidates = (feats.trait_candidates(con, train_leads)
                      if train_leads is not None else [])
    sources = feats.source_candidates(con, train_events, t_train, exclude_events=exclude)
    if not fit_candidates and not sources:
        raise LearnError("no candidate features: leads have no usable traits and no event "
                         "or page was seen for at least 30 leads before the cut-off")
    step(f"building {len(fit_candidates) + 3 * len(sources)} features × "
         f"{len(half_lives)} half-lives for {n_train:,} leads", 0.22)
    train = feats.build(con, "ls_train", t_train, leads=train_leads, events=train_events,
                        fit=fit_candidates, sources=sources, half_lives=half_lives)
    y = _labels(con, "ls_train")
    warnings += _leakage(train, y)

    step("choosing the half-life and penalty by validation", 0.5)
    rng = np.random.default_rng(seed)
    valid = rng.random(len(y)) < 0.25
    rows: list[dict[str, Any]] = []
    for h in half_lives:
        design = _design(train, h, y[~valid], ~valid)
        for c in C_GRID:
            coef, intercept = _fit(design.x[~valid], y[~valid], c)
            score = design.x[valid] @ coef
            rows.append({"half_life_days": h, "C": c, "validation_auc": auc(score, y[valid])})
    validation = pd.DataFrame(rows)
    aucs = [float(r["validation_auc"] or 0.0) for r in rows]
    best: dict[str, Any] = rows[int(np.argmax(np.nan_to_num(aucs, nan=-1.0)))]
    h_best = best["half_life_days"]
    c_best = float(best["C"])

    step("fitting the scorecard", 0.65)
    everyone = np.ones(len(y), dtype=bool)
    design = _design(train, h_best, y, everyone)
    coef, intercept = _fit(design.x, y, c_best)
    points = np.round(coef * pdo / math.log(2))
    rules = _evidence(design, y, coef, points)
    raw_score = design.x @ np.where(points != 0, points, 0)
    model_dict, threshold_note = _model(name, design, points, h_best, raw_score, y, train,
                                        target_volume, target_precision)
    header = _header(n_train, int(conversions), t_train, window, data.dated, pdo, intercept,
                     validation, h_best, c_best, threshold_note)
    text = _yaml(model_dict, design, points, rules, header)
    model = load_model(f"{name}.yaml", text=text)

    step("testing the learned model with the batch engine", 0.7)
    test = _test(data, model, t_test, window if data.dated else None, time_split, held_out)
    test["unrounded_auc_train"] = auc(design.x @ coef, y)
    return Learned(model, text, rules, validation, test, warnings, h_best,
                   train={"design": design, "y": y, "coef": coef, "intercept": intercept,
                          "features": train, "t_train": t_train, "t_test": t_test,
                          "time_split": time_split, "C": c_best, "held_out": held_out,
                          "inputs": data, "window": window if data.dated else None})


def _labels(con: Any, table: str) -> np.ndarray:
    rows = con.sql(f"SELECT converted FROM {quote(table)} ORDER BY lead_id").fetchnumpy()
    return np.asarray(rows["converted"], dtype=float)


def _design(fs: feats.FeatureSet, h: float | None, y: np.ndarray, rows: np.ndarray
            ) -> Design:
    """Fit indicators plus, per source, one variant: the one that carries the most weight
    (largest standardised coefficient) in a model given every variant of every source."""
    block = fs.engagement_x[h].astype(np.float64)
    caps: dict[int, float] = {}
    every = feats.VARIANTS.index("every")
    for s in range(len(fs.sources)):
        nonzero = block[rows, s, every]
        nonzero = nonzero[nonzero > 0]
        if len(nonzero):
            caps[s] = float(np.quantile(nonzero, 0.99))
            block[:, s, every] = np.minimum(block[:, s, every], caps[s])
    flat = block.reshape(len(block), -1)
    chosen = [0] * len(fs.sources)
    if len(fs.sources) and 0 < y.sum() < len(y):
        full = np.hstack([fs.fit_x, flat])
        coef, _ = _fit(full[rows], y, 0.1)
        weight = np.abs(coef[len(fs.fit):] * flat[rows].std(axis=0)).reshape(
            len(fs.sources), len(feats.VARIANTS))
        chosen = [int(np.argmax(w)) for w in weight]
    columns: list[feats.Candidate] = list(fs.fit)
    parts = [fs.fit_x.astype(np.float64)]
    cap_list: list[float | None] = [None] * len(fs.fit)
    for s, (source_name, match) in enumerate(fs.sources):
        variant = feats.VARIANTS[chosen[s]]
        columns.append(feats.Candidate(source_name, "engagement", source_name, match=match,
                                       limit=None if variant == "every" else variant))
        parts.append(block[:, s, chosen[s]][:, None])
        cap_list.append(caps.get(s) if variant == "every" else None)
    return Design(np.hstack(parts), columns, cap_list)


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2 logistic regression on standardised columns; coefficients per raw unit."""
    from sklearn.linear_model import LogisticRegression

    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    mean = x.mean(axis=0)
    fitted = LogisticRegression(C=c, max_iter=500).fit((x - mean) / sd, y)
    coef = fitted.coef_[0] / sd
    intercept = float(fitted.intercept_[0] - (coef * mean).sum())
    return coef, intercept


def _leakage(fs: feats.FeatureSet, y: np.ndarray) -> list[str]:
    """A warning for every candidate that alone separates converters almost perfectly."""
    out: list[str] = []
    if y.sum() < 5:
        return out
    named = [(c.name, fs.fit_x[:, j]) for j, c in enumerate(fs.fit)]
    block = next(iter(fs.engagement_x.values()))
    named += [(f"{n} ({v})", block[:, s, i]) for s, (n, _) in enumerate(fs.sources)
              for i, v in enumerate(feats.VARIANTS)]
    for label, values in named:
        a = auc(values, y)
        if not math.isnan(a) and max(a, 1 - a) >= LEAKAGE_AUC:
            out.append(f"possible leakage: {label!r} alone separates converters almost "
                       f"perfectly (AUC {max(a, 1 - a):.3f}); is it recorded at or after "
                       f"the conversion?")
    return out


def _evidence(design: Design, y: np.ndarray, coef: np.ndarray, points: np.ndarray
              ) -> pd.DataFrame:
    rows = []
    for j, cand in enumerate(design.columns):
        fired = design.x[:, j] > 0
        rows.append({
            "rule": cand.name, "kind": cand.kind, "group": cand.group,
            "limit": cand.limit, "points": int(points[j]), "coef": float(coef[j]),
            "leads": int(fired.sum()),
            "conversion_with": float(y[fired].mean()) if fired.any() else float("nan"),
            "conversion_without": float(y[~fired].mean()) if (~fired).any() else float("nan"),
            "kept": bool(points[j] != 0),
        })
    return pd.DataFrame(rows)


def _model(name: str, design: Design, points: np.ndarray, h: float | None,
           score: np.ndarray, y: np.ndarray, fs: feats.FeatureSet,
           target_volume: float | None, target_precision: float | None
           ) -> tuple[dict[str, Any], str]:
    fit_cols = [j for j, c in enumerate(design.columns) if c.kind == "fit"]
    eng_cols = [j for j, c in enumerate(design.columns) if c.kind == "engagement"]
    fit_score = design.x[:, fit_cols] @ points[fit_cols] if fit_cols else np.zeros(len(y))
    eng_score = design.x[:, eng_cols] @ points[eng_cols] if eng_cols else np.zeros(len(y))
    model: dict[str, Any] = {"schema_version": 1, "name": name,
                             "description": "Learned from outcomes by leadscore learn"}
    if fit_cols and np.any(points[fit_cols]):
        q = np.quantile(fit_score, [0.9, 0.7, 0.4, 0.1])
        grades: dict[str, float] = {}
        for letter, value in zip("ABCD", q, strict=True):
            value = float(round(value))
            if not grades or value < min(grades.values()):
                grades[letter] = value
        model["grades"] = grades
    if eng_cols and np.any(points[eng_cols]):
        positive = eng_score[eng_score > 0]
        if len(positive):
            hot, warm = np.quantile(positive, [0.9, 0.5])
            model["temperature"] = {"hot": float(round(hot)), "warm": float(round(warm))}
    threshold, note = _threshold(score, y, target_volume, target_precision)
    model["thresholds"] = {"mql": threshold}
    model["_half_life"] = h
    return model, note


def _threshold(score: np.ndarray, y: np.ndarray, volume: float | None,
               precision: float | None) -> tuple[float, str]:
    """The MQL threshold: the lowest score whose leads reach the target precision, or the
    score of the top `volume` share of the training leads."""
    values = np.unique(score)[::-1]
    if precision is not None:
        ranked = Ranked.of(score, y)
        pos, count = ranked.groups()
        cum_pos, cum_n = np.cumsum(pos), np.cumsum(count)
        ok = np.flatnonzero(cum_pos / cum_n >= precision)
        if len(ok):
            g = int(ok.max())
            t = float(values[g])
            return t, (f"MQL at {t:g}: {cum_pos[g] / cum_n[g]:.1%} of the training leads at or "
                       f"above it converted (target precision {precision:.0%}), "
                       f"{cum_n[g] / len(score):.1%} of leads")
        t = float(values[0])
        return t, f"MQL at {t:g}: no threshold reaches precision {precision:.0%}; the top score"
    share = 0.2 if volume is None else volume
    t = float(np.quantile(score, 1 - share)) if len(score) else 0.0
    t = float(math.ceil(t)) if t > 0 else float(round(t))
    above = score >= t
    rate = float(y[above].mean()) if above.any() else float("nan")
    return t, (f"MQL at {t:g}: {above.mean():.1%} of the training leads at or above it "
               f"(target volume {share:.0%}), {rate:.1%} of them converted")


def _header(n: int, conversions: int, t_train: int, window: float, dated: bool, pdo: float,
            intercept: float, validation: pd.DataFrame, h: float | None, c: float,
            threshold_note: str) -> list[str]:
    by_h = validation.groupby("half_life_days", dropna=False)["validation_auc"].max()
    tried = ", ".join(f"{'none' if k != k else f'{k:g} d'} {v:.3f}"  # k != k: NaN, no decay
                      for k, v in zip(by_h.index.tolist(), by_h.tolist(), strict=True))
    p0 = 1 / (1 + math.exp(-intercept))
    window_text = f"in the {window:g} days after" if dated else "after"
    return [
        f"Learned by `leadscore learn` from {n:,} leads, {conversions:,} of which converted "
        f"{window_text} the cut-off {iso(t_train)}.",
        f"Points: every {pdo:g} points double the odds of converting (a score of 0 means "
        f"about {p0:.2%}).",
        f"Half-life {'none' if h is None else f'{h:g} days'} and penalty C={c:g} chosen by "
        f"validation AUC (best per half-life: {tried}).",
        threshold_note + ".",
        "Each rule's comment: leads it fires for in training, their conversion rate vs the "
        "others', and the fitted log-odds.",
    ]


def _yaml(model: dict[str, Any], design: Design, points: np.ndarray, rules: pd.DataFrame,
          header: list[str]) -> str:
    def j(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def ev(row: pd.Series) -> str:
        return (f"{row['leads']:,} leads, {row['conversion_with']:.1%} converted vs "
                f"{row['conversion_without']:.1%} without; log-odds {row['coef']:+.3f}")

    lines = [f"# {line}" for line in header]
    lines += [f"schema_version: {model['schema_version']}", f"name: {j(model['name'])}",
              f"description: {j(model['description'])}", "timezone: UTC"]
    groups: dict[str, list[int]] = {}
    for k, cand in enumerate(design.columns):
        if cand.kind == "fit" and points[k] != 0:
            groups.setdefault(cand.group, []).append(k)
    if groups:
        lines.append("fit:")
        for group, members in groups.items():
            lines.append(f"  - name: {j(group)}")
            lines.append(f"    attribute: {j(group)}")
            lines.append("    bands:")
            for k in members:
                band = {**design.columns[k].condition, "points": int(points[k])}
                inner = ", ".join(f"{key}: {j(v)}" for key, v in band.items())
                lines.append(f"      - {{{inner}}}   # {ev(rules.iloc[k])}")
    kept = [k for k, c in enumerate(design.columns) if c.kind == "engagement" and points[k] != 0]
    if kept:
        lines.append("engagement:")
        h = model["_half_life"]
        if h is not None:
            lines.append(f"  decay: {{half_life_days: {h:g}}}")
        lines.append("  rules:")
        names: set[str] = set(groups)
        for k in kept:
            cand = design.columns[k]
            rule_name = cand.name if cand.name not in names else f"{cand.name} (events)"
            names.add(rule_name)
            lines.append(f"    # {ev(rules.iloc[k])}")
            parts = [f"name: {j(rule_name)}"]
            parts += [f"{key}: {j(v)}" for key, v in cand.match.items()]
            parts.append(f"points: {int(points[k])}")
            if cand.limit:
                parts.append(f"limit: {cand.limit}")
            cap = design.caps[k]
            if cand.limit is None and cap is not None:
                parts.append(f"cap: {j(round(abs(points[k]) * cap, 2))}")
            lines.append(f"    - {{{', '.join(parts)}}}")
    for key in ("grades", "temperature", "thresholds"):
        if key in model:
            inner = ", ".join(f"{k}: {j(v)}" for k, v in model[key].items())
            lines.append(f"{key}: {{{inner}}}")
    return "\n".join(lines) + "\n"


def _test(data: Inputs, model: Model, t_test: int, window: float | None, time_split: bool,
          held_out: str) -> dict[str, Any]:
    """AUC and capture of the model as written, scored by the batch engine."""
    from leadscore.engine.batch import score_many

    con = data.con
    data.population(t_test, "ls_test_pop")
    data.labels("ls_test_pop", t_test, window, "ls_test_all")
    where = "" if time_split else f"WHERE {held_out}"
    con.sql(f"CREATE OR REPLACE TEMP TABLE ls_test AS SELECT * FROM ls_test_all {where}")
    events, leads = data.at(t_test)
    scores = score_many(model, events, leads, as_of=t_test, con=con)
    con.register("ls_test_scores", scores)
    rows = con.sql("SELECT t.converted, s.score, s.disqualified FROM ls_test AS t "
                   "JOIN ls_test_scores AS s USING (lead_id) ORDER BY t.lead_id").fetchnumpy()
    con.unregister("ls_test_scores")
    y = np.asarray(rows["converted"], dtype=float)
    score = np.asarray(rows["score"], dtype=float)
    ranked = Ranked.of(score, y)
    return {"cut_off": iso(t_test), "split": "time" if time_split else "leads",
            "leads": len(y), "conversions": int(y.sum()), "auc": ranked.auc(),
            **{f"capture_{d}": ranked.capture(d / 100) for d in (10, 20, 30)}}
