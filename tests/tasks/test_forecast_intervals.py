"""The forecast task's interval calibration (split conformal, adaptive conformal inference) on
ratios the tests draw themselves: |y − μ| / half-width, the factor each interval needs."""

import numpy as np
import pytest

from rnnkit.tasks.forecast import WIDEN_LIMIT, adaptive_interval_factors, conformal_quantile, interval_factor, interval_ratios


def half_normal(rng, n, scale=1.0):
    return np.abs(scale * rng.standard_normal(n))


def covered(factors, origins):
    return float(np.mean(np.concatenate([r <= f for f, r in zip(factors, origins)])))


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


def test_without_adaptation_the_first_factor_is_the_calibrations_and_later_ones_grow_the_set():
    rng = np.random.default_rng(1)
    calibration, origins = half_normal(rng, 30), [half_normal(rng, 12) for _ in range(4)]
    factors = adaptive_interval_factors(calibration, origins, step=0.0)
    assert len(factors) == len(origins) + 1
    assert factors[0] == conformal_quantile(calibration)
    for k in range(1, len(factors)):  # online split conformal: every ratio known before origin k
        assert factors[k] == conformal_quantile(np.concatenate([calibration, *origins[:k]]))


def test_after_a_scale_shift_adaptive_conformal_recovers_the_coverage_a_fixed_factor_loses():
    rng = np.random.default_rng(2)
    calibration = half_normal(rng, 150)  # three calm origins of 50 points
    origins = [half_normal(rng, 50, scale=3.0) for _ in range(40)]  # then three times rougher
    fixed = covered([conformal_quantile(calibration)] * len(origins), origins)
    assert fixed < 0.45  # the calm calibration's factor covers about P(|3z| < 1.28) = 0.34
    online = adaptive_interval_factors(calibration, origins, step=0.0)
    adaptive = adaptive_interval_factors(calibration, origins, step=0.3)
    assert covered(online[2:10], origins[2:10]) < 0.7  # the calm ratios still weigh in the growing set
    assert 0.75 <= covered(adaptive[2:10], origins[2:10]) <= 0.9  # a raised level makes up for them
    assert 0.7 <= covered(adaptive, origins) <= 0.85


def test_adaptive_conformal_keeps_the_long_run_coverage_while_the_scale_keeps_growing():
    rng = np.random.default_rng(3)
    origins = [half_normal(rng, 20, scale=np.exp(k / 60)) for k in range(300)]  # 150 times rougher at the end
    calibration = half_normal(rng, 60)
    assert covered(adaptive_interval_factors(calibration, origins, step=0.0), origins) < 0.5  # the past lags
    assert abs(covered(adaptive_interval_factors(calibration, origins, step=0.3), origins) - 0.8) <= 0.03
