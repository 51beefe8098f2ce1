"""The engine: layers with explicit forward and hand-written backward, on NumPy alone."""

from . import init
from .module import Module, Parameter, is_grad_enabled, no_grad
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module", "Parameter", "no_grad", "is_grad_enabled",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
]
