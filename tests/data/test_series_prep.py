"""Per-series preparation: z-normalisation (and what it takes away) and averaging long series down."""

import numpy as np

from rnnkit.data.series_prep import average_down, level_and_scale, summarise_down, z_normalise


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


def test_summarised_segments_are_their_mean_then_minimum_then_maximum():
    s = np.column_stack([np.arange(10.0), -np.arange(10.0)])  # segments of 3, 3 and 4 steps
    out = summarise_down(s, 3)
    assert out.shape == (3, 6)
    np.testing.assert_allclose(out[:, 0], [1.0, 4.0, 7.5])
    np.testing.assert_allclose(out[:, 2], [0.0, 3.0, 6.0])  # minima of channel 0
    np.testing.assert_allclose(out[:, 4], [2.0, 5.0, 9.0])  # maxima of channel 0
    np.testing.assert_allclose(out[:, [1, 3, 5]], [[-1.0, -2.0, 0.0], [-4.0, -5.0, -3.0], [-7.5, -9.0, -6.0]])


def test_an_oscillation_averages_flat_but_keeps_its_envelope_in_the_summary():
    s = np.tile([1.0, -1.0], 20)[:, None] * 3.0  # 40 steps, mean 0 in every segment of 4
    assert not average_down(s, 10).any()
    np.testing.assert_array_equal(summarise_down(s, 10)[:, 1:], np.tile([-3.0, 3.0], (10, 1)))


def test_a_short_series_is_summarised_step_by_step():
    s = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(summarise_down(s, 3), np.hstack([s, s, s]))
    np.testing.assert_array_equal(summarise_down(np.arange(12.0)[:, None], 0), np.tile(np.arange(12.0)[:, None], 3))


def test_level_and_scale_with_the_z_normalised_steps_give_the_series_back():
    s = np.random.default_rng(1).normal([5.0, -300.0], [2.0, 40.0], size=(30, 2))
    v = level_and_scale(s)
    std = np.exp(v[:2])
    mean = np.sinh(v[2:]) * std
    np.testing.assert_allclose(z_normalise(s) * std + mean, s, rtol=1e-12)


def test_level_and_scale_do_not_depend_on_the_series_size_but_through_log_std():
    s = np.random.default_rng(2).normal(3.0, 2.0, size=(40, 1))
    small, large = level_and_scale(s * 1e-4), level_and_scale(s)
    np.testing.assert_allclose(large[0] - small[0], np.log(1e4), rtol=1e-12)  # 9.2 apart: sizes stay told apart
    np.testing.assert_allclose(large[1], small[1], rtol=1e-12)  # the level, in units of the spread
    np.testing.assert_allclose(z_normalise(s * 1e-4), z_normalise(s), atol=1e-9)  # and the shape is the same


def test_a_flat_channel_has_a_finite_level_and_scale():
    s = np.column_stack([np.full(10, 7.25), np.zeros(10)])
    v = level_and_scale(s)
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(v, [np.log(7.25e-8), np.log(1e-8), np.arcsinh(1e8), 0.0])
