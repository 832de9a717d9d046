"""The learned points model side by side with the usual alternatives, on public data sets that
ship inside a package (no download at run time).

    pip install -e ".[learn]" && pip install --no-deps ISLP fasterrisk
    python benchmarks/learn/bench_compare.py [--datasets caravan oj default] [--folds 5]
    python benchmarks/learn/bench_compare.py --write-models    # each data set's learned YAML

(`--no-deps`: ISLP is only the data's carrier, and its own dependencies include torch;
fasterrisk pins numpy < 2 and pandas < 2 in its metadata but runs on the versions here.)

Data sets, all from `ISLP/data/` (the data of "An Introduction to Statistical Learning"):
- **caravan** — CoIL Challenge 2000: 5,822 customers of an insurer, 85 socio-demographic and
  product-ownership attributes, who bought a caravan policy (348, 6 %). A lead-scoring task.
- **oj** — 1,070 orange-juice purchases: prices, discounts, specials, store, brand loyalty;
  converted = bought Minute Maid rather than Citrus Hill (417, 39 %).
- **default** — 10,000 card holders: student, balance, income; converted = defaulted (333,
  3 %). The classic home of points scorecards.

Protocol: stratified 5-fold cross-validation (seed 0); every method is fitted on 4/5 and scores
the held-out 1/5, so every lead is scored once, by a model that never saw it. AUC and top-20 %
capture are measured on the pooled held-out scores, with 95 % Poisson-bootstrap intervals and
the paired difference from the learned model (same replicates).

Methods (each fitted on the same training part):
- **leadscore learn** — `learn(None, leads, outcomes)` (defaults: at most 25 rules, integer
  points); the held-out leads are scored by the batch engine from the YAML as written.
- **L1 logistic regression, same candidates** — every band of every trait candidate `learn`
  considered (one 0/1 column each), L1 penalty chosen by 3-fold CV (`LogisticRegressionCV`).
- **LightGBM** — the raw attributes; leaves and trees chosen by 3-fold CV on the training part.
- **optbinning scorecard** — `BinningProcess` + `Scorecard` (logistic regression on WoE),
  every attribute.
- **FasterRisk** — sparse integer risk score (k = 10 binary features, coefficients in
  [−5, 5]) on threshold indicators of every attribute (`x ≤ t` at up to 8 quantiles).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore.engine.batch import score_many
from leadscore.learn.inputs import open_inputs
from leadscore.learn.metrics import bootstrap
from leadscore.learn.scorecard import learn
from leadscore.learn.traits import band_index

HERE = Path(__file__).parent
EMPTY_EVENTS = pa.table({"lead_id": pa.array([], pa.string()),
                         "timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
                         "type": pa.array([], pa.string()), "event": pa.array([], pa.string()),
                         "path": pa.array([], pa.string())})


def dataset(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads (lead_id + attributes) and the 0/1 outcome."""
    with files("ISLP").joinpath("data", f"{ {'oj': 'OJ'}.get(name, name.title())}.csv"
                                ).open() as f:
        data = pd.read_csv(f)
    target = {"caravan": ("Purchase", "Yes"), "oj": ("Purchase", "MM"),
              "default": ("default", "Yes")}[name]
    y = (data.pop(target[0]) == target[1]).to_numpy(dtype=int)
    data.insert(0, "lead_id", [f"{name}-{i:05d}" for i in range(len(data))])
    return data, y


def numeric(leads: pd.DataFrame) -> pd.DataFrame:
    """The attributes as numbers for the baselines (Yes/No → 1/0, text one-hot)."""
    x = leads.drop(columns=["lead_id"]).copy()
    for column in x.columns:
        if x[column].dtype == object:
            values = set(x[column].dropna())
            if values <= {"Yes", "No"}:
                x[column] = (x[column] == "Yes").astype(float)
    return pd.get_dummies(x, dtype=float)


def run_learn(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, **options: Any
              ) -> tuple[np.ndarray, int, Any]:
    outcomes = pd.DataFrame({"lead_id": train["lead_id"], "converted": y})
    learned = learn(None, train, outcomes, min_conversions=20, **options)
    scores = score_many(learned.model, EMPTY_EVENTS, test).to_pandas().set_index("lead_id")
    return scores.loc[test["lead_id"], "score"].to_numpy(dtype=float), learned.test["rules"], \
        learned


