"""benchmarks/bench_classify_final.py's outer fold: `classify` trained on the other folds alone, and
the three predictors it compares made from the networks it says they are made of."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_classify_final import outer_fold  # noqa: E402
from rnnkit.data.labelled import read_series_npz  # noqa: E402
from rnnkit.tasks.cross_validation import stratified_folds  # noqa: E402


def series(n=30, seed=0):
    rng = np.random.default_rng(seed)
    labels = [("up", "down")[i % 2] for i in range(n)]
    items = [((1 if y == "up" else -1) * np.arange(T := int(rng.integers(5, 12))) / T
              + 0.3 * rng.standard_normal(T)).astype(np.float32)[:, None] for y in labels]
    return items, labels


@pytest.mark.parametrize("shared", [False, True])
def test_an_outer_fold_trains_on_the_other_folds_and_averages_the_networks_it_names(tmp_path, shared):
    items, labels = series()
    held = stratified_folds(labels, 5, 1000)[0]
    r = outer_fold("updown", items, labels, held, steps=20, seed=0, work=tmp_path, shared=shared, hidden=8, batch_size=8)
    trained, trained_labels = read_series_npz(tmp_path / "train.npz")
    kept = np.setdiff1d(np.arange(len(items)), held)
    assert len(trained) == len(kept) and trained_labels == [labels[i] for i in kept]  # never a held-out series
    for got, i in zip(trained, kept):
        np.testing.assert_array_equal(got, items[i])
    assert [("down", "up")[k] for k in r["truth"]] == [labels[i] for i in held]
    assert len(r["each fold"]) == 5 and r["steps"] == 20
    np.testing.assert_allclose(r["folds"], np.mean(r["each fold"], axis=0), rtol=1e-6)
    np.testing.assert_allclose(r["both"], np.mean(r["each fold"] + [r["refit"]], axis=0), rtol=1e-6)
    assert not np.allclose(r["refit"], r["folds"])  # the refit is a network of its own
