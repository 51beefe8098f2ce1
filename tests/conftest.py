import sys
from pathlib import Path

# the shared helpers in tests/gradcheck.py import as a plain module
sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402

from rnnkit.nn import backend  # noqa: E402


@pytest.fixture
def reference_backend():
    """Runs a test on the NumPy reference: a variant's equations with its extra turned off equal
    the plain kind's bit for bit there, while the compiled kernels equal the reference within
    rounding bounds (tests/nn/test_kernels.py)."""
    with backend.use_backend("numpy"):
        yield
