"""The forecaster: Gaussian outputs from a recurrent network, direct and recursive; finite differences."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.models.forecaster import Forecaster
from rnnkit.nn import GaussianNLLLoss, no_grad


def make(mode, seed=0):
    return Forecaster(2, 3, horizon=4, hidden_size=4, cell="gru", mode=mode, dtype=np.float64, rng=seed)


@pytest.mark.parametrize("mode", ["direct", "recursive"])
def test_gradients_of_the_gaussian_likelihood_match_finite_differences(mode):
    model = make(mode)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 3, 5))
    future = rng.standard_normal((3, 4, 3))
    y = rng.standard_normal((3, 4, 2) if mode == "direct" else (6, 3, 2))
    loss_fn = GaussianNLLLoss()

    def loss():
        with no_grad():
            return loss_fn(*[model(z, future)[0], y, model(z, future)[1]])

    model.zero_grad()
    mu, var = model(z, future)
    loss_fn(mu, y, var)
    model.backward(*loss_fn.backward())
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name


def test_recursive_forecast_feeds_the_means_back_step_by_step():
    model = make("recursive")
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 1, 5))
    future = rng.standard_normal((4, 3))
    z[-1, 0, 2:] = future[0]  # the window's last input carries the first future step's covariates
    mean, sigma, samples = model.forecast(z, future)
    assert samples is None and mean.shape == sigma.shape == (4, 2)
    with no_grad():  # by hand: extend the window with each predicted mean
        window = z
        for h in range(4):
            mu, var = model(window)
            np.testing.assert_allclose(mu[-1, 0], mean[h], rtol=1e-12)
            np.testing.assert_allclose(np.sqrt(var[-1, 0]), sigma[h], rtol=1e-12)
            if h + 1 < 4:
                window = np.concatenate([window, np.concatenate([mu[-1, 0], future[h + 1]])[None, None]])


def test_sampled_paths_start_from_the_one_step_distribution():
    model = make("recursive")
    rng = np.random.default_rng(3)
    z, future = rng.standard_normal((6, 1, 5)), rng.standard_normal((3, 3))
    point, sigma, _ = model.forecast(z, future)
    mean, spread, samples = model.forecast(z, future, paths=4000, rng=0)
    assert samples.shape == (4000, 3, 2)
    np.testing.assert_allclose(mean[0], point[0], atol=4 * sigma[0].max() / np.sqrt(4000))
    np.testing.assert_allclose(spread[0], sigma[0], rtol=0.05)
    assert np.all(spread[-1] >= 0.9 * sigma[-1])  # later steps carry the earlier steps' uncertainty too


def test_direct_forecast_shapes_and_positive_variances():
    model = make("direct")
    rng = np.random.default_rng(4)
    mean, sigma, _ = model.forecast(rng.standard_normal((6, 1, 5)), rng.standard_normal((4, 3)))
    assert mean.shape == sigma.shape == (4, 2) and np.all(sigma > 0)


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="mode: expected direct or recursive, got 'iterated'"):
        Forecaster(1, 0, 3, mode="iterated")


@pytest.mark.parametrize("mode", ["direct", "recursive"])
def test_zero_mean_starts_every_mean_at_zero_but_not_the_spread(mode):
    model = Forecaster(2, 3, horizon=4, hidden_size=4, cell="gru", mode=mode, dtype=np.float64, rng=0, zero_mean=True)
    rng = np.random.default_rng(5)
    mu, var = model(rng.standard_normal((6, 3, 5)), rng.standard_normal((3, 4, 3)))
    assert np.all(mu == 0) and np.ptp(var) > 0
    mean, sigma, _ = model.forecast(rng.standard_normal((6, 1, 5)), rng.standard_normal((4, 3)))
    assert np.all(mean == 0) and np.all(sigma > 0)
    plain = make(mode)
    assert np.any(plain(rng.standard_normal((6, 3, 5)), rng.standard_normal((3, 4, 3)))[0] != 0)
