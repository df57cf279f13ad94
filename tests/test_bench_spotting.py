"""The spotting benchmark's statistics: per-subject counts and the subject bootstrap of ME F1."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mecg.model.evaluate import Interval, evaluate

_spec = importlib.util.spec_from_file_location(
    "bench_spotting", Path(__file__).parent.parent / "benchmarks" / "spotting.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_f1_from_counts_matches_the_evaluator() -> None:
    for tp, fp, fn in [(3, 2, 5), (0, 4, 1), (0, 0, 0), (7, 0, 0)]:
        from mecg.model.evaluate import Counts

        assert bench.f1_from_counts(tp, fp, fn) == pytest.approx(Counts(tp, fp, fn).f1)


def test_subject_counts_add_up_to_the_pooled_evaluation() -> None:
    truth = [Interval("a1", 10, 20, "ME"), Interval("a2", 50, 60, "ME"), Interval("b1", 10, 20, "ME")]
    preds = [
        Interval("a1", 11, 21, "ME"),  # hit
        Interval("a1", 100, 110, "ME"),  # false positive
        Interval("b1", 40, 45, "ME"),  # miss + false positive
        Interval("b1", 12, 19, "MaE"),  # another type: not counted as ME
    ]
    counts = bench.subject_counts(preds, truth, {"a1": "A", "a2": "A", "b1": "B"})
    assert counts == {"A": [1, 1, 1], "B": [0, 1, 1]}
    me = evaluate(preds, truth)["me"]
    assert np.sum(list(counts.values()), axis=0).tolist() == [me.tp, me.fp, me.fn]
    assert bench.pooled(counts)["f1"] == round(me.f1, 4)


def test_bootstrap_interval_is_seeded_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(0)
    strata = [rng.integers(0, 6, (6, 3)) for _ in range(3)]
    a = bench.bootstrap_f1(strata, n_boot=500, seed=3)
    assert a == bench.bootstrap_f1(strata, n_boot=500, seed=3)
    total = np.sum([s.sum(axis=0) for s in strata], axis=0)
    assert a["estimate"] == pytest.approx(float(bench.f1_from_counts(*total)), abs=1e-4)
    assert a["ci"][0] <= a["estimate"] <= a["ci"][1]
    assert a["ci"][0] < a["ci"][1]  # subjects differ, so resampling them moves F1
    assert a["subjects"] == 18


def test_identical_subjects_give_no_spread_and_a_variant_minus_itself_is_zero() -> None:
    same = [np.array([[2, 1, 1]] * 5)]
    assert bench.bootstrap_f1(same, n_boot=200)["ci"] == [pytest.approx(0.6667, abs=1e-4)] * 2
    strata = [np.array([[1, 3, 2], [0, 2, 1], [3, 1, 0]])]
    d = bench.bootstrap_f1(strata, strata, n_boot=200)
    assert d["estimate"] == 0 and d["ci"] == [0, 0] and d["share_le_0"] == 1.0


def test_paired_difference_supports_a_real_gain_and_not_noise() -> None:
    """Every subject better under A: the CI lies above 0; a gain on one subject of 8: the CI covers 0."""
    better = [np.array([[3, 1, 1]] * 4), np.array([[2, 1, 2]] * 4)]
    worse = [np.array([[1, 3, 3]] * 4), np.array([[0, 2, 4]] * 4)]
    d = bench.bootstrap_f1(better, worse, n_boot=1000, seed=0)
    assert d["ci"][0] > 0 and d["share_le_0"] == 0.0
    assert bench._verdict(d["ci"]).startswith("gain")
    base = np.array([[1, 2, 2]] * 8)
    lucky = base.copy()
    lucky[0] = [3, 0, 0]
    noisy = bench.bootstrap_f1([lucky], [base], n_boot=1000, seed=0)
    assert noisy["estimate"] > 0
    assert noisy["ci"][0] <= 0 < noisy["ci"][1]
    assert bench._verdict(noisy["ci"]).startswith("not supported")


def test_paired_bootstrap_refuses_different_subjects() -> None:
    with pytest.raises(ValueError, match="same subjects"):
        bench.bootstrap_f1([np.zeros((3, 3))], [np.zeros((4, 3))])
