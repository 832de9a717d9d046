"""The design matrix a scorecard is fitted on: one column per candidate rule.

- A trait is one column: the weight of evidence (WoE) of the lead's band, smoothed towards the
  overall rate (`PRIOR_LEADS` pseudo-leads), 0 for a lead in no band. One coefficient per trait
  times each band's WoE gives the band's log-odds, so the points keep the binning's trend and
  a trait is selected or dropped whole.
- An engagement source is one column: the variant (`once`, `daily`, every event) that carries
  the most weight in a model given all of them; the every-event count capped at its 99th
  percentile among the leads that have one (the rule's `cap`).

The same `Layout` (variants, WoE per band, caps) applied to other leads gives their columns: the
test leads, or the held-out fold of a cross-validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.learn.features import VARIANTS, Candidate, FeatureSet
from leadscore.learn.traits import Trait

PRIOR_LEADS = 50.0


@dataclass
class Layout:
    """How a feature set becomes columns: fixed on training leads, applied to any leads."""

    half_life: float | None
    variants: list[int]                    # per source: index into VARIANTS
    woes: list[np.ndarray]                 # per trait: WoE per band
    caps: list[float | None]               # per source: cap of the every-event count


@dataclass
class Design:
    """A feature matrix and what each column is (traits first, then sources)."""

    x: np.ndarray
    columns: list[Trait | Candidate]
    layout: Layout

    @property
    def traits(self) -> int:
        return len(self.layout.woes)


def woe(bands: np.ndarray, y: np.ndarray, count: int) -> np.ndarray:
    """Smoothed weight of evidence of each of `count` bands (band index -1: no band)."""
    p0 = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if len(y) else 0.5
    out = np.zeros(count)
    for b in range(count):
        inside = bands == b
        rate = (y[inside].sum() + PRIOR_LEADS * p0) / (inside.sum() + PRIOR_LEADS)
        rate = float(np.clip(rate, 1e-6, 1 - 1e-6))
        out[b] = np.log(rate / (1 - rate)) - np.log(p0 / (1 - p0))
    return out


def layout_of(fs: FeatureSet, h: float | None, y: np.ndarray, rows: np.ndarray) -> Layout:
    """The layout learned from the leads `rows` (a boolean mask) of `fs`."""
    woes = [woe(fs.bands[rows, j], y, len(t.bands)) for j, t in enumerate(fs.traits)]
    block = fs.engagement_x[h].astype(np.float64)
    every = VARIANTS.index("every")
    caps: list[float | None] = []
    for s in range(len(fs.sources)):
        nonzero = block[rows, s, every]
        nonzero = nonzero[nonzero > 0]
        caps.append(float(np.quantile(nonzero, 0.99)) if len(nonzero) else None)
    variants = [0] * len(fs.sources)
    if len(fs.sources) and 0 < y.sum() < len(y):
        flat = _capped(block, caps).reshape(len(block), -1)[rows]
        fit_part = _trait_columns(fs, woes)[rows]
        full = np.hstack([fit_part, flat])
        coef = l2_coefficients(full, y, 0.1)
        weight = np.abs(coef[len(woes):] * flat.std(axis=0)).reshape(
            len(fs.sources), len(VARIANTS))
        variants = [int(np.argmax(w)) for w in weight]
    return Layout(h, variants, woes, caps)


def design_of(fs: FeatureSet, layout: Layout) -> Design:
    """The columns of every lead of `fs` under `layout`."""
    block = _capped(fs.engagement_x[layout.half_life].astype(np.float64), layout.caps)
    parts = [_trait_columns(fs, layout.woes)]
    columns: list[Trait | Candidate] = list(fs.traits)
    for s, source in enumerate(fs.sources):
        variant = VARIANTS[layout.variants[s]]
        columns.append(Candidate(source.name, "engagement", source.name, match=source.match,
                                 limit=None if variant == "every" else variant))
        parts.append(block[:, s, layout.variants[s]][:, None])
    x = np.hstack(parts) if parts else np.zeros((len(fs.lead_ids), 0))
    return Design(x, columns, layout)


def _capped(block: np.ndarray, caps: list[float | None]) -> np.ndarray:
    every = VARIANTS.index("every")
    out = block.copy()
    for s, cap in enumerate(caps):
        if cap is not None:
            out[:, s, every] = np.minimum(out[:, s, every], cap)
    return out


def _trait_columns(fs: FeatureSet, woes: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(fs.lead_ids), len(woes)))
    for j, values in enumerate(woes):
        index = fs.bands[:, j].astype(np.int64)
        out[:, j] = np.where(index >= 0, values[np.maximum(index, 0)], 0.0)
    return out


def l2_coefficients(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    coef, _ = logistic(x, y, c)
    return coef


def logistic(x: np.ndarray, y: np.ndarray, c: float, *, penalty: str = "l2"
             ) -> tuple[np.ndarray, float]:
    """Penalised logistic regression on standardised columns; coefficients per raw unit."""
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    mean = x.mean(axis=0)
    fitted = _classifier(c, penalty).fit((x - mean) / sd, y)
    coef = fitted.coef_[0] / sd
    intercept = float(fitted.intercept_[0] - (coef * mean).sum())
    return coef, intercept


def _classifier(c: float, penalty: str) -> Any:
    import sklearn
    from sklearn.linear_model import LogisticRegression

    if penalty == "l2":
        return LogisticRegression(C=c, max_iter=1000)
    # scikit-learn 1.8 replaced `penalty` by `l1_ratio`
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8):
        return LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=1000)
    return LogisticRegression(C=c, penalty="l1", solver="liblinear", max_iter=1000)


def rule_points(design: Design, coef: np.ndarray, scale: float) -> list[np.ndarray]:
    """Integer points per column: per band for a trait (coefficient × WoE), one number for a
    source; `scale` turns log-odds into points (pdo / ln 2)."""
    out: list[np.ndarray] = []
    for j in range(len(design.columns)):
        if j < design.traits:
            out.append(np.round(coef[j] * design.layout.woes[j] * scale))
        else:
            out.append(np.round(np.array([coef[j] * scale])))
    return out


def points_score(fs: FeatureSet, design: Design, points: list[np.ndarray]) -> np.ndarray:
    """Each lead's score under integer `points`: what the engine adds up."""
    score = np.zeros(len(fs.lead_ids))
    for j in range(design.traits):
        index = fs.bands[:, j].astype(np.int64)
        score += np.where(index >= 0, points[j][np.maximum(index, 0)], 0.0)
    for j in range(design.traits, len(design.columns)):
        score += design.x[:, j] * points[j][0]
    return score
