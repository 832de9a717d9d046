"""Planted effects: does `learn` recover the sign and order of known effects, and is its test
AUC within 0.01 of an unrestricted logistic regression and of LightGBM on the same features?

    python benchmarks/learn/bench_planted.py [--seeds 11 12 13] [--leads 6000]

For each seed: a planted world (`leadscore.demo.planted`), learn as of 60 days before its end
(30-day window), test one window later (time split). The unrestricted logistic regression
(no penalty) and LightGBM are fitted on exactly the learned model's training features and
tested on its test features; the learned model's AUC is that of its YAML scored by the engine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from leadscore.demo.planted import FIT_EFFECTS, KINDS, generate_planted_world
from leadscore.learn.metrics import auc
from leadscore.learn.predictive import fit_predictive, test_design
from leadscore.learn.scorecard import learn

HERE = Path(__file__).parent


def learned_effect(rules, name: str) -> float | None:
    """The learned log-odds of the rule that stands for a planted effect (None: not found)."""
    if " = " in name:
        group, value = name.split(" = ")
        hit = rules[(rules["group"] == group) & (rules["rule"] == f"{group} = {value}")]
        if hit.empty:
            return None
        # relative to the group's mean level: the fit bands of a trait share the intercept
        levels = rules[rules["group"] == group]
        return float(hit["coef"].iloc[0] - levels["coef"].mean())
    source = {"/pricing": "/pricing pages", "/careers": "/careers pages", "/blog": "/blog pages"}
    kind = next(k for k in KINDS if k.name == name)
    rule_name = source.get(kind.value, kind.value)
    hit = rules[rules["rule"] == rule_name]
    return None if hit.empty else float(hit["coef"].iloc[0])


def run(seed: int, leads: int) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression

    world = generate_planted_world(seed, leads=leads)
    learned = learn(world.events, world.leads, world.outcomes, as_of=world.cutoff(60),
                    window_days=30)
    train = learned.train
    x_test, y_test, _ = test_design(learned)
    x, y = train["design"].x, train["y"]
    sd = x.std(axis=0)
    sd[sd == 0] = 1
    mean = x.mean(axis=0)
    lr = LogisticRegression(C=1e12, max_iter=2000).fit((x - mean) / sd, y)
    lr_auc = auc(lr.decision_function((x_test - mean) / sd), y_test)
    gbm = fit_predictive(learned)
    planted = [(f"{t} = {v}", e) for t, v, e in FIT_EFFECTS] + [(k.name, k.effect) for k in KINDS]
    found = {name: learned_effect(learned.rules, name) for name, _ in planted}
    signs = {name: (found[name] is not None and np.sign(found[name]) == np.sign(effect))
             for name, effect in planted if effect != 0}
    eng = [(k.effect, found[k.name]) for k in KINDS if k.effect != 0 and found[k.name] is not None]
    fit = [(e, found[f"{t} = {v}"]) for t, v, e in FIT_EFFECTS if found[f"{t} = {v}"] is not None]
    return {
        "seed": seed, "leads": leads, "half_life": learned.half_life_days,
        "test_conversions": learned.test["conversions"],
        "auc_learned": learned.test["auc"], "auc_logistic_unrestricted": lr_auc,
        "auc_lightgbm": gbm.test["auc"], "capture_20_learned": learned.test["capture_20"],
        "signs_right": sum(signs.values()), "signs_total": len(signs),
        "order_engagement_spearman": float(spearmanr(*zip(*eng, strict=True)).statistic),
        "order_fit_spearman": float(spearmanr(*zip(*fit, strict=True)).statistic),
        "planted": {name: effect for name, effect in planted},
        "learned": found,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--leads", type=int, default=6000)
    args = parser.parse_args()
    results = [run(seed, args.leads) for seed in args.seeds]
    print(f"{'seed':>4} {'learned':>8} {'LR':>8} {'LightGBM':>8} {'Δ LR':>7} {'Δ GBM':>7} "
          f"{'signs':>6} {'order eng':>9} {'order fit':>9}")
    for r in results:
        print(f"{r['seed']:>4} {r['auc_learned']:8.3f} {r['auc_logistic_unrestricted']:8.3f} "
              f"{r['auc_lightgbm']:8.3f} "
              f"{r['auc_learned'] - r['auc_logistic_unrestricted']:+7.3f} "
              f"{r['auc_learned'] - r['auc_lightgbm']:+7.3f} "
              f"{r['signs_right']}/{r['signs_total']:<4} {r['order_engagement_spearman']:9.2f} "
              f"{r['order_fit_spearman']:9.2f}")
    for r in results:
        print(f"seed {r['seed']}: planted → learned log-odds: " + ", ".join(
            f"{k} {v:+.2f} → {'-' if r['learned'][k] is None else format(r['learned'][k], '+.2f')}"
            for k, v in r["planted"].items()))
    (HERE / "planted.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
