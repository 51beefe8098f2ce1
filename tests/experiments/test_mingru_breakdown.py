"""benchmarks/mingru_breakdown.py reaches into the scan's internals: a tiny run keeps it in step."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import mingru_breakdown  # noqa: E402


def test_breakdown_times_every_piece_and_the_pieces_add_up_to_the_step():
    r = mingru_breakdown.breakdown(T=32, batch=1, hidden=8, min_time=0.0)
    pieces = r["pieces"]
    assert set(pieces) == {"input projection", "activations", "forward scan", "head and loss", "backward scan",
                           "activation slopes", "weight gradients", "the rest"}
    assert all(p["seconds"] > 0 for name, p in pieces.items() if name != "the rest")
    assert abs(sum(p["seconds"] for p in pieces.values()) - r["step_seconds"]) < 1e-9
