"""What the export tests share: a checked onnxruntime session, the comparison with rnnkit, and a
decoder stepped from outside the graph."""

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


def run_decoder(first: dict, decoder, src_lengths=None, feed_tokens=None, bos=None, eos=None, max_len=0):
    """A decoder's step (translation's, the captioner's) called once per token from the encoder's
    outputs ``first`` (by name; with attention, the sources' lengths too): the given tokens
    (teacher forcing) → their logits (T, B, V); or greedy from ``bos`` → each row's tokens up to ``eos``."""
    state_names = [i.name for i in decoder.get_inputs() if i.name in ("h", "c", "feed")]
    state = {name: first[name] for name in state_names}
    memory = {name: first[name] for name in ("keys", "proj") if name in first}
    memory.update({"src_lengths": src_lengths} if memory else {})
    B = first["h"].shape[1]
    outputs = [o.name for o in decoder.get_outputs()]
    y = feed_tokens[0] if feed_tokens is not None else np.full(B, bos)
    steps, tokens, done = [], [[] for _ in range(B)], np.zeros(B, bool)
    for t in range(len(feed_tokens) if feed_tokens is not None else max_len):
        result = dict(zip(outputs, decoder.run(None, {"y": y, **state, **memory})))
        state = {name: result[f"{name}_next"] for name in state_names}
        steps.append(result["logits"])
        if feed_tokens is not None:
            y = feed_tokens[min(t + 1, len(feed_tokens) - 1)]
            continue
        y = result["logits"].argmax(axis=1)
        for b in np.flatnonzero(~done):
            done[b] |= y[b] == eos
            if not done[b]:
                tokens[b].append(int(y[b]))
        if done.all():
            break
    return np.stack(steps) if feed_tokens is not None else tokens
