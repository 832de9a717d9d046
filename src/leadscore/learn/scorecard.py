"""Learn a scorecard from leads, events and outcomes, and write it as a model YAML (§3).

1. Labels, using every labelled lead. Outcomes with dates: features as of the cut-off
   `as_of`, label = converted in the `window_days` after it; the test is one window later
   (features as of `as_of + window`, conversions in the window after that), scored by the batch
   engine from the YAML as written. A training window (first data to the cut-off) shorter than
   twice the horizon is refused. Outcomes without dates: every labelled lead as of `as_of`
   trains, and k-fold cross-validation is the test (as it is when dated data leaves no window
   after the cut-off).
2. Candidates (`traits`, `features`): rules a marketer would write — trait bands by optimal
   binning or frequent values (never identifiers or dates), events and page groups counted
   once / daily / every time, thresholds on numeric event properties — for several half-lives.
3. Selection (`selection`): the L1 path gives sets of at most `max_rules` rules; the set and
   the half-life with the best cross-validated AUC are refitted on every training lead.
4. Points: log-odds × pdo / ln 2, rounded ("every `pdo` points double the odds"); a band's
   log-odds is its trait's coefficient times the band's weight of evidence. The MQL threshold
   for a target volume or precision; grades and temperature from quantiles; each rule with its
   evidence as a comment.
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
from leadscore.learn.design import Design, design_of, layout_of, points_score, rule_points
from leadscore.learn.inputs import Inputs, Step, When, as_of_us, open_inputs, quiet
from leadscore.learn.metrics import Ranked, auc
from leadscore.learn.selection import Selection, final_fit, select
from leadscore.learn.traits import Trait, trait_candidates
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY, iso

LEAKAGE_AUC = 0.98
MAX_RULES = 25


class LearnError(LeadscoreError):
    """Too little or unsuitable data to learn a model from."""


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
          half_lives: tuple[float | None, ...] = feats.HALF_LIVES, max_rules: int = MAX_RULES,
          folds: int = 5, step: Step = quiet, inputs: Inputs | None = None,
          free_bands: bool = False) -> Learned:
    """Learn a model (see module doc). `events` may be None when leads have traits only.
    `free_bands=True`: the kept traits' bands may each get their own coefficient where
    cross-validation prefers it (see `selection`; off by default: it lost on a benchmark).

    Raises LearnError when there are too few conversions to learn from, or (dated outcomes)
    the training window is shorter than twice the horizon."""
    if outcomes is None and inputs is None:
        raise LearnError("learning needs outcomes: a file with lead_id and converted / "
                         "converted_at, or event:<name>")
    if max_rules < 1:
        raise LearnError(f"--max-rules must be at least 1 (got {max_rules})")
    data = inputs or open_inputs(events, leads, outcomes, step=step, share=0.1)
    con = data.con
    warnings: list[str] = []
    window = float(window_days)
    default = data.data_end - int((2 if data.dated else 0) * window * US_PER_DAY)
    t_train = as_of_us(as_of, default)
    t_test = t_train + int(window * US_PER_DAY)
    if data.dated:
        _check_training_window(data, t_train, window)
    time_split = data.dated and t_test + window * US_PER_DAY <= data.data_end + US_PER_DAY
    if data.dated and not time_split:
        warnings.append(
            f"the data end ({iso(data.data_end)[:10]}) leaves no second window after the "
            f"cut-off: the test is {folds}-fold cross-validation on the training leads "
            "instead of a later time")

    step("labelling the training leads", 0.12)
    data.population(t_train, "ls_train_pop")
    data.labels("ls_train_pop", t_train, window if data.dated else None, "ls_train_all")
    [(labelled,)] = con.sql("SELECT count(*) FROM ls_train_all").fetchall()
    con.sql(f"CREATE OR REPLACE TEMP TABLE ls_train AS SELECT * FROM ls_train_all "
            f"USING SAMPLE reservoir({int(max_leads)} ROWS) REPEATABLE ({seed})")
    [(n_train, conversions)] = con.sql(
        "SELECT count(*), coalesce(sum(converted), 0) FROM ls_train").fetchall()
    if n_train < labelled:
        warnings.append(f"trained on a sample of {n_train:,} of the {labelled:,} labelled "
                        f"leads (max_leads)")
    if conversions < min_conversions:
        raise LearnError(
            f"only {conversions} of {n_train:,} leads converted in the window after "
            f"{iso(t_train)[:10]}: learning needs at least {min_conversions} conversions "
            f"(about 10 per rule it may learn); widen --window-days, move --as-of earlier, "
            f"or add outcomes")

    step("finding candidate rules", 0.18)
    exclude = (data.outcomes.event,) if data.outcomes.event else ()
    train_events, train_leads = data.at(t_train)     # a stream: as known then
    profile = (trait_candidates(con, train_leads, "ls_train", as_of_us=t_train)
               if train_leads is not None else None)
    traits = profile.traits if profile is not None else []
    if profile is not None and profile.skipped:
        warnings.append(profile.describe_skipped())
    sources = feats.source_candidates(con, train_events, t_train, exclude_events=exclude)
    sources += feats.property_candidates(con, train_events, t_train, sources)
    if not sources:
        half_lives = (None,)           # no engagement rule: no decay to choose
    if not traits and not sources:
        raise LearnError("no candidate rules: leads have no usable traits and no event "
                         "or page was seen for at least 30 leads before the cut-off")
    step(f"building {len(traits)} trait and {len(sources)} event candidates × "
         f"{len(half_lives)} half-lives for {n_train:,} leads", 0.25)
    fs = feats.build(con, "ls_train", t_train, leads=train_leads, events=train_events,
                     traits=traits, sources=sources, half_lives=half_lives)
    y = _labels(con, "ls_train")
    warnings += _leakage(fs, y)

    step(f"choosing at most {max_rules} rules and the half-life by {folds}-fold "
         "cross-validation", 0.4)
    scale = pdo / math.log(2)
    chosen = select(fs, y, half_lives=half_lives, max_rules=max_rules, folds=folds,
                    seed=seed, scale=scale, free_bands=free_bands)
    validation = pd.DataFrame(chosen.tried)

    step("fitting the scorecard", 0.65)
    design = design_of(fs, layout_of(fs, chosen.half_life, y, np.ones(len(y), dtype=bool)))
    design, coef, intercept = final_fit(fs, design, y, chosen)
    points = rule_points(design, coef, scale)
    raw_score = points_score(fs, design, points)
    rules = _evidence(fs, design, y, coef, points)
    model_dict, threshold_note = _model(name, design, fs, points, chosen.half_life, raw_score,
                                        y, target_volume, target_precision)
    header = _header(n_train, int(conversions), t_train, window, data.dated, pdo, intercept,
                     chosen, threshold_note, max_rules)
    text = _yaml(model_dict, design, points, rules, header)
    model = load_model(f"{name}.yaml", text=text)

    if time_split:
        step("testing the learned model with the batch engine", 0.7)
        test = _test(data, model, t_test, window)
    else:
        ranked = Ranked.of(chosen.oof_points, y)
        test = {"cut_off": iso(t_train), "split": f"{chosen.folds}-fold cross-validation",
                "leads": len(y), "conversions": int(y.sum()), "auc": ranked.auc(),
                **{f"capture_{d}": ranked.capture(d / 100) for d in (10, 20, 30)}}
    test["unrounded_auc_train"] = auc(design.x @ coef, y)
    test["rules"] = int(rules.drop_duplicates("group")["kept"].sum()) if len(rules) else 0
    return Learned(model, text, rules, validation, test, warnings, chosen.half_life,
                   train={"design": design, "y": y, "coef": coef, "intercept": intercept,
                          "features": fs, "t_train": t_train, "t_test": t_test,
                          "time_split": time_split, "inputs": data, "points": points,
                          "points_score": raw_score, "profile": profile,
                          "window": window if data.dated else None})


def _check_training_window(data: Inputs, t_train: int, window: float) -> None:
    """Refuse a training window (first event or conversion to the cut-off) shorter than twice
    the horizon: features would see less history than the outcome window they predict."""
    [(first_event,)] = data.con.sql(f"SELECT min(ts) FROM {quote(data.events)}").fetchall()
    [(first_conversion,)] = data.con.sql(
        f"SELECT min(converted_at) FROM {quote(data.outcomes.table)}").fetchall()
    starts = [v for v in (first_event, first_conversion) if v is not None]
    if not starts:
        return
    start = int(min(starts))
    days = (t_train - start) / US_PER_DAY
    if days < 2 * window:
        raise LearnError(
            f"the training window is too short: {max(days, 0):.0f} days from the first data "
            f"({iso(start)[:10]}) to the cut-off {iso(t_train)[:10]}, less than twice the "
            f"{window:g}-day horizon ({2 * window:g} days). Move --as-of later, shorten "
            f"--window-days, or add older data")


def _labels(con: Any, table: str) -> np.ndarray:
    rows = con.sql(f"SELECT converted FROM {quote(table)} ORDER BY lead_id").fetchnumpy()
    return np.asarray(rows["converted"], dtype=float)


def _leakage(fs: feats.FeatureSet, y: np.ndarray) -> list[str]:
    """A warning for every candidate that alone separates converters almost perfectly."""
    out: list[str] = []
    if y.sum() < 5:
        return out
    named: list[tuple[str, np.ndarray]] = []
    for j, trait in enumerate(fs.traits):
        for b, band in enumerate(trait.bands):
            named.append((f"{trait.name} {band.label}", (fs.bands[:, j] == b).astype(float)))
    block = next(iter(fs.engagement_x.values()))
    named += [(f"{s.name} ({v})", block[:, i, k]) for i, s in enumerate(fs.sources)
              for k, v in enumerate(feats.VARIANTS)]
    for label, values in named:
        a = auc(values, y)
        if not math.isnan(a) and max(a, 1 - a) >= LEAKAGE_AUC:
            out.append(f"possible leakage: {label!r} alone separates converters almost "
                       f"perfectly (AUC {max(a, 1 - a):.3f}); is it recorded at or after "
                       f"the conversion?")
    return out


def _evidence(fs: feats.FeatureSet, design: Design, y: np.ndarray, coef: np.ndarray,
              points: list[np.ndarray]) -> pd.DataFrame:
    """One row per band of a trait and per engagement rule: who it fires for, their conversion
    rate vs the others', the log-odds and the points."""
    rows = []

    def row(name: str, kind: str, group: str, limit: str | None, pts: float, log_odds: float,
            fired: np.ndarray, kept: bool, how: str) -> None:
        rows.append({
            "rule": name, "kind": kind, "group": group, "limit": limit, "points": int(pts),
            "coef": float(log_odds), "leads": int(fired.sum()),
            "conversion_with": float(y[fired].mean()) if fired.any() else float("nan"),
            "conversion_without": float(y[~fired].mean()) if (~fired).any() else float("nan"),
            "kept": kept, "how": how})

    for j, column in enumerate(design.columns):
        kept = bool(np.any(points[j] != 0))
        if isinstance(column, Trait):
            for b, band in enumerate(column.bands):
                row(f"{column.name} {band.label}", "fit", column.name, None, points[j][b],
                    coef[j] * design.layout.woes[j][b], fs.bands[:, j] == b, kept, column.how)
        else:
            row(column.name, "engagement", column.group, column.limit, points[j][0], coef[j],
                design.x[:, j] > 0, kept, "")
    return pd.DataFrame(rows)


