"""What the export tests share: a checked onnxruntime session, the comparison with rnnkit, and a
decoder stepped from outside the graph."""

import numpy as np
import onnx
import onnxruntime as ort

from rnnkit.models.seq2seq import search_beam

TOLERANCE = 1e-5


def assert_close(got, expected, what=""):
    """Norm-wise: ‖got − expected‖ ≤ 1e-5 · max(‖expected‖, 1)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, what
    err = np.linalg.norm(got - expected)
    assert err <= TOLERANCE * max(np.linalg.norm(expected), 1.0), f"{what}: ‖Δ‖ = {err:.3g}"


def series_feed(items) -> dict:
    """A classifier graph's inputs for series of (T_i, C) values: x (B, T, C) padded with zeros, lengths (B,)."""
    lengths = np.array([len(s) for s in items])
    x = np.zeros((len(items), lengths.max(), items[0].shape[1]), np.float32)
    for i, s in enumerate(items):
        x[i, : len(s)] = s
    return {"x": x, "lengths": lengths.astype(np.int64)}


def session(model) -> ort.InferenceSession:
    """The model checked by onnx.checker (full check), in onnxruntime on the CPU."""
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def decoder_step(first: dict, decoder, src_lengths=None):
    """(step, feeds): the exported decoder's step as a function, step(y, feeds) → (logits (B, V),
    the next feeds, alpha or None), and its first feeds from the encoder's outputs ``first`` (by
    name; with attention, the sources' lengths too)."""
    names = [i.name for i in decoder.get_inputs() if i.name in ("h", "c", "feed")]
    feeds = {name: first[name] for name in names + ["keys", "proj"] if name in first}
    if "keys" in feeds:
        feeds["src_lengths"] = np.asarray(src_lengths)
    outputs = [o.name for o in decoder.get_outputs()]

    def step(y, feeds):
        result = dict(zip(outputs, decoder.run(None, {"y": y, **feeds})))
        return result["logits"], {**feeds, **{n: result[f"{n}_next"] for n in names}}, result.get("alpha")

    return step, feeds


def run_decoder(first: dict, decoder, src_lengths=None, feed_tokens=None, bos=None, eos=None, max_len=0):
    """A decoder's step (translation's, the captioner's) called once per token from the encoder's
    outputs ``first``: the given tokens (teacher forcing) → their logits (T, B, V); or greedy from
    ``bos`` → each row's tokens up to ``eos``."""
    step, feeds = decoder_step(first, decoder, src_lengths)
    B = first["h"].shape[1]
    y = feed_tokens[0] if feed_tokens is not None else np.full(B, bos)
    steps, tokens, done = [], [[] for _ in range(B)], np.zeros(B, bool)
    for t in range(len(feed_tokens) if feed_tokens is not None else max_len):
        logits, feeds, _ = step(y, feeds)
        steps.append(logits)
        if feed_tokens is not None:
            y = feed_tokens[min(t + 1, len(feed_tokens) - 1)]
            continue
        y = logits.argmax(axis=1)
        for b in np.flatnonzero(~done):
            done[b] |= y[b] == eos
            if not done[b]:
                tokens[b].append(int(y[b]))
        if done.all():
            break
    return np.stack(steps) if feed_tokens is not None else tokens


# the batch axis of each decoder input: the state (L, B, H) but feed (B, H); the memory (B, S, ·)
BATCH_AXIS = {"h": 1, "c": 1, "feed": 0, "keys": 0, "proj": 0, "src_lengths": 0}


def beam_decoder(first: dict, decoder, row: int, src_lengths=None, **search):
    """rnnkit's beam search (``seq2seq.search_beam``) for source ``row`` of the encoder's outputs
    ``first``, every step a call of the exported decoder; ``search``: bos, eos, beam, max_len,
    length_penalty."""
    step, feeds = decoder_step(first, decoder, src_lengths)
    take = lambda feeds, rows: {n: np.take(v, rows, axis=BATCH_AXIS[n]) for n, v in feeds.items()}  # noqa: E731
    source_length = int(src_lengths[row]) if "keys" in feeds else None
    return search_beam(step, take(feeds, [row]), take, source_length=source_length, **search)
