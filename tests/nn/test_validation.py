"""The input checks' finiteness test: exact, whatever the values' size."""

import numpy as np
import pytest

from rnnkit.nn.validation import NonFiniteError, all_finite, float_array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_is_exact_for_huge_values_nan_and_infinity(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50)).astype(dtype)
    assert all_finite(x) and all_finite(np.empty((0, 4), dtype))
    huge = np.clip(x, -1, 1) * (np.finfo(dtype).max / 2)  # finite values whose squares overflow: the fast test cannot decide
    assert all_finite(huge)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[2, 17] = bad
        assert not all_finite(y)
        with pytest.raises(NonFiniteError, match=r"x: contains 1 NaN or infinite value"):
            float_array(y, "x", dtype)
    np.testing.assert_array_equal(float_array(huge, "x", dtype), huge)
