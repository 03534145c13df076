"""Metric code against hand-computed values on tiny examples, and the bootstrap's properties."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics import (
    bootstrap_indices,
    confusion,
    expected_calibration_error,
    f1_avg,
    headline_flat,
    headline_scores,
    macro_f1,
    per_class,
    percentile_ci,
    reliability_bins,
    resampled_headline,
    sentiment_scores,
)

STANCE = ["favor", "against", "none"]
POLAR = ["favor", "against"]
SENT = ["negative", "neutral", "positive"]

# Six items, one stance target.
#   item:  0      1      2        3      4     5
#   gold:  favor  favor  against  none   none  against
#   pred:  favor  none   against  favor  none  none
STANCE_GOLD = ["favor", "favor", "against", "none", "none", "against"]
STANCE_PRED = ["favor", "none", "against", "favor", "none", "none"]


def test_stance_per_class_f1avg_and_macro_f1_match_hand_computation():
    # favor:   TP = 1 (item 0), FP = 1 (item 3), FN = 1 (item 1)  -> P = 1/2, R = 1/2, F1 = 1/2
    # against: TP = 1 (item 2), FP = 0,          FN = 1 (item 5)  -> P = 1,   R = 1/2, F1 = 2*1*(1/2)/(3/2) = 2/3
    # none:    TP = 1 (item 4), FP = 2 (items 1, 5), FN = 1 (item 3)
    #                                                         -> P = 1/3, R = 1/2, F1 = 2*(1/6)/(5/6) = 2/5
    # F1avg    = (1/2 + 2/3) / 2       = 7/12  (only the polar classes)
    # macro-F1 = (1/2 + 2/3 + 2/5) / 3 = 47/90 (all three classes)
    pc = per_class(STANCE_GOLD, STANCE_PRED, STANCE)
    assert pc["favor"]["precision"] == pytest.approx(1 / 2)
    assert pc["favor"]["recall"] == pytest.approx(1 / 2)
    assert pc["favor"]["f1"] == pytest.approx(1 / 2)
    assert pc["against"]["precision"] == pytest.approx(1.0)
    assert pc["against"]["recall"] == pytest.approx(1 / 2)
    assert pc["against"]["f1"] == pytest.approx(2 / 3)
    assert pc["none"]["precision"] == pytest.approx(1 / 3)
    assert pc["none"]["recall"] == pytest.approx(1 / 2)
    assert pc["none"]["f1"] == pytest.approx(2 / 5)
    assert [pc[c]["support"] for c in STANCE] == [2, 2, 2]
    assert f1_avg(STANCE_GOLD, STANCE_PRED, POLAR) == pytest.approx(7 / 12)
    assert macro_f1(STANCE_GOLD, STANCE_PRED, STANCE) == pytest.approx(47 / 90)
    # rows = gold, columns = predicted, in class order favor, against, none
    assert confusion(STANCE_GOLD, STANCE_PRED, STANCE) == [[1, 0, 1], [0, 1, 1], [1, 0, 1]]


def test_sentiment_accuracy_and_macro_f1_match_hand_computation():
    # gold: neg neg neu pos pos / pred: neg neu neu pos neg -> 3 of 5 right, accuracy 3/5
    # negative: TP 1, FP 1 (item 4), FN 1 (item 1) -> F1 1/2
    # neutral:  TP 1, FP 1 (item 1), FN 0          -> P 1/2, R 1, F1 2/3
    # positive: TP 1, FP 0, FN 1 (item 4)          -> P 1, R 1/2, F1 2/3
    # macro-F1 = (1/2 + 2/3 + 2/3) / 3 = 11/18
    gold = ["negative", "negative", "neutral", "positive", "positive"]
    pred = ["negative", "neutral", "neutral", "positive", "negative"]
    s = sentiment_scores(gold, pred, SENT)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["macro_f1"] == pytest.approx(11 / 18)
    assert s["per_class"]["neutral"]["precision"] == pytest.approx(1 / 2)
    assert s["per_class"]["positive"]["recall"] == pytest.approx(1 / 2)


def test_f1avg_is_zero_for_a_polar_class_absent_from_gold_and_predictions():
    # favor never occurs: its F1 is 0 (zero_division=0), so F1avg = (0 + F1 against) / 2.
    # against: TP 1, FP 0, FN 1 -> F1 2/3 -> F1avg 1/3
    assert f1_avg(["against", "against", "none"], ["against", "none", "none"], POLAR) == pytest.approx(1 / 3)


def test_ece_matches_hand_computation():
    # confidence 0.92 0.98 | 0.85 0.81 | 0.62 | 0.35 ; correct 1 1 | 0 1 | 1 | 0
    # bin [0.9, 1.0]: mean conf 0.95, accuracy 1.0 -> |1.0 - 0.95| = 0.05, weight 2/6
    # bin [0.8, 0.9): mean conf 0.83, accuracy 0.5 -> |0.5 - 0.83| = 0.33, weight 2/6
    # bin [0.6, 0.7): conf 0.62, accuracy 1        -> 0.38, weight 1/6
    # bin [0.3, 0.4): conf 0.35, accuracy 0        -> 0.35, weight 1/6
    # ECE = (2*0.05 + 2*0.33 + 0.38 + 0.35) / 6 = 1.49 / 6
    conf = [0.92, 0.98, 0.85, 0.81, 0.62, 0.35]
    correct = [True, True, False, True, True, False]
    assert expected_calibration_error(conf, correct, 10) == pytest.approx(1.49 / 6)
    bins = reliability_bins(conf, correct, 10)
    assert [b["count"] for b in bins] == [0, 0, 0, 1, 0, 0, 1, 0, 2, 2]
    assert bins[8]["confidence"] == pytest.approx(0.83)
    assert bins[8]["accuracy"] == pytest.approx(0.5)


def test_ece_puts_confidence_one_in_the_last_bin_and_is_zero_when_calibrated():
    assert reliability_bins([1.0], [True], 10)[-1]["count"] == 1
    # 4 items at confidence 0.75, 3 right: accuracy 0.75 = confidence -> ECE 0
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)


def _random_labels(n: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    gold = {"sentiment": list(rng.choice(SENT, n)), "a": list(rng.choice(STANCE, n, p=[0.2, 0.2, 0.6])),
            "b": list(rng.choice(STANCE, n, p=[0.1, 0.3, 0.6]))}
    pred = {f: [g if rng.random() < 0.7 else rng.choice(STANCE if f != "sentiment" else SENT) for g in v]
            for f, v in gold.items()}
    return gold, pred


def test_vectorised_resampled_scores_equal_the_sklearn_headline_scores():
    gold, pred = _random_labels(80, 1)
    point = headline_flat(headline_scores(gold, pred, SENT, STANCE, ["a", "b"], POLAR), ["a", "b"])
    idx = bootstrap_indices(80, 5, seed=3)
    fast = resampled_headline(gold, pred, SENT, STANCE, ["a", "b"], POLAR, np.arange(80)[None, :])
    assert set(fast) == set(point)
    for k, v in point.items():
        assert fast[k][0] == pytest.approx(v), k
    # and on a resample: the same as scoring the resampled lists with the sklearn-based code
    sub = {f: [v[i] for i in idx[2]] for f, v in gold.items()}
    sub_pred = {f: [v[i] for i in idx[2]] for f, v in pred.items()}
    expected = headline_flat(headline_scores(sub, sub_pred, SENT, STANCE, ["a", "b"], POLAR), ["a", "b"])
    fast = resampled_headline(gold, pred, SENT, STANCE, ["a", "b"], POLAR, idx)
    for k, v in expected.items():
        assert fast[k][2] == pytest.approx(v), k


def test_bootstrap_ci_contains_the_point_estimate_and_is_deterministic_for_a_seed():
    gold, pred = _random_labels(60, 2)
    point = headline_flat(headline_scores(gold, pred, SENT, STANCE, ["a", "b"], POLAR), ["a", "b"])

    def cis(seed: int) -> dict:
        samples = resampled_headline(gold, pred, SENT, STANCE, ["a", "b"], POLAR, bootstrap_indices(60, 1000, seed))
        return {k: percentile_ci(v) for k, v in samples.items()}

    first, again, other = cis(11), cis(11), cis(12)
    for k, v in point.items():
        lo, hi = first[k]
        assert lo <= v <= hi, (k, lo, v, hi)
        assert lo < hi
    assert first == again
    assert first != other
