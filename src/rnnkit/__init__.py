"""rnnkit: recurrent neural networks on NumPy, with hand-written BPTT, equal to PyTorch."""

__version__ = "0.1.0"
