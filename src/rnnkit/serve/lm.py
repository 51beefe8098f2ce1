"""A language model at work, one token at a time: the text it samples and, at every token, what
each layer holds — its state parts (h, and c for an LSTM) and its gates — as Karpathy, Johnson &
Fei-Fei (2015) read them by colouring each character with one unit's activation.

A ``Generation`` is one request's own: its state, its generator and the text decoded so far
live in it, never in the model, so requests served side by side do not mix. Its steps are what
the server runs under the model's lock (``app.ModelLock``), one at a time.

The text is the one `rnnkit generate` prints for the same prime, options and seed: the prime is
read as there (``tasks.lm.read_prime``, one forward pass), and each token is sampled by
``models.sampling.sample_next`` from the same logits. The prime's own characters are then shown
with the signals of a second, token-by-token reading of it, which is what a unit holds after
each of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.sampling import check_sampling, sample_next
from ..nn import no_grad
from ..tasks.lm import TrainedLanguageModel, read_prime

#: sizes a request may ask for: generation is a loop of forward steps, each holding the model
MAX_PRIME = 1000  # characters
MAX_LENGTH = 2000  # tokens
DIGITS = 4  # decimals of the activations sent: colour needs no more


def signal_names(trained: TrainedLanguageModel) -> list[str]:
    """What a unit of a layer can be coloured by: the kind's state parts, then its gates
    (named ``gate:forget`` …), when its layer reports them."""
    layer = trained.model.rnn
    names = list(layer.kind.states)
    if hasattr(layer, "gate_activations"):
        names += [f"gate:{name}" for name, _ in layer.kind.gates]
    return names


def describe_model(trained: TrainedLanguageModel) -> dict:
    """What the page needs to offer a choice: layers, their signals and unit counts, conditions."""
    layer = trained.model.rnn
    units = {name: (layer.output_size if name == "h" else layer.hidden_size) for name in signal_names(trained)}
    return {"layers": layer.num_layers, "signals": units, "gates": [name for name, _ in layer.kind.gates]
            if hasattr(layer, "gate_activations") else [], "conditions": trained.conditions,
            "tokenizer": trained.config["vocabulary"]["kind"], "limits": {"prime": MAX_PRIME, "length": MAX_LENGTH}}


def step(trained: TrainedLanguageModel, token_ids: np.ndarray, state, condition: int | None = None):
    """One forward pass of ``token_ids`` (T,) from ``state``: (logits (T, 1, V), state, signals), where
    signals is {name: (layers, units)} at the last token. The layer's cache is kept only until its
    gates are read, and then cleared: the next request finds the model as this one found it."""
    model = trained.model
    model.eval()
    cond = None if condition is None or state is not None else np.array([condition])
    try:
        logits, new_state = model(np.asarray(token_ids).reshape(-1, 1), state, cond)
        parts = new_state if isinstance(new_state, tuple) else (new_state,)
        signals = {name: part[:, -1, :] for name, part in zip(model.rnn.kind.states, parts)}  # (L, 1, ·) → (L, ·)
        if hasattr(model.rnn, "gate_activations"):
            acts = model.rnn.gate_activations()  # per layer: (G, N, H), the last step last
            for g, (name, _) in enumerate(model.rnn.kind.gates):
                signals[f"gate:{name}"] = np.stack([a[g, -1] for a in acts])
    finally:
        model.clear_caches()
    return logits, new_state, signals


@dataclass
class GenerateRequest:
    """One generation: what to sample, and which signal of which layer to send with each token.
    ``unit`` picks the unit whose gates make the per-token strip."""

    prime: str = "\n"
    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    condition: str | None = None
    layer: int = -1  # -1: the top layer
    signal: str = "h"
    unit: int = 0


class Generation:
    """One request's generation; ``start`` reads the prime and returns its tokens' events, each
    ``next`` samples one token and returns its event: {"text", "values": the chosen signal of every
    unit of the chosen layer, "gates": the chosen unit's gates}."""

    def __init__(self, trained: TrainedLanguageModel, request: GenerateRequest):
        self.trained, self.request = trained, request
        r = request
        if not 1 <= len(r.prime) <= MAX_PRIME:
            raise ValueError(f"prime: expected 1 to {MAX_PRIME} characters, got {len(r.prime)}")
        if not 1 <= r.length <= MAX_LENGTH:
            raise ValueError(f"length: expected 1 to {MAX_LENGTH} tokens, got {r.length}")
        check_sampling(r.temperature, r.top_k, r.top_p)
        layers = trained.model.rnn.num_layers
        if not -layers <= r.layer < layers:
            raise ValueError(f"layer: expected 0 to {layers - 1} (or -1, the top), got {r.layer}")
        self.layer = r.layer % layers
        names = signal_names(trained)
        if r.signal not in names:
            raise ValueError(f"signal: expected one of {', '.join(names)}, got {r.signal!r}")
        units = describe_model(trained)["signals"][r.signal]
        if not 0 <= r.unit < units:
            raise ValueError(f"unit: expected 0 to {units - 1}, got {r.unit}")
        self.condition = trained.condition_index(r.condition)
        self.prime_ids = read_prime(trained.tokenizer, r.prime)  # a token the model never saw: a ValueError naming --prime
        self.rng = np.random.default_rng(r.seed)
        self.ids: list[int] = []
        self.shown = ""
        self.state = self.logits = None
        self.done = self.hidden_prefix = 0

    def _event(self, piece: str, signals: dict, prime: bool = False) -> dict:
        gates = [round(float(signals[n][self.layer, self.request.unit]), DIGITS) for n in signals if n.startswith("gate:")]
        values = np.round(signals[self.request.signal][self.layer].astype(np.float64), DIGITS)
        return {"text": piece, "values": values.tolist(), "gates": gates, "prime": prime}

    def _decoded(self, token: int) -> str:
        """The new text a token adds (a word tokenizer joins words with spaces)."""
        self.ids.append(token)
        text = self.trained.tokenizer.decode(self.ids)
        piece, self.shown = text[len(self.shown):], text
        return piece

    def start(self) -> list[dict]:
        """Read the prime: one pass for the state sampling starts from (as `rnnkit generate`), and
        one token at a time for what each of its tokens shows."""
        with no_grad():
            self.trained.model.eval()
            self.logits, self.state = self.trained.model(self.prime_ids.reshape(-1, 1), None,
                                                          None if self.condition is None else np.array([self.condition]))
        added_newline = len(self.prime_ids) > len(self.trained.tokenizer.encode(self.request.prime))
        events, state = [], None
        for i, token in enumerate(self.prime_ids):
            _, state, signals = step(self.trained, np.array([token]), state, self.condition)
            piece = self._decoded(int(token))
            if added_newline and i == 0:
                self.hidden_prefix = len(piece)  # the newline read_prime put first: read, not shown
            else:
                events.append(self._event(piece, signals, prime=True))
        return events

    @property
    def text(self) -> str:
        """The prime and what follows it, as `rnnkit generate` returns them."""
        return self.shown[self.hidden_prefix:]

    def next(self) -> dict:
        """Sample one token from the current logits, feed it back, and return its event."""
        token = sample_next(self.logits[-1, 0], self.rng, self.request.temperature, self.request.top_k, self.request.top_p)
        self.logits, self.state, signals = step(self.trained, np.array([token]), self.state)
        self.done += 1
        return self._event(self._decoded(token), signals)


# ---- units that track features of the text (Karpathy et al. 2015, section 4.2) ---------------------

FEATURES = {
    "in_quotes": "inside double quotes",
    "in_brackets": "inside (), [] or {}",
    "line_position": "characters since the last newline",
    "after_newline": "the character just read is a newline",
}
SAMPLE_CHARS = 3000  # of the validation text: enough for every feature to change many times
TOP_UNITS = 5


def text_features(text) -> dict[str, np.ndarray]:
    """Each feature of ``FEATURES`` after reading each character of ``text`` (a str, or a list of
    tokens' texts, where an unknown one is ``<unk>``): (len(text),) floats."""
    quotes = depth = column = 0
    rows = []
    for ch in text:
        quotes ^= ch == '"'
        depth = max(0, depth + (ch in "([{") - (ch in ")]}"))
        column = 0 if ch == "\n" else column + 1
        rows.append((quotes, depth > 0, column, ch == "\n"))
    columns = np.array(rows, np.float64).T if rows else np.zeros((4, 0))
    return dict(zip(FEATURES, columns))


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``values`` (N, U) with ``feature`` (N,); 0 where a column is constant."""
    v = values - values.mean(axis=0)
    f = feature - feature.mean()
    denominator = np.sqrt((v * v).sum(axis=0) * (f @ f))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f @ v) / denominator
    return np.where(denominator > 0, r, 0.0)


def feature_units(trained: TrainedLanguageModel, max_chars: int = SAMPLE_CHARS, top: int = TOP_UNITS) -> dict:
    """The units most correlated with each feature of ``FEATURES`` over the start of the model's
    validation text, read token by token: {"chars", "features": [{"feature", "about", "present",
    "units": [{"layer", "signal", "unit", "r"}]}]}. Character models only (the features are of characters)."""
    if trained.config["vocabulary"]["kind"] != "char":
        raise ValueError("units: the text features are of characters; this is a word-level model")
    condition, ids = next(iter(trained.validation_ids().items()))
    ids = np.asarray(ids)[:max_chars]
    text = [trained.tokenizer.decode([int(t)]) for t in ids]  # one entry a token, <unk> too
    recorded: dict[str, list] = {}
    state = None
    for token in ids:
        _, state, signals = step(trained, np.array([token]), state, condition)
        for name, value in signals.items():
            recorded.setdefault(name, []).append(value)
    series = {name: np.stack(v).astype(np.float64) for name, v in recorded.items()}  # (N, layers, units)
    result = []
    for feature, values in text_features(text).items():
        present = bool(values.std() > 0)
        found = []
        if present:
            for name, acts in series.items():
                N, L, U = acts.shape
                r = correlations(acts.reshape(N, L * U), values)
                found += [(float(r[j]), j // U, name, j % U) for j in range(L * U) if math.isfinite(r[j])]
            found.sort(key=lambda row: -abs(row[0]))
        result.append({"feature": feature, "about": FEATURES[feature], "present": present,
                       "units": [{"layer": layer, "signal": name, "unit": unit, "r": round(r, 3)}
                                 for r, layer, name, unit in found[:top]]})
    return {"chars": len(ids), "features": result}
