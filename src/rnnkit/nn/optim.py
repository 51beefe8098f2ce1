"""Optimizers, gradient clipping and learning-rate schedules, equal to PyTorch's.

An optimizer holds a list of Parameters and updates each ``p.data`` in place from ``p.grad``;
one ``step()`` is one update of every parameter. Per-parameter state (moments, momentum
buffers) lives in ``optimizer.state[i]``, a dict of arrays for the i-th parameter, created on
the first step as in PyTorch. ``state_dict()`` is a flat ``{name: array or scalar}`` dict
(buffers named ``"exp_avg.0"``, ``"momentum_buffer.3"``, ...) that ``np.savez`` can write as is.

A schedule sets ``optimizer.lr`` from a closed form in the number of optimizer steps taken;
call its ``step()`` once after each ``optimizer.step()``; so too ``WeightAverage.update()``, the
exponential moving average of the weights.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .module import Module, Parameter
from .validation import nonnegative_float, positive_int, probability

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "grad_norm",
    "clip_grad_norm_",
    "clip_grad_value_",
    "LRSchedule",
    "StepLR",
    "CosineAnnealingLR",
    "LinearWarmup",
    "WeightAverage",
]


def _parameter_list(params) -> list[Parameter]:
    """A Module, one Parameter, or an iterable of Parameters, as a list."""
    if isinstance(params, Module):
        return params.parameters()
    if isinstance(params, Parameter):
        return [params]
    try:
        params = list(params)
    except TypeError:
        kind = type(params).__name__
        raise TypeError(f"params: expected a Module or an iterable of Parameters, got {kind}") from None
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"params: expected Parameters, got an element of type {type(p).__name__}")
    return params


def _plain(value):
    """A saved scalar back as a Python value (``np.load`` returns 0-d arrays)."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _zeros(state: dict, name: str, like: np.ndarray) -> np.ndarray:
    if name not in state:
        state[name] = np.zeros_like(like)
    return state[name]


def _check_keys(state, expected: set[str], owner: str) -> None:
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"state_dict does not fit {owner}: missing keys {missing}")


# ---- optimizers ---------------------------------------------------------------------


