"""Per-series preparation: z-normalisation and averaging long series down."""

import numpy as np

from rnnkit.data.series_prep import average_down, z_normalise


def test_each_channel_of_a_series_gets_mean_zero_and_std_one():
    s = np.random.default_rng(0).normal([5.0, -300.0], [2.0, 40.0], size=(50, 2))
    z = z_normalise(s)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)


def test_a_constant_channel_becomes_zeros_not_noise():
    s = np.column_stack([np.full(10, 1e6), np.full(10, 1e6) + np.arange(10) * 1e-9, np.arange(10.0)])
    z = z_normalise(s)
    assert np.all(np.isfinite(z)) and not z[:, 0].any() and not z[:, 1].any() and z[:, 2].std() == 1


def test_a_long_series_becomes_the_means_of_equal_segments():
    s = np.arange(12.0)[:, None]
    np.testing.assert_array_equal(average_down(s, 4), [[1.0], [4.0], [7.0], [10.0]])
    uneven = average_down(np.arange(10.0)[:, None], 3)  # segments of 3, 3 and 4 steps
    np.testing.assert_allclose(uneven[:, 0], [1.0, 4.0, 7.5])


def test_a_short_series_and_max_steps_zero_keep_every_step():
    s = np.arange(6.0).reshape(3, 2)
    assert average_down(s, 3) is s and average_down(s, 0) is s
