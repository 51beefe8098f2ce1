"""What the export tests share: a checked onnxruntime session, and the comparison with rnnkit."""

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-5


def assert_close(got, expected, what=""):
    """Norm-wise: ‖got − expected‖ ≤ 1e-5 · max(‖expected‖, 1)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, what
    err = np.linalg.norm(got - expected)
    assert err <= TOLERANCE * max(np.linalg.norm(expected), 1.0), f"{what}: ‖Δ‖ = {err:.3g}"


def session(model) -> ort.InferenceSession:
    """The model checked by onnx.checker (full check), in onnxruntime on the CPU."""
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
