"""Which rules a learned model keeps, chosen by cross-validation on the training leads.

Per candidate half-life: the L1 (lasso) path of a logistic regression over every candidate
column gives nested sets of rules, each with at most `max_rules`; each set is refitted with a
light L2 penalty in every fold of a stratified k-fold split — the WoE of the bands, the caps and
the variants learned again from that fold's training part, so the held-out part is never seen —
and the set and half-life with the best mean held-out AUC win. The winner's held-out scores in
integer points are kept: with undated outcomes they are the model's validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.learn.design import (
    Design,
    design_of,
    layout_of,
    logistic,
    points_score,
    rule_points,
)
from leadscore.learn.features import FeatureSet
from leadscore.learn.metrics import auc

C_PATH = tuple(float(c) for c in np.logspace(-3.5, 1, 24))
REFIT_C = (0.03, 0.3, 3.0)      # the L2 penalty of the refit, chosen with the rules


@dataclass
class Selection:
    """The chosen half-life and rules, and what cross-validation said about every choice."""

    half_life: float | None
    support: list[int]                     # column indices of the kept rules
    c: float                               # the refit's L2 penalty
    cv_auc: float                          # mean held-out AUC of the chosen set (unrounded)
    oof_points: np.ndarray                 # held-out score of each lead, integer points
    folds: int
    tried: list[dict[str, Any]]            # half_life_days, rules, cv_auc


def select(fs: FeatureSet, y: np.ndarray, *, half_lives: tuple[float | None, ...],
           max_rules: int, folds: int, seed: int, scale: float) -> Selection:
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    everyone = np.ones(n, dtype=bool)
    k = int(max(2, min(folds, y.sum(), n - y.sum())))
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y))
    tried: list[dict[str, Any]] = []
    best: tuple[float, float | None, list[int], float] | None = None
    for h in half_lives if fs.sources else half_lives[:1]:
        design = design_of(fs, layout_of(fs, h, y, everyone))
        per_fold = []
        for train, _ in splits:
            mask = np.zeros(n, dtype=bool)
            mask[train] = True
            per_fold.append(design_of(fs, layout_of(fs, h, y[mask], mask)))
        for support in supports(design, y, max_rules):
            for c in REFIT_C:
                aucs = []
                for (train, test), fold in zip(splits, per_fold, strict=True):
                    coef, _ = logistic(fold.x[train][:, support], y[train], c)
                    aucs.append(auc(fold.x[test][:, support] @ coef, y[test]))
                mean = float(np.nanmean(aucs))
                tried.append({"half_life_days": h, "rules": len(support), "C": c,
                              "cv_auc": mean})
                if best is None or mean > best[0] + 1e-9:
                    best = (mean, h, support, c)
    assert best is not None
    cv_auc, h_best, support, c_best = best
    oof = np.zeros(n)
    for train, test in splits:
        mask = np.zeros(n, dtype=bool)
        mask[train] = True
        fold = design_of(fs, layout_of(fs, h_best, y[mask], mask))
        coef = np.zeros(len(fold.columns))
        coef[support], _ = logistic(fold.x[train][:, support], y[train], c_best)
        oof[test] = points_score(fs, fold, rule_points(fold, coef, scale))[test]
    return Selection(h_best, support, c_best, cv_auc, oof, k, tried)


def supports(design: Design, y: np.ndarray, max_rules: int) -> list[list[int]]:
    """The distinct sets of columns along the L1 path with 1 to `max_rules` members."""
    x = design.x
    if x.shape[1] == 0:
        return []
    seen: list[list[int]] = []
    for c in C_PATH:
        coef, _ = logistic(x, y, c, penalty="l1")
        support = [int(j) for j in np.flatnonzero(np.abs(coef) > 1e-10)]
        if support and len(support) <= max_rules and support not in seen:
            seen.append(support)
    if not seen:      # even the strongest penalty keeps too many: the largest coefficients
        coef, _ = logistic(x, y, C_PATH[0], penalty="l1")
        weight = np.abs(coef) * x.std(axis=0)
        seen.append(sorted(int(j) for j in np.argsort(-weight)[:max_rules]))
    return seen


def final_fit(design: Design, y: np.ndarray, chosen: Selection) -> tuple[np.ndarray, float]:
    """Coefficients of the kept columns on every training lead (0 for the others)."""
    coef = np.zeros(len(design.columns))
    coef[chosen.support], intercept = logistic(design.x[:, chosen.support], y, chosen.c)
    return coef, intercept