class Optimizer:
    """Base class: the parameter list, per-parameter state, ``zero_grad`` and checkpoints.

    Subclasses define ``step``, the names of their per-parameter buffers, and
    ``_scalars``/``_load_scalars`` for their hyperparameters and counters.
    """

    _buffers: tuple[str, ...] = ()

    def __init__(self, params):
        self.params = _parameter_list(params)
        if not self.params:
            raise ValueError("params: got an empty parameter list, nothing to optimise")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("params: the same Parameter appears more than once (it would be updated twice)")
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = nonnegative_float(value, "lr")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0)

    def step(self) -> None:
        raise NotImplementedError

    def _scalars(self) -> dict:
        raise NotImplementedError

    def _load_scalars(self, scalars: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyperparameters, counters and copies of every buffer, in one flat dict."""
        state = self._scalars()
        for i, buffers in enumerate(self.state):
            for name, arr in buffers.items():
                state[f"{name}.{i}"] = arr.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned, hyperparameters included (as PyTorch does).

        Buffers are copied and cast to their parameter's dtype; the error lists every key
        that does not fit at once.
        """
        scalars = set(self._scalars())
        _check_keys(state, scalars, type(self).__name__)
        problems, buffers = [], [{} for _ in self.params]
        for key in sorted(set(state) - scalars):
            name, _, index = key.rpartition(".")
            if name not in self._buffers or not index.isdigit() or int(index) >= len(self.params):
                problems.append(f"unexpected key {key!r}")
                continue
            p = self.params[int(index)]
            if np.shape(state[key]) != p.shape:
                problems.append(f"{key}: expected shape {p.shape}, got {np.shape(state[key])}")
                continue
            arr = np.array(state[key], dtype=p.data.dtype)
            if not np.isfinite(arr).all():
                problems.append(f"{key}: contains NaN or infinite values")
            buffers[int(index)][name] = arr
        if problems:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: " + "; ".join(problems))
        self._load_scalars({k: _plain(state[k]) for k in scalars})
        self.state = buffers


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    With γ = lr, μ = momentum, τ = dampening, λ = weight_decay, each step does::

        g = g + λ θ
        b = μ b + (1 − τ) g          (b = g on the first step)
        g = g + μ b  if nesterov  else  b
        θ = θ − γ g
    """

    _buffers = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params)
        self._configure(lr, momentum, dampening, nesterov, weight_decay)

    def _configure(self, lr, momentum, dampening, nesterov, weight_decay) -> None:
        momentum = nonnegative_float(momentum, "momentum")
        dampening = nonnegative_float(dampening, "dampening")
        weight_decay = nonnegative_float(weight_decay, "weight_decay")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError(
                f"nesterov: needs momentum > 0 and dampening = 0, got momentum={momentum}, dampening={dampening}"
            )
        self.lr = lr
        self.momentum, self.dampening, self.weight_decay = momentum, dampening, weight_decay
        self.nesterov = bool(nesterov)

    def step(self) -> None:
        lr, mu, tau, wd = self.lr, self.momentum, self.dampening, self.weight_decay
        for p, state in zip(self.params, self.state):
            g = p.grad
            if wd:
                g = g + wd * p.data
            if mu:
                if "momentum_buffer" in state:
                    b = state["momentum_buffer"]
                    b *= mu
                    b += (1 - tau) * g  # b = μ b + (1 − τ) g
                else:
                    # PyTorch starts the buffer at the first gradient, undamped
                    b = state["momentum_buffer"] = g.copy()
                g = g + mu * b if self.nesterov else b
            p.data -= lr * g

    def _scalars(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _load_scalars(self, scalars: dict) -> None:
        self._configure(**scalars)


class Adam(Optimizer):
    """Adam, with L2 weight decay folded into the gradient, and the AMSGrad variant.

    With γ = lr, (β1, β2) = betas, λ = weight_decay and t the step count::

        g = g + λ θ
        m = β1 m + (1 − β1) g
        v = β2 v + (1 − β2) g²
        v_max = max(v_max, v)        (amsgrad only; v_max replaces v below)
        θ = θ − γ / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
    """

    _buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params)
        self._configure(lr, betas, eps, weight_decay, amsgrad)
        self.step_count = 0

    def _configure(self, lr, betas, eps, weight_decay, amsgrad) -> None:
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
        beta1, beta2 = probability(beta1, "betas[0]"), probability(beta2, "betas[1]")
        eps = nonnegative_float(eps, "eps")
        weight_decay = nonnegative_float(weight_decay, "weight_decay")
        self.lr = lr
        self.betas, self.eps, self.weight_decay, self.amsgrad = (beta1, beta2), eps, weight_decay, bool(amsgrad)

    def step(self) -> None:
        self.step_count += 1
        t, lr, (beta1, beta2), wd = self.step_count, self.lr, self.betas, self.weight_decay
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        for p, state in zip(self.params, self.state):
            g = p.grad
            if wd and self._decoupled:
                p.data *= 1 - lr * wd
            elif wd:
                g = g + wd * p.data
            m = _zeros(state, "exp_avg", p.data)
            v = _zeros(state, "exp_avg_sq", p.data)
            m *= beta1
            m += (1 - beta1) * g  # m = β1 m + (1 − β1) g
            v *= beta2
            v += (1 - beta2) * g * g  # v = β2 v + (1 − β2) g²
            if self.amsgrad:
                v_max = _zeros(state, "max_exp_avg_sq", p.data)
                np.maximum(v_max, v, out=v_max)
                v = v_max
            p.data -= lr / bias1 * m / (np.sqrt(v) / math.sqrt(bias2) + self.eps)

    def _scalars(self) -> dict:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                "amsgrad": self.amsgrad, "step": self.step_count}

    def _load_scalars(self, scalars: dict) -> None:
        step = positive_int(scalars.pop("step"), "step", minimum=0)
        self._configure(**scalars)
        self.step_count = step


class AdamW(Adam):
    """Adam with decoupled weight decay: the decay shrinks θ directly and never enters m or v.

    Each step first does θ = θ − γ λ θ, then the Adam update of ``Adam`` with λ = 0.
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


# ---- gradient clipping ----------------------------------------------------------------


def grad_norm(params, norm_type: float = 2.0) -> float:
    """The joint norm of every gradient, as if they were one vector (what clipping measures)."""
    params = _parameter_list(params)
    try:
        order = float(norm_type)  # accepts "inf", as PyTorch does
    except (TypeError, ValueError):
        order = math.nan
    if not order > 0:
        raise ValueError(f"norm_type: expected a number > 0 or inf, got {norm_type!r}")
    if not params:
        return 0.0
    norms = [np.linalg.norm(p.grad.ravel(), ord=order) for p in params]
    return float(np.linalg.norm(np.array(norms), ord=order))


def clip_grad_norm_(params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The norm is taken over every gradient as if they were one vector; the gradients are
    multiplied by min(1, max_norm / (norm + 1e-6)). Returns the norm before clipping. As in
    PyTorch, a NaN or infinite norm is not an error: the gradients become NaN (or zero) and
    the norm is returned so the caller can skip the step or stop.
    """
    params = _parameter_list(params)
    max_norm = nonnegative_float(max_norm, "max_norm")
    total = grad_norm(params, norm_type)
    if not params:
        return 0.0
    coef = np.minimum(max_norm / (total + 1e-6), 1.0)
    # a coefficient of 1 changes nothing; NaN fails this test and is applied, as in PyTorch
    if coef != 1.0:
        with np.errstate(invalid="ignore"):
            for p in params:
                p.grad *= coef.astype(p.grad.dtype)
    return total


def clip_grad_value_(params, clip_value: float) -> None:
    """Clamp every gradient element into [−clip_value, clip_value], in place."""
    params = _parameter_list(params)
    clip_value = nonnegative_float(clip_value, "clip_value")
    for p in params:
        np.clip(p.grad, -clip_value, clip_value, out=p.grad)


# ---- learning-rate schedules ----------------------------------------------------------


class LRSchedule:
    """Base class: ``optimizer.lr = lr_at(t)`` after t calls of ``step()``.

    ``base_lr`` is the optimizer's lr when the schedule is built; building the schedule sets
    the lr for t = 0, as PyTorch's schedulers do.
    """

    def __init__(self, optimizer: Optimizer, base_lr: float | None = None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an rnnkit Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr if base_lr is None else base_lr
        self.last_step = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)

    def get_lr(self) -> float:
        return self.lr_at(self.last_step)

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        _check_keys(state, {"last_step", "base_lr"}, type(self).__name__)
        self.last_step = positive_int(_plain(state["last_step"]), "last_step", minimum=0)
        self.base_lr = nonnegative_float(_plain(state["base_lr"]), "base_lr")
        self.optimizer.lr = self.get_lr()


class StepLR(LRSchedule):
    """lr = base_lr · gamma^⌊t / step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = positive_int(step_size, "step_size")
        self.gamma = nonnegative_float(gamma, "gamma")
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRSchedule):
    """lr = η_min + (base_lr − η_min) · (1 + cos(π t / T_max)) / 2, without restarts."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = positive_int(T_max, "T_max")
        self.eta_min = nonnegative_float(eta_min, "eta_min")
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRSchedule):
    """lr rises linearly from start_factor · base_lr to base_lr over ``warmup_steps`` steps.

    As PyTorch's ``LinearLR(start_factor, 1.0, warmup_steps)``; ``start_factor`` defaults to
    1 / warmup_steps, so the first step already moves. With ``after`` (a schedule over the same
    optimizer), step t ≥ warmup_steps gets ``after.lr_at(t − warmup_steps)``, as
    ``SequentialLR([warmup, after], milestones=[warmup_steps])``; step only the warm-up then.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float | None = None,
                 after: LRSchedule | None = None):
        self.warmup_steps = positive_int(warmup_steps, "warmup_steps")
        self.start_factor = 1 / self.warmup_steps if start_factor is None else start_factor
        if isinstance(self.start_factor, bool) or not isinstance(self.start_factor, (int, float)) \
                or not 0 < self.start_factor <= 1:
            raise ValueError(f"start_factor: expected a number in (0, 1], got {start_factor!r}")
        if after is not None and (not isinstance(after, LRSchedule) or after.optimizer is not optimizer):
            raise ValueError("after: expected a schedule over the same optimizer")
        self.after = after
        # the schedule after the warm-up was built first, on the un-warmed lr
        super().__init__(optimizer, None if after is None else after.base_lr)

    def lr_at(self, t: int) -> float:
        if self.after is not None and t >= self.warmup_steps:
            return self.after.lr_at(t - self.warmup_steps)
        progress = min(t, self.warmup_steps) / self.warmup_steps
        return self.base_lr * (self.start_factor + (1 - self.start_factor) * progress)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.after is not None:
            # warm-up and the schedule after it share one base lr
            self.after.base_lr = self.base_lr
            self.optimizer.lr = self.get_lr()


