"""A recurrent network with a linear head on its last step (many-to-one) or every step
(many-to-many, aligned): the model of the long-range experiments, and a base for classifiers
and taggers.

    x_t = Embedding(token_t)  or  the numeric input x_t
    h_t = cell(x_t, h_{t−1})            cell: any registered kind (nn/cells.py)
    y   = Linear(h_T)  or  y_t = Linear(h_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nn import Embedding, Linear, Module, cells
from ..nn.module import as_rng


def cell_choices(step: bool = False) -> tuple[str, ...]:
    """The names ``--cell`` accepts: every registered kind (with ``step``, those with a
    step-by-step cell, which a decoder loop needs)."""
    return cells.names(step)


def cell_help(step: bool = False) -> str:
    """The ``--cell`` help text, from the registry: each kind's name and what it is."""
    return "; ".join(f"{k.name}: {k.about}" for k in cells.kinds(step))


def cell_option_help(step: bool = False) -> str:
    """The ``--cell-option`` help text, from the registry: each kind's settings and defaults."""
    tunable = [f"{k.name}: " + ", ".join(f"{name}={s.default} ({s.about})" for name, s in k.settings.items())
               for k in cells.kinds(step) if k.settings]
    return ("a setting of the --cell kind (repeat the option, or separate settings by commas); those not given "
            "take their defaults, and config.json keeps them all. " + "; ".join(tunable))


def cell_settings(cell: str, given) -> dict:
    """The settings of kind ``cell`` as ``--cell-option`` gives them: ``given`` is a dict (the
    Python API, config.json), "NAME=VALUE" texts (the command line) or one text of them separated
    by commas; every setting of the kind, checked, the defaults for those not given. A
    ValueError naming --cell-option otherwise."""
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, dict):
        pairs = {}
        for text in (part for item in given for part in str(item).split(",") if part.strip()):
            name, eq, value = text.partition("=")
            name = name.strip()
            if not eq or not name:
                raise ValueError(f"--cell-option: expected NAME=VALUE, got {text!r}")
            if name in pairs:
                raise ValueError(f"--cell-option: {name} is given twice ({pairs[name]!r} and {value.strip()!r})")
            pairs[name] = value.strip()
        given = pairs
    try:
        return cells.get(cell).check_settings(given)
    except ValueError as exc:
        raise ValueError(f"--cell-option: {exc}") from None


@dataclass(frozen=True)
class Initialisation:
    """How a model's parameters start (``--init``). Every layer first draws PyTorch's default
    (Embedding N(0, 1); Linear weight and bias, and every recurrent parameter, U(−1/√fan_in,
    1/√fan_in), fan_in = H for a recurrent layer); ``own``: rnnkit's choices follow, each
    kind's own initialisation (LSTM forget-gate bias 1, IRNN the identity), a tied embedding
    U(±0.1) and a condition embedding ×0.1 (models/language_model.py)."""

    name: str
    about: str
    own: bool


#: the initialisations; rnnkit's first: the default of every task but lm (whose default is torch's)
INITS = {i.name: i for i in (
    Initialisation("rnnkit", "PyTorch's defaults, then rnnkit's: LSTM forget-gate bias 1, IRNN identity, "
                             "a tied embedding U(±0.1)", own=True),
    Initialisation("torch", "PyTorch's defaults alone, as torch.nn builds the same model: Embedding N(0, 1), "
                            "LSTM/GRU/RNN and Linear parameters U(±1/√fan_in), no forget-gate bias", own=False),
)}


def init_help() -> str:
    """The ``--init`` help text: each initialisation's name and what it does."""
    return "; ".join(f"{i.name}: {i.about}" for i in INITS.values())


def get_init(name) -> Initialisation:
    """The initialisation called ``name``; a ValueError naming ``init`` otherwise."""
    if name not in INITS:
        raise ValueError(f"init: expected one of {', '.join(INITS)}, got {name!r}")
    return INITS[name]


def cell_name(cell: str, settings: dict | None = None, init: str = "rnnkit") -> str:
    """The kind as ``describe`` shows it: ``ZONEOUT (zoneout_h 0.2, zoneout_c 0.5)``, and
    ``LSTM (torch initialisation)`` when ``--init`` is not the default."""
    shown = [f"{name} {value}" for name, value in (settings or {}).items()]
    shown += [f"{init} initialisation"] if init != next(iter(INITS)) else []
    return cell.upper() + (f" ({', '.join(shown)})" if shown else "")


CELLS = cell_choices()
# The largest numeric input a task's model reads, in standardised units: a value far outside what
# it learnt from (1e38 after a model trained on values near 1) is read as this, since saturating
# gates learn nothing more from a larger one and float32 products of larger ones overflow to inf.
INPUT_BOUND = 1e4


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                   dropout: float = 0.0, dtype=np.float32, rng=None, init: str = "rnnkit", **settings):
    """The recurrent layer a kind's name stands for, with the initialisation that suits it (the
    kind's ``init``: LSTM with forget-gate bias 1, Jozefowicz et al. 2015; IRNN a ReLU RNN
    started at the identity, Le et al. 2015), or with ``init="torch"`` PyTorch's default alone
    (``INITS``). dropout acts between stacked layers; settings: the kind's own
    (``CellKind.settings``: zoneout's rates…)."""
    return cells.get(cell).make_layer(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, rng,
                                      kind_init=get_init(init).own, **settings)


class SequenceModel(Module):
    """x: (T, B, input_size) floats, or (T, B) token ids when ``vocab_size`` is given.

    Output: (B, output_size) with ``many_to_one`` (the last step's state), else (T, B, output_size).
    cell_settings: the kind's settings (``CellKind.settings``), passed to its layer.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, cell: str = "lstm", num_layers: int = 1,
                 many_to_one: bool = True, vocab_size: int = 0, dtype=np.float32, rng=None, cell_settings=None):
        super().__init__()
        rng = as_rng(rng)
        self.many_to_one, self.cell = many_to_one, cell
        if vocab_size:
            self.embedding = Embedding(vocab_size, input_size, dtype=dtype, rng=rng)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers, dtype=dtype, rng=rng, **(cell_settings or {}))
        self.head = Linear(hidden_size, output_size, dtype=dtype, rng=rng)

    def forward(self, x):
        if "embedding" in self._modules:
            x = self.embedding(x)
        out, _ = self.rnn(x)
        self._push_cache(out.shape)
        return self.head(out[-1] if self.many_to_one else out)

    def backward(self, dy) -> None:
        shape = self._pop_cache()
        d_head = self.head.backward(dy)
        if self.many_to_one:
            d_out = np.zeros(shape, d_head.dtype)
            d_out[-1] = d_head
        else:
            d_out = d_head
        dx, _ = self.rnn.backward(d_out)
        if "embedding" in self._modules:
            self.embedding.backward(dx)
