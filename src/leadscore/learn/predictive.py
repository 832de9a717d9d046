"""The optional predictive score: a gradient-boosted model (LightGBM) over the learned model's
features, with a conversion probability and the top factors for and against each lead.

It is an add-on, off by default: it is trained on the same leads and tested on the same
cut-off as the points model, shown next to it, and never replaces it. `learn --predictive` fits
it on the learned model's features (`fit_predictive`); `evaluate --predictive` trains it on the
window before the backtest's cut-off and ranks the backtest's leads with it
(`backtest_predictive`), so it is judged by the same backtest as the points models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadscore.errors import InputError
from leadscore.io.sqltext import quote
from leadscore.learn import features as feats
from leadscore.learn.design import design_of
from leadscore.learn.inputs import Inputs
from leadscore.learn.metrics import Ranked
from leadscore.learn.scorecard import Learned
from leadscore.learn.traits import trait_candidates
from leadscore.timeutil import US_PER_DAY

# Half-lives of the engagement features the booster gets (each source in every variant):
# fewer than learn's grid, the trees combine them.
HALF_LIVES: tuple[float | None, ...] = (14.0, 60.0, None)


@dataclass
class Predictive:
    """A fitted booster, its test metrics, and per test lead: probability and factors."""

    booster: Any
    columns: list[str]
    test: dict[str, Any]
    leads: pd.DataFrame      # lead_id, probability, converted, top_positive, top_negative


def fit_predictive(learned: Learned, *, top: int = 3, seed: int = 0) -> Predictive:
    """Fit LightGBM on the learned model's training features; test it on its test cut-off, or
    (no time split) by the same k-fold cross-validation as the points model."""
    train = learned.train
    design = train["design"]
    columns = [c.name for c in design.columns]
    booster = _booster(seed)
    if train["time_split"]:
        booster.fit(design.x, train["y"])
        x_test, y_test, ids = test_design(learned)
        probability = np.asarray(booster.predict_proba(x_test))[:, 1]
    else:
        from sklearn.model_selection import StratifiedKFold

        x_test, y_test, ids = design.x, train["y"], train["features"].lead_ids
        probability = np.zeros(len(y_test))
        for fit_rows, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(
                x_test, y_test):
            booster.fit(x_test[fit_rows], y_test[fit_rows])
            probability[held] = np.asarray(booster.predict_proba(x_test[held]))[:, 1]
        booster.fit(x_test, y_test)
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
    """The learned model's feature columns for its test leads (time split), their outcomes
    and ids: the training layout (WoE, caps, variants) applied to the test cut-off."""
    train = learned.train
    data = train["inputs"]
    design = train["design"]
    fs: feats.FeatureSet = train["features"]
    events, leads = data.at(train["t_test"])
    test = feats.build(data.con, "ls_test", train["t_test"], leads=leads,
                       events=events, traits=fs.traits, sources=fs.sources,
                       half_lives=(learned.half_life_days,))
    x = design_of(test, design.layout).x
    rows = data.con.sql("SELECT converted FROM ls_test ORDER BY lead_id").fetchnumpy()
    return x, np.asarray(rows["converted"], dtype=float), test.lead_ids


def _booster(seed: int) -> Any:
    # One thread: LightGBM's OpenMP threads spin-wait, and on shared cores a tree took 0.19 s
    # on 1,500 leads (ms with one thread).
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=15,
                              min_child_samples=40, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, random_state=seed, verbose=-1, n_jobs=1)


def backtest_predictive(data: Inputs, cut: int, window_days: float | None,
                        lead_ids: np.ndarray, *, max_leads: int = 250_000, seed: int = 0,
                        min_conversions: int = 20) -> tuple[np.ndarray, str]:
    """The booster's conversion probability for `lead_ids` as of the backtest's cut-off, and a
    note saying how it was trained: on features as of `cut − window` (default 30 days) and the
    conversions in the window up to the cut-off — nothing at or after the cut-off is seen."""
    con = data.con
    window = float(window_days or 30.0)
    t_train = cut - int(window * US_PER_DAY)
    # Without dates, "converted" is the backtest's own label: training on it would leak.
    if not data.dated:
        raise InputError("--predictive needs outcomes with dates (converted_at or event:<name>)"
                         ": it trains on the conversions before the cut-off")
    data.population(t_train, "ls_pred_pop")
    # labels: converted in (t_train, cut]; a later conversion is a 0 here, as known at the cut
    data.labels("ls_pred_pop", t_train, window, "ls_pred_all")
    con.sql(f"CREATE OR REPLACE TEMP TABLE ls_pred_train AS SELECT * FROM ls_pred_all "
            f"USING SAMPLE reservoir({int(max_leads)} ROWS) REPEATABLE ({seed})")
    [(n_train, conversions)] = con.sql(
        "SELECT count(*), coalesce(sum(converted), 0) FROM ls_pred_train").fetchall()
    if conversions < min_conversions:
        raise InputError(f"--predictive: only {conversions} of {n_train:,} leads converted in "
                         f"the {window:g} days before the cut-off; it needs at least "
                         f"{min_conversions} to train on")
    exclude = (data.outcomes.event,) if data.outcomes.event else ()
    events, leads = data.at(t_train)     # a stream: as known then
    traits = (trait_candidates(con, leads, "ls_pred_train", as_of_us=t_train).traits
              if leads is not None else [])
    sources = feats.source_candidates(con, events, t_train, exclude_events=exclude)
    sources += feats.property_candidates(con, events, t_train, sources)
    train = feats.build(con, "ls_pred_train", t_train, leads=leads, events=events,
                        traits=traits, sources=sources, half_lives=HALF_LIVES)
    y = np.asarray(con.sql("SELECT converted FROM ls_pred_train ORDER BY lead_id")
                   .fetchnumpy()["converted"], dtype=float)
    booster = _booster(seed)
    booster.fit(_matrix(train), y)
    con.register("ls_pred_ids", pd.DataFrame({"lead_id": lead_ids}))
    con.sql("CREATE OR REPLACE TEMP TABLE ls_pred_test AS SELECT DISTINCT lead_id "
            "FROM ls_pred_ids")
    con.unregister("ls_pred_ids")
    events, leads = data.at(cut)
    test = feats.build(con, "ls_pred_test", cut, leads=leads, events=events,
                       traits=traits, sources=sources, half_lives=HALF_LIVES)
    probability = np.asarray(booster.predict_proba(_matrix(test)))[:, 1]
    by_id = pd.Series(probability, index=test.lead_ids)
    note = (f"predictive (LightGBM): trained on {n_train:,} leads as of "
            f"{_day(t_train)} and their {int(conversions):,} conversions up to the cut-off; "
            "shown for comparison, it scores no lead")
    con.sql(f"DROP TABLE IF EXISTS {quote('ls_pred_train')}")
    return by_id.loc[lead_ids].to_numpy(), note


def _matrix(fs: feats.FeatureSet) -> np.ndarray:
    blocks = [(fs.bands[:, j][:, None] == np.arange(len(t.bands))[None, :]).astype(np.float32)
              for j, t in enumerate(fs.traits)]
    blocks += [fs.engagement_x[h].reshape(len(fs.lead_ids), -1) for h in HALF_LIVES]
    return np.hstack(blocks)


def _day(us: int) -> str:
    from leadscore.timeutil import iso

    return iso(us)[:10]