# ---- averaged weights -----------------------------------------------------------------


class WeightAverage:
    """An exponential moving average of parameters' values (Polyak averaging), bias-corrected.

    After the t-th ``update()``, for each parameter p (p_s its value at the s-th update):

        p̄_t = Σ_{s≤t} decay^(t−s) p_s / Σ_{s≤t} decay^(t−s)
            = p̄_{t−1} + (p_t − p̄_{t−1}) · (1 − decay) / (1 − decay^t)

    so the first update takes p (its weight is 1), and an early average is one of the steps seen so
    far rather than one pulled towards the initial weights (as Adam corrects its moments). PyTorch's
    ``AveragedModel(model, avg_fn=lambda a, p, n: a + (p − a)(1 − decay) / (1 − decay^(n+1)))``
    computes the same. ``swapped()`` puts the averages into the parameters for a while (to evaluate
    or save them) and the live values back after.
    """

    def __init__(self, params, decay: float):
        self.params = _parameter_list(params)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ValueError(f"decay: expected a number in (0, 1), got {decay!r}")
        self.decay, self.updates = float(decay), 0
        self.averages = [p.data.copy() for p in self.params]

    def update(self) -> None:
        self.updates += 1
        weight = (1 - self.decay) / (1 - self.decay ** self.updates)
        for average, p in zip(self.averages, self.params):
            average += (p.data - average) * average.dtype.type(weight)

    @contextlib.contextmanager
    def swapped(self):
        """A context in which the parameters hold their averages (the live values restored after)."""
        live = [p.data.copy() for p in self.params]
        try:
            for p, average in zip(self.params, self.averages):
                p.data[...] = average
            yield
        finally:
            for p, value in zip(self.params, live):
                p.data[...] = value

    def state_dict(self) -> dict:
        """``{"updates": t, "average.i": p̄ of the i-th parameter}`` (copies)."""
        return {"updates": self.updates, **{f"average.{i}": a.copy() for i, a in enumerate(self.averages)}}

    def load_state_dict(self, state: dict) -> None:
        expected = {"updates"} | {f"average.{i}" for i in range(len(self.params))}
        _check_keys(state, expected, "WeightAverage")
        problems = [f"unexpected key {k!r}" for k in sorted(set(state) - expected)]
        for i, p in enumerate(self.params):
            if np.shape(state[f"average.{i}"]) != p.shape:
                problems.append(f"average.{i}: expected shape {p.shape}, got {np.shape(state[f'average.{i}'])}")
        if problems:
            raise ValueError("state_dict does not fit WeightAverage: " + "; ".join(problems))
        self.updates = positive_int(_plain(state["updates"]), "updates", minimum=0)
        self.averages = [np.array(state[f"average.{i}"], dtype=p.data.dtype) for i, p in enumerate(self.params)]