def _model(name: str, design: Design, fs: feats.FeatureSet, points: list[np.ndarray],
           h: float | None, score: np.ndarray, y: np.ndarray, target_volume: float | None,
           target_precision: float | None) -> tuple[dict[str, Any], str]:
    fit_points = [p if j < design.traits else np.zeros(1) for j, p in enumerate(points)]
    eng_points = [p if j >= design.traits else np.zeros_like(p) for j, p in enumerate(points)]
    fit_score = points_score(fs, design, fit_points)
    eng_score = points_score(fs, design, eng_points)
    model: dict[str, Any] = {"schema_version": 1, "name": name,
                             "description": "Learned from outcomes by leadscore learn"}
    if any(np.any(p != 0) for p in points[:design.traits]):
        q = np.quantile(fit_score, [0.9, 0.7, 0.4, 0.1])
        grades: dict[str, float] = {}
        for letter, value in zip("ABCD", q, strict=True):
            value = float(round(value))
            if not grades or value < min(grades.values()):
                grades[letter] = value
        model["grades"] = grades
    if any(np.any(p != 0) for p in points[design.traits:]):
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
            intercept: float, chosen: Selection, threshold_note: str, max_rules: int
            ) -> list[str]:
    tried = pd.DataFrame(chosen.tried)
    by_h = tried.groupby("half_life_days", dropna=False)["cv_auc"].max() if len(tried) else \
        pd.Series(dtype=float)
    shown = ", ".join(f"{'none' if k != k else f'{k:g} d'} {v:.3f}"  # k != k: NaN, no decay
                      for k, v in zip(by_h.index.tolist(), by_h.tolist(), strict=True))
    p0 = 1 / (1 + math.exp(-intercept))
    h = chosen.half_life
    when = (f"in the {window:g} days after the cut-off {iso(t_train)}" if dated else
            f"(outcomes without dates; traits and events as of {iso(t_train)})" if t_train
            else "(outcomes without dates)")
    return [
        f"Learned by `leadscore learn` from {n:,} leads, {conversions:,} of which converted "
        f"{when}.",
        f"Points: every {pdo:g} points double the odds of converting (a score of 0 means "
        f"about {p0:.2%}).",
        f"{len(chosen.support)} rules (at most {max_rules})"
        + ("" if h is None else f" and half-life {h:g} days")
        + f" chosen by {chosen.folds}-fold cross-validated AUC"
        + (f" (best per half-life: {shown})." if len(by_h) > 1
           else f" ({chosen.cv_auc:.3f})."),
        ("Each band's points fitted on their own (cross-validated AUC "
         f"{chosen.cv_auc:.3f} vs {chosen.cv_auc_woe:.3f} with one coefficient per trait "
         "times its bands' weight of evidence)." if chosen.free else
         "A trait's bands: one coefficient times their weight of evidence (the binning's "
         "trend kept)."),
        threshold_note + ".",
        "Each rule's comment: how it was cut, leads it fires for in training, their "
        "conversion rate vs the others', and the fitted log-odds.",
    ]


