"""The forecast task's interval calibration (split conformal) on ratios the tests draw themselves:
|y − μ| / half-width, the factor each interval needs."""

import numpy as np
import pytest

from rnnkit.tasks.forecast import NARROW, WIDEN_LIMIT, conformal_quantile, interval_factor, interval_ratios


def half_normal(rng, n, scale=1.0):
    return np.abs(scale * rng.standard_normal(n))


def test_split_conformal_on_exchangeable_ratios_covers_80_percent_of_new_ones():
    rng = np.random.default_rng(0)
    coverage = [np.mean(half_normal(rng, 2000) <= conformal_quantile(half_normal(rng, 200))) for _ in range(200)]
    # the guarantee: at least 80% on average, and at most 80% + 1/(n + 1) with continuous scores
    assert 0.8 <= np.mean(coverage) <= 0.8 + 1 / 201 + 0.005


def test_the_conformal_rank_is_ceil_of_level_times_n_plus_one():
    ratios = np.arange(1.0, 11.0)  # n = 10: ⌈0.8·11⌉ = 9
    assert conformal_quantile(ratios[::-1]) == 9.0
    assert conformal_quantile(ratios[:3]) == 3.0  # ⌈0.8·4⌉ = 4 > n: the largest, none certain to do
    assert conformal_quantile(np.array([1e9])) == WIDEN_LIMIT and conformal_quantile(np.array([0.0])) == 1 / WIDEN_LIMIT


def test_interval_factor_narrows_or_only_widens():
    y, mean, half = np.array([0.1, -0.2, 0.3, 0.05]), np.zeros(4), np.ones(4)
    np.testing.assert_allclose(interval_ratios(y, mean, half), [0.1, 0.2, 0.3, 0.05])
    assert interval_factor(y, mean, half, narrow=True) == pytest.approx(0.3)
    assert interval_factor(y, mean, half, narrow=False) == 1.0
    assert not NARROW and interval_factor(y, mean, half) == 1.0  # the task's rule: only widen
    assert interval_factor(10 * y, mean, half) == pytest.approx(3.0)  # it widens
