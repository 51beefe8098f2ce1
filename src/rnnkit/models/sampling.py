"""Step-by-step generation from a language model: temperature, top-k, top-p (nucleus), greedy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..nn import no_grad


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if not temperature >= 0:  # also catches NaN
        raise ValueError(f"temperature: expected a number >= 0 (0 means greedy), got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k: expected an integer >= 0 (0 keeps every token), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p}")


def next_token_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """logits: (V,) → probabilities (V,) after temperature, top-k and top-p truncation."""
    z = logits.astype(np.float64) / temperature
    if top_k and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cumulative = np.cumsum(p[order])
        # the smallest set of most likely tokens whose mass reaches top_p
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        truncated = np.zeros_like(p)
        truncated[keep] = p[keep]
        p = truncated / truncated.sum()
    return p


def sample_next(logits, rng: np.random.Generator, temperature=1.0, top_k=0, top_p=1.0) -> int:
    """One token id from logits (V,); temperature 0 is greedy (the arg max)."""
    if temperature == 0:
        return int(np.argmax(logits))
    p = next_token_distribution(logits, temperature, top_k, top_p)
    return int(rng.choice(p.size, p=p))


def generate_ids(
    model,
    prime_ids: np.ndarray,
    length: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    condition: int | None = None,
) -> Iterator[int]:
    """Yield ``length`` sampled token ids, one at a time, carrying the recurrent state.

    The prime is read in one forward pass; each new token is then fed back alone.
    """
    check_sampling(temperature, top_k, top_p)
    cond = None if condition is None else np.array([condition])
    with no_grad():
        model.eval()
        logits, state = model(np.asarray(prime_ids).reshape(-1, 1), None, cond)
        for _ in range(length):
            token = sample_next(logits[-1, 0], rng, temperature, top_k, top_p)
            yield token
            logits, state = model(np.array([[token]]), state)


def stream_text(tokenizer, ids: Iterator[int], prefix_ids, emit: Callable[[str], None]) -> str:
    """Decode ids as they come and pass each new piece of text to ``emit``; returns the whole text."""
    all_ids = list(prefix_ids)
    shown = tokenizer.decode(all_ids)
    start = len(shown)
    for token in ids:
        all_ids.append(token)
        text = tokenizer.decode(all_ids)
        emit(text[len(shown) :])
        shown = text
    return shown[start:]
