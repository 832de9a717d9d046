"""Which rules a learned model keeps, chosen by cross-validation on the training leads.

First the half-life: every candidate column in one lightly penalised (L2) logistic regression,
scored by the mean held-out AUC of a stratified k-fold split — the WoE of the bands, the caps
and the variants learned again from each fold's training part, so the held-out part is never
seen. Then, for that half-life, the L1 (lasso) path gives nested sets of rules with at most
`max_rules` each; each set is refitted with an L2 penalty (three strengths) in the same folds,
and the set with the best mean held-out AUC wins. With `free_bands` (off by default: on the
benchmark of issue #17 it lost 0.015 AUC on Default, see benchmarks/RESULTS.md), the same
folds then decide the form of the kept traits' points: one coefficient per trait times its
bands' WoE (the binning's trend kept), or each band its own coefficient (`free_form`) — the
free form only where its mean held-out AUC is higher and every monotonic trait stays
monotonic. The winner's held-out scores in integer points are kept: with undated outcomes
they are the model's validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.learn.design import (
    Design,
    Layout,
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
# Sets of rules within this much mean held-out AUC of the best count as ties; the largest wins.
TIE = 0.0


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
    free: bool = False                     # each kept trait's band its own coefficient
    cv_auc_woe: float = float("nan")       # the mean held-out AUC of the one-per-trait form


def select(fs: FeatureSet, y: np.ndarray, *, half_lives: tuple[float | None, ...],
           max_rules: int, folds: int, seed: int, scale: float, free_bands: bool = False
           ) -> Selection:
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    everyone = np.ones(n, dtype=bool)
    k = int(max(2, min(folds, y.sum(), n - y.sum())))
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y))
    masks = []
    for train, _ in splits:
        mask = np.zeros(n, dtype=bool)
        mask[train] = True
        masks.append(mask)
    tried: list[dict[str, Any]] = []
    # The half-life first, by every rule in one L2 model (cheap); then the rules for it.
    candidates = half_lives if fs.sources else half_lives[:1]
    layouts: dict[float | None, list[Design]] = {}
    by_h: list[tuple[float, float | None]] = []
    for h in candidates:
        layouts[h] = [design_of(fs, layout_of(fs, h, y[mask], mask)) for mask in masks]
        if len(candidates) > 1:
            everything = list(range(len(layouts[h][0].columns)))
            mean = _cv_auc(layouts[h], splits, y, everything, REFIT_C[1])
            tried.append({"half_life_days": h, "rules": len(everything), "C": REFIT_C[1],
                          "cv_auc": mean})
            by_h.append((mean, h))
    h = max(by_h, key=lambda pair: pair[0])[1] if by_h else candidates[0]
    design = design_of(fs, layout_of(fs, h, y, everyone))
    scored: list[tuple[float, float | None, list[int], float]] = []
    for support in supports(design, y, max_rules):
        for c in REFIT_C:
            mean = _cv_auc(layouts[h], splits, y, support, c)
            tried.append({"half_life_days": h, "rules": len(support), "C": c, "cv_auc": mean})
            scored.append((mean, h, support, c))
    top = max(m for m, *_ in scored) if scored else float("nan")
    ties = [s for s in scored if s[0] >= top - TIE]
    best = max(ties, key=lambda s: (len(s[2]), s[0])) if ties else None
    assert best is not None
    cv_auc, h_best, support, c_best = best
    free, c_free, free_auc = False, c_best, float("nan")
    if free_bands and any(j < design.traits for j in support):
        by_c = [(float(np.nanmean([
            auc(d.x[test] @ coef, y[test]) for (train, test), mask, fold in zip(
                splits, masks, layouts[h_best], strict=True)
            for d, coef, _ in [free_form(fs, fold, y, mask, support, c)]])), c)
            for c in REFIT_C]
        free_auc, c_free = max(by_c)
        tried += [{"half_life_days": h_best, "rules": len(support), "C": c, "cv_auc": m,
                   "form": "free bands"} for m, c in by_c]
        free = free_auc > cv_auc and keeps_trends(
            fs, free_form(fs, design, y, everyone, support, c_free)[0], support)
    oof = np.zeros(n)
    for (train, test), mask, fold in zip(splits, masks, layouts[h_best], strict=True):
        if free:
            fold, coef, _ = free_form(fs, fold, y, mask, support, c_free)
        else:
            coef = np.zeros(len(fold.columns))
            coef[support], _ = logistic(fold.x[train][:, support], y[train], c_best)
        oof[test] = points_score(fs, fold, rule_points(fold, coef, scale))[test]
    if free:
        return Selection(h_best, support, c_free, free_auc, oof, k, tried, True, cv_auc)
    return Selection(h_best, support, c_best, cv_auc, oof, k, tried, False, cv_auc)


def keeps_trends(fs: FeatureSet, design: Design, support: list[int]) -> bool:
    """True when every kept trait binned with a rising (falling) conversion rate has rising
    (falling) log-odds over its bands in `design`: a free fit must not make a marketer's
    ordered bands zigzag."""
    for j in support:
        if j >= design.traits:
            continue
        trait = fs.traits[j]
        ordered = [b for b, band in enumerate(trait.bands) if "exists" not in band.condition]
        steps = np.diff(design.layout.woes[j][ordered])
        if "conversion rising" in trait.how and np.any(steps < 0):
            return False
        if "conversion falling" in trait.how and np.any(steps > 0):
            return False
    return True


def free_form(fs: FeatureSet, design: Design, y: np.ndarray, rows: np.ndarray,
              support: list[int], c: float) -> tuple[Design, np.ndarray, float]:
    """The kept columns refitted on `rows` with each kept trait's band its own coefficient
    (L2): a design whose WoE per band is that band's fitted log-odds (coefficient 1), the
    kept sources' coefficients as fitted, and the intercept."""
    traits = [j for j in support if j < design.traits]
    sources = [j for j in support if j >= design.traits]
    woes = list(design.layout.woes)
    blocks = [(fs.bands[:, j][:, None] == np.arange(len(woes[j]))[None, :]).astype(float)
              for j in traits]
    x = np.hstack([*blocks, design.x[:, sources]])
    fitted, intercept = logistic(x[rows], y[rows], c)
    coef = np.zeros(len(design.columns))
    at = 0
    for j in traits:
        woes[j] = fitted[at:at + len(woes[j])]
        coef[j] = 1.0
        at += len(woes[j])
    coef[sources] = fitted[at:]
    layout = design.layout
    return (design_of(fs, Layout(layout.half_life, layout.variants, woes, layout.caps)),
            coef, intercept)


def _cv_auc(folds: list[Design], splits: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
            support: list[int], c: float) -> float:
    """Mean held-out AUC of a refit on `support`, each fold with its own layout."""
    aucs = []
    for (train, test), fold in zip(splits, folds, strict=True):
        coef, _ = logistic(fold.x[train][:, support], y[train], c)
        aucs.append(auc(fold.x[test][:, support] @ coef, y[test]))
    return float(np.nanmean(aucs))


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


def final_fit(fs: FeatureSet, design: Design, y: np.ndarray, chosen: Selection
              ) -> tuple[Design, np.ndarray, float]:
    """The design (in the free form: the bands' own log-odds as their WoE) and coefficients
    of the kept columns on every training lead (0 for the others), and the intercept."""
    if chosen.free:
        return free_form(fs, design, y, np.ones(len(y), dtype=bool), chosen.support, chosen.c)
    coef = np.zeros(len(design.columns))
    coef[chosen.support], intercept = logistic(design.x[:, chosen.support], y, chosen.c)
    return design, coef, intercept
