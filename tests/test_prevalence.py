"""Label shares corrected for classifier error (pipeline.evaluation.prevalence): known answers."""
from __future__ import annotations

import numpy as np
import pytest
from quapy.method.aggregative import ACC, PACC

from pipeline.evaluation.prevalence import (
    ErrorTable,
    abstains,
    adjust,
    cluster_weights,
    error_tables,
    estimate_shares,
    estimate_stratified,
    misclassification_rates,
    rates_by_stratum,
    table_rates,
)

CLASSES = ["favor", "against", "none"]
# M[i, j] = P(predicted i | true j): this classifier over-predicts favor, mostly from true none items
M = np.array([[0.8, 0.1, 0.2],
              [0.1, 0.7, 0.1],
              [0.1, 0.2, 0.7]])


def crisp_items(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Items whose predictions follow M exactly: of the counts[j] items of true class j, M[i, j] * counts[j]
    are predicted i (one-hot probabilities)."""
    true, pred = [], []
    for j, n in enumerate(counts):
        for i in range(3):
            m = round(M[i, j] * n)
            true += [j] * m
            pred += [i] * m
    return np.array(true), np.eye(3)[pred]


def test_acc_recovers_the_true_shares_from_a_known_confusion_matrix() -> None:
    true_t, probs_t = crisp_items([100, 100, 100])
    table = ErrorTable(CLASSES, true_t, probs_t, np.arange(len(true_t)) // 3)
    assert np.allclose(misclassification_rates(table, "acc"), M)
    shares = np.array([0.2, 0.3, 0.5])
    _, probs = crisp_items([200, 300, 500])  # predictions of a set with these true shares
    threads = np.arange(len(probs)) // 10
    est = estimate_shares(probs, threads, table_rates(table, "acc", 500, np.random.default_rng(1)), 500,
                          np.random.default_rng(2))
    assert np.allclose(est.share_raw, M @ shares)  # classify and count: inflated favor (0.29 for 0.20)
    assert est.share_raw[0] == pytest.approx(0.29)
    assert np.allclose(est.share, shares)
    assert np.all(est.ci[0] <= shares) and np.all(shares <= est.ci[1])
    assert not (est.raw_ci[0, 0] <= shares[0] <= est.raw_ci[1, 0])  # the raw interval misses the true favor share


def test_stratified_correction_uses_each_kinds_rates_and_combines_by_item_counts() -> None:
    # comments are misread as M says; paragraphs perfectly: one pooled table would under-correct comments
    true_c, probs_c = crisp_items([100, 100, 100])
    true_o = np.repeat([0, 1, 2], 100)
    table = ErrorTable(CLASSES, np.concatenate([true_c, true_o]), np.vstack([probs_c, np.eye(3)[true_o]]),
                       np.arange(600) // 3, np.array(["comment"] * 300 + ["other"] * 300))
    draws = np.random.default_rng(1)
    rates = {name: table_rates(table.subset(table.strata == name), "acc", 300, draws) for name in ("comment", "other")}
    comment_shares, paragraph_shares = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    _, probs_comments = crisp_items([200, 300, 500])
    probs_paragraphs = np.eye(3)[np.repeat([0, 1, 2], [300, 50, 150])]
    probs = np.vstack([probs_comments, probs_paragraphs])
    strata = np.array(["comment"] * 1000 + ["other"] * 500)
    threads = np.arange(1500) // 10
    est = estimate_stratified(probs, threads, strata, rates, 300, np.random.default_rng(2))
    truth = (1000 * comment_shares + 500 * paragraph_shares) / 1500
    assert np.allclose(est.share, truth)
    assert np.all(est.ci[0] <= truth + 1e-9) and np.all(truth <= est.ci[1] + 1e-9)
    pooled = estimate_shares(probs, threads, table_rates(table, "acc", 300, np.random.default_rng(1)), 300,
                             np.random.default_rng(2))
    assert abs(pooled.share[0] - truth[0]) > 0.02  # pooled rates miss what the strata recover
    only_comments = estimate_stratified(probs_comments, threads[:1000], strata[:1000], rates, 300,
                                        np.random.default_rng(3))
    assert np.allclose(only_comments.share, comment_shares)


def test_a_class_rare_in_a_stratum_keeps_the_rates_pooled_over_all_kinds() -> None:
    # 30 comment items: 25 of class 0 (enough), 5 of class 1 (too few), 0 of class 2; 300 others
    true_c = np.array([0] * 25 + [1] * 5)
    probs_c = np.eye(3)[np.array([1] * 10 + [0] * 15 + [2] * 5)]  # class 0 often misread as 1; class 1 as 2
    true_o, probs_o = crisp_items([100, 100, 100])
    table = ErrorTable(CLASSES, np.concatenate([true_c, true_o]), np.vstack([probs_c, probs_o]), np.arange(330),
                       np.array(["comment"] * 30 + ["other"] * 300))
    weights = cluster_weights(table.groups, 50, np.random.default_rng(0))
    rates = rates_by_stratum(table, "acc", 50, np.random.default_rng(1), weights, min_per_class=20)
    pooled = table_rates(table, "acc", 50, np.random.default_rng(1), weights)
    assert np.allclose(rates["comment"].point[:, 0], [0.6, 0.4, 0.0])  # its own column: 25 items
    assert not np.allclose(pooled.point[:, 0], [0.6, 0.4, 0.0])
    assert np.allclose(rates["comment"].point[:, 1:], pooled.point[:, 1:])  # 5 and 0 items: the pooled columns
    assert np.allclose(rates["comment"].draws[:, :, 1:], pooled.draws[:, :, 1:])
    assert np.allclose(rates["other"].point, M)


def test_pacc_recovers_the_true_shares_from_known_mean_probabilities() -> None:
    rng = np.random.default_rng(0)
    true_t = np.repeat([0, 1, 2], 50)
    table = ErrorTable(CLASSES, true_t, M[:, true_t].T, rng.integers(0, 40, len(true_t)))  # class j: probs M[:, j]
    assert np.allclose(misclassification_rates(table, "pacc"), M)
    true_s = np.repeat([0, 1, 2], [40, 100, 60])
    est = estimate_shares(M[:, true_s].T, np.arange(len(true_s)) // 5, table_rates(table, "pacc", 200, rng), 200, rng)
    assert np.allclose(est.share, [0.2, 0.5, 0.3])
    assert np.all(est.ci[0] <= est.share + 1e-9) and np.all(est.share <= est.ci[1] + 1e-9)


def test_bootstrap_rates_with_unit_weights_equal_quapys_estimate() -> None:
    rng = np.random.default_rng(3)
    table = ErrorTable(CLASSES, rng.integers(0, 3, 400), rng.dirichlet(np.ones(3), 400), rng.integers(0, 90, 400))
    classes = np.arange(3)
    quapy_acc = ACC.getPteCondEstim(classes, table.true, table.probs.argmax(1))
    quapy_pacc = PACC.getPteCondEstim(classes, table.true, table.probs)
    assert np.allclose(misclassification_rates(table, "acc", np.ones((2, 400)))[1], quapy_acc)
    assert np.allclose(misclassification_rates(table, "pacc", np.ones((2, 400)))[1], quapy_pacc)


def test_a_class_missing_from_a_bootstrap_draw_gets_no_correction() -> None:
    table = ErrorTable(CLASSES, np.array([0, 0, 1, 2]), np.eye(3)[[0, 2, 1, 2]], np.arange(4))
    weights = np.array([[1.0, 1.0, 0.0, 1.0]])  # no true-against item drawn
    rates = misclassification_rates(table, "acc", weights)[0]
    assert np.allclose(rates[:, 1], [0, 1, 0])


def test_all_replicates_at_once_match_quapys_adjustment_one_by_one() -> None:
    rng = np.random.default_rng(4)
    rates = rng.dirichlet(np.ones(3), size=(30, 3)).transpose(0, 2, 1)
    q = rng.dirichlet(np.ones(3), 30)
    assert np.allclose(adjust(q, rates), [adjust(x, r) for x, r in zip(q, rates)])
    assert np.allclose(adjust(q, rates).sum(1), 1) and (adjust(q, rates) >= 0).all()


def test_cluster_bootstrap_draws_whole_threads_then_items_within_them() -> None:
    threads = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2)
    weights = cluster_weights(threads, 2000, np.random.default_rng(5))
    per_thread = np.stack([weights[:, threads == t].sum(1) for t in "abc"], 1)
    sizes = np.array([5, 3, 2])
    times_drawn = per_thread / sizes
    assert np.allclose(times_drawn, np.round(times_drawn))  # a drawn thread brings as many draws as it has items
    assert np.allclose(times_drawn.sum(1), 3)  # 3 threads drawn per replicate
    assert (times_drawn == 0).any(axis=0).all()  # every thread is left out of some replicates
    one = cluster_weights(["t"] * 6, 200, np.random.default_rng(6))
    assert np.allclose(one.sum(1), 6) and one.std(0).min() > 0  # a single thread still varies


def test_items_below_min_confidence_abstain() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    assert abstains(probs, 0.6).tolist() == [True, False, True]
    assert not abstains(probs, None).any() and not abstains(probs, 0).any()


def test_without_rates_only_the_raw_share_is_estimated() -> None:
    _, probs = crisp_items([10, 10, 10])
    est = estimate_shares(probs, np.zeros(len(probs)), None, 200, np.random.default_rng(7))
    assert est.share is None and est.ci is None
    assert est.n == len(probs) and est.n_clusters == 1
    assert np.all(est.raw_ci[0] <= est.share_raw) and np.all(est.share_raw <= est.raw_ci[1])


def test_error_tables_apply_the_models_decision_biases() -> None:
    oof = {"groups": [0, 1], "sentiment": {"classes": ["negative", "neutral", "positive"], "true": [0, 2],
                                           "probs": [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]},
           "stance": {"funding": {"classes": CLASSES, "true": [2, 0], "probs": [[0.3, 0.2, 0.5], [0.6, 0.2, 0.2]]}}}
    plain = error_tables(oof, {"targets": ["funding"]})
    assert np.allclose(plain["funding"].probs, oof["stance"]["funding"]["probs"])
    biased = error_tables(oof, {"targets": ["funding"], "decision_bias": {"sentiment": [0, 0, 0],
                                                                         "stance": [[0.0, 0.0, -2.0]]}})
    assert biased["funding"].probs[0].argmax() == 0  # the none offset moves item 0 from none to favor
    assert np.allclose(biased["sentiment"].probs, plain["sentiment"].probs)