def run_l1_same_candidates(learned: Any, y: np.ndarray, test: pd.DataFrame) -> tuple[
        np.ndarray, int]:
    from sklearn.linear_model import LogisticRegressionCV

    fs = learned.train["features"]
    x_train = one_hot(fs.bands, [len(t.bands) for t in fs.traits])
    data = open_inputs(EMPTY_EVENTS, test, pd.DataFrame({"lead_id": test["lead_id"],
                                                          "converted": 0}))
    data.population(0, "pop")
    test_bands = band_index(data.con, "pop", data.leads, fs.traits)
    order = np.argsort(test["lead_id"].to_numpy())          # band_index sorts by lead_id
    x_test = np.empty_like(one_hot(test_bands, [len(t.bands) for t in fs.traits]))
    x_test[order] = one_hot(test_bands, [len(t.bands) for t in fs.traits])
    y_train = learned.train["y"]
    model = LogisticRegressionCV(Cs=12, cv=3, l1_ratios=(1.0,), solver="liblinear",
                                 scoring="roc_auc", max_iter=2000).fit(x_train, y_train) \
        if _new_sklearn() else LogisticRegressionCV(Cs=12, cv=3, penalty="l1",
                                                    solver="liblinear", scoring="roc_auc",
                                                    max_iter=2000).fit(x_train, y_train)
    return model.decision_function(x_test), int(np.count_nonzero(model.coef_))


def _new_sklearn() -> bool:
    import sklearn

    return tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)


