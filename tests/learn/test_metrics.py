from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leadscore.learn.metrics import auc, bootstrap, capture, gains_table


def test_auc_agrees_with_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(2000) < 0.1
    score = np.round(rng.normal(size=2000) + y, 1)          # many ties
    assert auc(score, y) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_perfect_constant_and_reversed_scores() -> None:
    y = np.array([0, 0, 0, 1, 1])
    assert auc(np.array([1, 2, 3, 4, 5]), y) == 1.0
    assert auc(np.zeros(5), y) == 0.5
    assert auc(-np.arange(5), y) == 0.0


def test_capture_cuts_ties_pro_rata() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert capture(np.zeros(10), y, 0.2) == pytest.approx(0.2)
    assert capture(np.arange(10)[::-1], y, 0.1) == pytest.approx(0.5)
    assert capture(np.arange(10)[::-1], y, 0.3) == pytest.approx(1.0)


def test_gains_table_adds_up() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(1000) < 0.2).astype(float)
    table = gains_table(rng.random(1000) + y, y)
    assert table["conversions"].sum() == pytest.approx(y.sum())
    assert table["gain"].iloc[-1] == pytest.approx(1.0)
    assert table["lift"].iloc[0] > 1.5


def test_bootstrap_intervals_cover_the_estimate_and_pair_differences() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.1).astype(float)
    good = rng.normal(size=3000) + 1.5 * y
    each, diffs = bootstrap([good, good.copy()], y, replicates=50)
    iv = each[0]["auc"]
    assert iv.low < iv.estimate < iv.high
    same = diffs[0]["auc"]
    assert same.estimate == 0 and same.low == 0 and same.high == 0   # paired: identical
