"""Experiments that show the limits of RNNs and what answers them (synthetic by design)."""
