"""Models out of rnnkit, for the runtimes people deploy on.

``FORMATS`` names each format ``rnnkit export --format`` takes, with its facts; ``onnx.py``
builds the ONNX graphs (``onnx`` is imported only when a graph is built).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name (``--format``), the file suffix it writes, the pip extra
    that installs what it needs, and one line of help."""

    name: str
    suffix: str
    extra: str
    about: str


#: the formats, the default first
FORMATS = {f.name: f for f in (
    ExportFormat("onnx", ".onnx", "export",
                 "ONNX (opset 21, IR 10) for onnxruntime: ONNX's own RNN/GRU/LSTM operators, a Scan for other kinds"),
)}


def get_format(name) -> ExportFormat:
    """The format called ``name``; a ValueError naming --format otherwise."""
    if name not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {name!r}")
    return FORMATS[name]
