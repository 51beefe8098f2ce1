"""The engine: layers with explicit forward and hand-written backward, on NumPy alone."""

from . import cells, init
from .cells import CellKind
from .attention import MultiheadSelfAttention
from .crf import CRF
from .ctc import CTCLoss
from .linear import Dropout, Embedding, Linear
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, MSELoss
from .minimal import MinGRU, MinLSTM
from .module import Module, Parameter, is_grad_enabled, no_grad
from .optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LinearWarmup,
    LRSchedule,
    Optimizer,
    StepLR,
    WeightAverage,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RecurrentLayer, RNNCell

# the variants' modules register their cell kinds when imported, after those above (recurrent,
# minimal): the order --cell lists them in, and the long-range experiment's seeds follow
from .peephole import PeepholeLSTM, PeepholeLSTMCell  # noqa: E402
from .zoneout import ZoneoutLSTM, ZoneoutLSTMCell  # noqa: E402
from .variational import VariationalLSTM  # noqa: E402
from .layernorm import LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell  # noqa: E402

__all__ = [
    "Module", "Parameter", "no_grad", "is_grad_enabled", "init", "cells", "CellKind",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MinGRU", "MinLSTM", "PeepholeLSTM", "PeepholeLSTMCell", "ZoneoutLSTM", "ZoneoutLSTMCell", "VariationalLSTM", "LayerNormLSTM", "LayerNormLSTMCell", "LayerNormGRU", "LayerNormGRUCell",
    "RecurrentLayer",
    "Linear", "Embedding", "Dropout", "MultiheadSelfAttention", "CRF",
    "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "GaussianNLLLoss", "CTCLoss",
    "Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "clip_grad_value_", "grad_norm",
    "LRSchedule", "StepLR", "CosineAnnealingLR", "LinearWarmup", "WeightAverage",
]
