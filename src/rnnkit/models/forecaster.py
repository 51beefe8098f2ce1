"""Probabilistic forecasting with a recurrent network: a Gaussian per future value (DeepAR-style).

The input at step t is z_t = [y_t ; c_{t+1}]: the scaled value(s) and the known-in-advance
covariates (calendar features) of the next step.

    h_t = RNN(z_t, h_{t−1})
    recursive:  μ_{t+1}, s_{t+1} = Linear(h_t)                    one step ahead, at every step
    direct:     μ_{W+1…W+H}, s = Linear([h_W ; c_{W+1} … c_{W+H}])  the whole horizon from the last state
    σ = softplus(s) + σ_min,   trained by the Gaussian negative log-likelihood

``zero_mean``: the μ rows of the head start at 0, so an untrained network forecasts μ = 0 (for a
task that models residuals, its base itself) rather than the noise of random weights.

A recursive forecast feeds values back step by step with the carried state: sampled paths give
the predictive distribution (error accumulation included), or the means for a point forecast.
"""

from __future__ import annotations

import numpy as np

from ..nn import Dropout, Linear, Module, no_grad
from ..nn.module import as_rng
from .sequence_model import make_recurrent

MODES = ("direct", "recursive")
SIGMA_MIN = 1e-3  # in scaled units: a floor that keeps the likelihood finite on flat stretches


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


class Forecaster(Module):
    """z: (W, B, channels + covariates); direct mode also takes future covariates (B, H, covariates).

    ``forward`` returns (μ, var): (W, B, C) for recursive (the next step after each step),
    (B, H, C) for direct."""

    def __init__(self, channels: int, covariates: int, horizon: int, hidden_size: int = 64, cell: str = "lstm",
                 num_layers: int = 1, mode: str = "direct", dropout: float = 0.0, dtype=np.float32, rng=None,
                 cell_settings=None, zero_mean: bool = False, init: str = "rnnkit"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected direct or recursive, got {mode!r}")
        self.channels, self.covariates, self.horizon, self.mode = channels, covariates, horizon, mode
        self.hidden_size = hidden_size
        self.rng = as_rng(rng)
        self.rnn = make_recurrent(cell, channels + covariates, hidden_size, num_layers, dropout=dropout, dtype=dtype, rng=self.rng,
                                  init=init, **(cell_settings or {}))
        self.drop = Dropout(dropout, rng=self.rng)
        if mode == "direct":
            self.head = Linear(hidden_size + horizon * covariates, horizon * 2 * channels, dtype=dtype, rng=self.rng)
        else:
            self.head = Linear(hidden_size, 2 * channels, dtype=dtype, rng=self.rng)
        if zero_mean:
            mu_rows = (np.arange(self.head.out_features) % (2 * channels)) < channels
            self.head.weight.data[mu_rows] = 0
            self.head.bias.data[mu_rows] = 0

    def forward(self, z, future=None, state=None):
        """Returns (μ, var) and keeps what backward needs; ``state`` starts the recurrence."""
        out, state = self.rnn(z, state)
        if self.mode == "direct":
            B = out.shape[1]
            features = np.concatenate([out[-1], np.asarray(future, out.dtype).reshape(B, -1)], axis=1)
            p = self.head(self.drop(features)).reshape(B, self.horizon, 2 * self.channels)
        else:
            p = self.head(self.drop(out))
        C = self.channels
        mu, s = p[..., :C], p[..., C:]
        sigma = softplus(s) + SIGMA_MIN
        self._push_cache((out.shape, s, sigma))
        self.state = state
        return mu, sigma * sigma

    def backward(self, d_mu, d_var) -> None:
        out_shape, s, sigma = self._pop_cache()
        d_s = d_var * 2 * sigma * sigmoid(s)  # var = σ², σ = softplus(s) + σ_min
        dp = np.concatenate([d_mu, d_s], axis=-1)
        if self.mode == "direct":
            d_features = self.drop.backward(self.head.backward(dp.reshape(dp.shape[0], -1)))
            d_out = np.zeros(out_shape, d_features.dtype)
            d_out[-1] = d_features[:, : self.hidden_size]
        else:
            d_out = self.drop.backward(self.head.backward(dp))
        self.rnn.backward(d_out)

    # ---- forecasting (no gradients) ----------------------------------------------------------
    def forecast(self, z, future, paths: int = 0, rng=None):
        """Forecast H steps after the window z (W, 1, C + F) given the future covariates (H, F).

        Returns (mean, sigma, samples): (H, C) each; samples (paths, H, C) or None. Direct: the
        Gaussian of each step. Recursive: with ``paths`` > 0, sampled values are fed back (the
        mean and spread of the paths are returned); with 0, the means are fed back and sigma is
        each one-step sigma (no accumulated error).
        """
        z = np.asarray(z)
        future = np.asarray(future, z.dtype)
        H = len(future)
        with no_grad():
            self.eval()
            if self.mode == "direct":
                mu, var = self(z, future[None])
                return mu[0], np.sqrt(var[0]), None
            n = max(paths, 1)
            mu, var = self(z)
            state = _repeat_state(self.state, n)
            m, sd = mu[-1].repeat(n, axis=0), np.sqrt(var[-1]).repeat(n, axis=0)  # (n, C)
            rng = as_rng(rng)
            values, means, sigmas = np.empty((n, H, self.channels), mu.dtype), [], []
            for h in range(H):
                means.append(m[0].copy())
                sigmas.append(sd[0].copy())
                values[:, h] = m + sd * rng.standard_normal(m.shape) if paths else m
                if h + 1 < H:
                    zt = np.concatenate([values[:, h], np.repeat(future[h + 1 : h + 2], n, axis=0)], axis=1)[None]
                    mu, var = self(zt, state=state)
                    state, m, sd = self.state, mu[0], np.sqrt(var[0])
            if paths:
                return values.mean(axis=0), values.std(axis=0), values
            return np.array(means), np.array(sigmas), None


def _repeat_state(state, n: int):
    if isinstance(state, tuple):
        return tuple(np.repeat(s, n, axis=1) for s in state)
    return np.repeat(state, n, axis=1)
