"""The optional predictive score: a gradient-boosted model (LightGBM) over the learned model's
features, with a conversion probability and the top factors for and against each lead.

It is an add-on, off by default: it is trained on the same leads and tested on the same
cut-off as the points model, shown next to it, and never replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadscore.learn import features as feats
from leadscore.learn.metrics import Ranked
from leadscore.learn.scorecard import Learned


@dataclass
class Predictive:
    """A fitted booster, its test metrics, and per test lead: probability and factors."""

    booster: Any
    columns: list[str]
    test: dict[str, Any]
    leads: pd.DataFrame      # lead_id, probability, converted, top_positive, top_negative


def fit_predictive(learned: Learned, *, top: int = 3, seed: int = 0) -> Predictive:
    """Fit LightGBM on the learned model's training features; test it on its test cut-off."""
    import lightgbm as lgb

    train = learned.train
    design = train["design"]
    columns = [c.name for c in design.columns]
    booster = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=15,
                                 min_child_samples=40, subsample=0.8, subsample_freq=1,
                                 colsample_bytree=0.8, random_state=seed, verbose=-1)
    booster.fit(design.x, train["y"])
    x_test, y_test, ids = test_design(learned)
    probability = np.asarray(booster.predict_proba(x_test))[:, 1]
    contrib = np.asarray(booster.predict(x_test, pred_contrib=True))[:, :-1]
    order = np.argsort(contrib, axis=1)
    names = np.array(columns, dtype=object)
    positive = [", ".join(f"{names[j]} {contrib[i, j]:+.2f}" for j in order[i, ::-1][:top]
                          if contrib[i, j] > 0) for i in range(len(ids))]
    negative = [", ".join(f"{names[j]} {contrib[i, j]:+.2f}" for j in order[i, :top]
                          if contrib[i, j] < 0) for i in range(len(ids))]
    ranked = Ranked.of(probability, y_test)
    test = {"auc": ranked.auc(), **{f"capture_{d}": ranked.capture(d / 100)
                                    for d in (10, 20, 30)}}
    frame = pd.DataFrame({"lead_id": ids, "probability": probability, "converted": y_test,
                          "top_positive": positive, "top_negative": negative})
    return Predictive(booster, columns, test, frame)


def test_design(learned: Learned) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The learned model's feature columns for its test leads, their outcomes and ids."""
    train = learned.train
    data = train["inputs"]
    design = train["design"]
    fs: feats.FeatureSet = train["features"]
    test = feats.build(data.con, "ls_test", train["t_test"], leads=data.leads,
                       events=data.events, fit=fs.fit, sources=fs.sources,
                       half_lives=(learned.half_life_days,))
    block = test.engagement_x[learned.half_life_days]
    parts = [test.fit_x.astype(np.float64)]
    for k, cand in enumerate(design.columns[len(fs.fit):]):
        variant = feats.VARIANTS.index(cand.limit or "every")
        values = block[:, k, variant].astype(np.float64)
        cap = design.caps[len(fs.fit) + k]
        parts.append((np.minimum(values, cap) if cap is not None else values)[:, None])
    rows = data.con.sql("SELECT converted FROM ls_test ORDER BY lead_id").fetchnumpy()
    return np.hstack(parts), np.asarray(rows["converted"], dtype=float), test.lead_ids