def one_hot(bands: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts = [(bands[:, j][:, None] == np.arange(k)[None, :]).astype(float)
             for j, k in enumerate(sizes)]
    return np.hstack(parts) if parts else np.zeros((len(bands), 0))


def run_lightgbm(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, int]:
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import GridSearchCV

    base = LGBMClassifier(learning_rate=0.03, min_child_samples=20, subsample=0.8,
                          subsample_freq=1, colsample_bytree=0.8, random_state=0, verbose=-1,
                          n_jobs=1)
    grid = GridSearchCV(base, {"num_leaves": [4, 15], "n_estimators": [100, 300, 600]},
                        scoring="roc_auc", cv=3).fit(x, y)
    best = grid.best_estimator_
    return best.predict_proba(x_test)[:, 1], int(best.n_estimators)


def run_optbinning(x: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame) -> tuple[
        np.ndarray, int]:
    from optbinning import BinningProcess, Scorecard
    from sklearn.linear_model import LogisticRegression

    process = BinningProcess(list(x.columns))
    card = Scorecard(binning_process=process, estimator=LogisticRegression(max_iter=2000),
                     scaling_method="min_max", scaling_method_params={"min": 0, "max": 100})
    card.fit(x, y)
    table = card.table(style="summary")
    used = int((table.groupby("Variable")["Points"].nunique() > 1).sum())
    return np.asarray(card.predict_proba(x_test))[:, 1], used


def run_fasterrisk(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, k: int = 10
                   ) -> tuple[np.ndarray, int]:
    from fasterrisk.fasterrisk import RiskScoreOptimizer

    cuts = []
    for j in range(x.shape[1]):
        values = np.unique(np.quantile(x[:, j], np.linspace(0.1, 0.9, 8)))
        cuts += [(j, t) for t in values if (x[:, j] <= t).mean() < 0.995]
    binary = np.column_stack([x[:, j] <= t for j, t in cuts]).astype(float)
    binary_test = np.column_stack([x_test[:, j] <= t for j, t in cuts]).astype(float)
    optimizer = RiskScoreOptimizer(X=binary, y=np.where(y == 1, 1, -1), k=k, lb=-5, ub=5)
    optimizer.optimize()
    _, intercepts, coefficients = optimizer.get_models()
    coef = np.asarray(coefficients[0])
    return binary_test @ coef + intercepts[0], int(np.count_nonzero(coef))


METHODS = ["leadscore learn (points, YAML)", "leadscore learn, free bands",
           "L1 logistic regression, same candidates", "LightGBM", "optbinning scorecard",
           "FasterRisk (k = 10)"]


def compare(name: str, folds: int, replicates: int, only: list[str] | None = None
            ) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    leads, y = dataset(name)
    x_all = numeric(leads)
    # The learned model first (the others' Δ is against it); `only`: names containing one of
    # these words (the learned model always).
    methods = [m for i, m in enumerate(METHODS)
               if i == 0 or only is None or any(w.lower() in m.lower() for w in only)]
    scores = {m: np.zeros(len(y)) for m in methods}
    rules: dict[str, list[int]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    cpu = {m: 0.0 for m in methods}
    split = StratifiedKFold(folds, shuffle=True, random_state=0)
    for fold, (train, test) in enumerate(split.split(np.zeros(len(y)), y)):
        print(f"  {name} fold {fold + 1}/{folds}", flush=True)
        tr, te = leads.iloc[train].reset_index(drop=True), leads.iloc[test].reset_index(drop=True)
        xtr, xte = x_all.iloc[train], x_all.iloc[test]
        learned = None
        for method in methods:
            started, started_cpu = time.perf_counter(), time.process_time()
            if method == METHODS[0]:
                score, count, learned = run_learn(tr, y[train], te)
            elif method == METHODS[1]:      # issue #17's attempt, not kept by default
                score, count, _ = run_learn(tr, y[train], te, free_bands=True)
            elif method.startswith("L1"):
                score, count = run_l1_same_candidates(learned, y[train], te)
            elif method == "LightGBM":
                score, count = run_lightgbm(xtr.to_numpy(), y[train], xte.to_numpy())
            elif method.startswith("optbinning"):
                score, count = run_optbinning(xtr, y[train], xte)
            else:
                score, count = run_fasterrisk(xtr.to_numpy(), y[train], xte.to_numpy())
            seconds[method] += time.perf_counter() - started
            cpu[method] += time.process_time() - started_cpu
            scores[method][test] = score
            rules[method].append(count)
    each, diffs = bootstrap([scores[m] for m in methods], y.astype(float),
                            replicates=replicates, seed=0)
    rows = []
    for i, method in enumerate(methods):
        row = {"method": method, "auc": each[i]["auc"].estimate,
               "auc_low": each[i]["auc"].low, "auc_high": each[i]["auc"].high,
               "capture_20": each[i]["capture_20"].estimate,
               "capture_20_low": each[i]["capture_20"].low,
               "capture_20_high": each[i]["capture_20"].high,
               "rules_median": float(np.median(rules[method])), "seconds": seconds[method],
               "cpu_seconds": cpu[method]}
        if i:
            d = diffs[i - 1]["auc"]
            row.update({"auc_minus_learned": d.estimate, "diff_low": d.low, "diff_high": d.high})
        rows.append(row)
    return {"dataset": name, "leads": len(y), "conversions": int(y.sum()), "folds": folds,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["caravan", "oj", "default"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--only", nargs="+", help="Only the methods whose name contains one "
                        "of these words, beside the learned model (e.g. `free LightGBM`)")
    parser.add_argument("--out", default="compare.json", help="The JSON file (in "
                        "benchmarks/learn/) the results are merged into.")
    parser.add_argument("--write-models", action="store_true", help="Only learn each data "
                        "set's model on every lead and write it to <name>-learned.yaml.")
    args = parser.parse_args()
    if args.write_models:
        for name in args.datasets:
            leads, y = dataset(name)
            learned = learn(None, leads, pd.DataFrame({"lead_id": leads["lead_id"],
                                                       "converted": y}), min_conversions=20)
            (HERE / f"{name}-learned.yaml").write_text(learned.yaml)
            print(f"{name}: {learned.test['rules']} rules, cross-validated AUC "
                  f"{learned.test['auc']:.3f}; {'; '.join(learned.warnings)}")
        return
    results = []
    for name in args.datasets:
        result = compare(name, args.folds, args.bootstrap, args.only)
        results.append(result)
        print(f"\n{name}: {result['leads']:,} leads, {result['conversions']:,} converted")
        print(f"{'method':42} {'AUC [95 %]':>22} {'Δ vs learned':>22} {'top 20 %':>22} "
              f"{'rules':>6} {'s':>7} {'CPU s':>7}")
        for r in result["rows"]:
            diff = (f"{r['auc_minus_learned']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]"
                    if "auc_minus_learned" in r else "")
            print(f"{r['method']:42} {r['auc']:.3f} [{r['auc_low']:.3f}, {r['auc_high']:.3f}]"
                  f" {diff:>22} {r['capture_20']:.1%} [{r['capture_20_low']:.1%}, "
                  f"{r['capture_20_high']:.1%}] {r['rules_median']:6g} {r['seconds']:7.1f} "
                  f"{r['cpu_seconds']:7.1f}")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "load_average": os.getloadavg()}
    out = HERE / args.out
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update({r["dataset"]: {**r, "machine": machine} for r in results})
    out.write_text(json.dumps(previous, indent=1))


if __name__ == "__main__":
    main()