def _yaml(model: dict[str, Any], design: Design, points: list[np.ndarray],
          rules: pd.DataFrame, header: list[str]) -> str:
    def j(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def ev(r: pd.Series) -> str:
        return (f"{r['leads']:,} leads, {r['conversion_with']:.1%} converted vs "
                f"{r['conversion_without']:.1%} without; log-odds {r['coef']:+.3f}")

    lines = [f"# {line}" for line in header]
    lines += [f"schema_version: {model['schema_version']}", f"name: {j(model['name'])}",
              f"description: {j(model['description'])}", "timezone: UTC"]
    evidence = rules.set_index("rule")
    fit = [k for k in range(design.traits) if np.any(points[k] != 0)]
    if fit:
        lines.append("fit:")
        for k in fit:
            trait = design.columns[k]
            assert isinstance(trait, Trait)
            lines.append(f"  # {trait.how}")
            lines.append(f"  - name: {j(trait.name)}")
            lines.append(f"    {'age_of' if trait.age else 'attribute'}: {j(trait.name)}")
            lines.append("    bands:")
            for b, band in enumerate(trait.bands):
                if points[k][b] == 0:
                    continue
                inner = ", ".join(f"{key}: {j(v)}" for key, v in
                                  {**band.condition, "points": int(points[k][b])}.items())
                lines.append(f"      - {{{inner}}}   # {band.label}: "
                             f"{ev(evidence.loc[f'{trait.name} {band.label}'])}")
    kept = [k for k in range(design.traits, len(design.columns)) if points[k][0] != 0]
    if kept:
        lines.append("engagement:")
        h = model["_half_life"]
        if h is not None:
            lines.append(f"  decay: {{half_life_days: {h:g}}}")
        lines.append("  rules:")
        names = {design.columns[k].name for k in fit}
        for k in kept:
            cand = design.columns[k]
            assert isinstance(cand, feats.Candidate)
            rule_name = cand.name if cand.name not in names else f"{cand.name} (events)"
            names.add(rule_name)
            lines.append(f"    # {ev(rules.iloc[_row(rules, cand.name)])}")
            parts = [f"name: {j(rule_name)}"]
            parts += [f"{key}: {_flow(v)}" for key, v in cand.match.items()]
            parts.append(f"points: {int(points[k][0])}")
            if cand.limit:
                parts.append(f"limit: {cand.limit}")
            cap = design.layout.caps[k - design.traits]
            if cand.limit is None and cap is not None:
                parts.append(f"cap: {j(round(abs(float(points[k][0])) * cap, 2))}")
            lines.append(f"    - {{{', '.join(parts)}}}")
    for key in ("grades", "temperature", "thresholds"):
        if key in model:
            inner = ", ".join(f"{k}: {j(v)}" for k, v in model[key].items())
            lines.append(f"{key}: {{{inner}}}")
    return "\n".join(lines) + "\n"


def _row(rules: pd.DataFrame, name: str) -> int:
    return int(np.flatnonzero((rules["rule"] == name).to_numpy()
                              & (rules["kind"] == "engagement").to_numpy())[0])


def _flow(value: Any) -> str:
    """A value as YAML flow (JSON is valid YAML flow: `{"properties.x": {"gte": 2}}`)."""
    return json.dumps(value, ensure_ascii=False)


def _test(data: Inputs, model: Model, t_test: int, window: float | None) -> dict[str, Any]:
    """AUC and capture of the model as written, scored by the batch engine at the test
    cut-off (one window after the training cut-off)."""
    from leadscore.engine.batch import score_many

    con = data.con
    data.population(t_test, "ls_test_pop")
    data.labels("ls_test_pop", t_test, window, "ls_test")
    events, leads = data.at(t_test)
    scores = score_many(model, events, leads, as_of=t_test, con=con)
    con.register("ls_test_scores", scores)
    rows = con.sql("SELECT t.converted, s.score, s.disqualified FROM ls_test AS t "
                   "JOIN ls_test_scores AS s USING (lead_id) ORDER BY t.lead_id").fetchnumpy()
    con.unregister("ls_test_scores")
    y = np.asarray(rows["converted"], dtype=float)
    score = np.asarray(rows["score"], dtype=float)
    ranked = Ranked.of(score, y)
    return {"cut_off": iso(t_test), "split": "time split",
            "leads": len(y), "conversions": int(y.sum()), "auc": ranked.auc(),
            **{f"capture_{d}": ranked.capture(d / 100) for d in (10, 20, 30)}}
