"""The shared helpers of functional.py: cached constant arrays and row sums."""

import numpy as np
import pytest

from rnnkit.nn.functional import affine, filled, filled_like, sum_rows


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3,), (5, 7), (2, 3, 5), (64, 1, 64), (1000, 3), (2**20 + 1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filled_has_the_shape_dtype_and_value_asked_for_and_cannot_be_written(shape, dtype):
    a = filled(0.5, shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert np.all(a == 0.5)
    with pytest.raises(ValueError):
        a[...] = 1.0
    b = filled_like(np.empty(shape, dtype), -40.0)  # another value from the same size class
    assert np.all(b == -40.0) and np.all(filled(0.5, shape, dtype) == 0.5)


@pytest.mark.parametrize("shape", [(1, 4), (7, 3), (300, 17), (2, 5, 3), (3, 129, 8), (0, 4), (2**20 + 1, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_rows_sums_over_the_second_to_last_axis(shape, dtype):
    a = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    s = sum_rows(a)
    assert s.shape == shape[:-2] + shape[-1:] and s.dtype == dtype
    np.testing.assert_allclose(s, a.astype(np.float64).sum(axis=-2), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("lead", [(), (4,), (3, 2), (2, 3, 2), (0,), (2, 0)])
def test_affine_is_x_times_w_transposed_plus_bias_over_any_leading_axes(lead):
    rng = np.random.default_rng(len(lead))
    X, W, b = rng.standard_normal((*lead, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    np.testing.assert_allclose(affine(X, W, b), np.einsum("...i,oi->...o", X, W) + b, rtol=1e-12)
    np.testing.assert_allclose(affine(X, W, None), np.einsum("...i,oi->...o", X, W), rtol=1e-12)
