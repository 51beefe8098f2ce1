"""benchmarks/bench_forecast_seasons.py's candidate interval rules: adaptive conformal inference
over forecast origins (``adaptive_interval_factors``) on ratios the tests draw themselves, and the
origins a history calibration reads."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_forecast_seasons import HISTORY_ORIGINS, adaptive_interval_factors, history_origins  # noqa: E402
from rnnkit.tasks.forecast import conformal_quantile  # noqa: E402


def half_normal(rng, n, scale=1.0):
    return np.abs(scale * rng.standard_normal(n))


def covered(factors, origins):
    return float(np.mean(np.concatenate([r <= f for f, r in zip(factors, origins)])))


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


def test_a_history_calibration_reads_origins_h_apart_up_to_the_validation_thinned_to_a_bound():
    data, opts = SimpleNamespace(window=24, first_start=12), SimpleNamespace(horizon=12)
    assert history_origins(data, opts, 120) == [36, 48, 60, 72, 84, 96, 108]  # a window and its lags fit
    many = history_origins(data, opts, 12 * 400)
    assert len(many) <= HISTORY_ORIGINS and many[-1] == 12 * 399 and min(many) >= 36
    assert len(set(np.diff(many))) == 1 and np.diff(many)[0] % 12 == 0  # evenly thinned, on the same phase
