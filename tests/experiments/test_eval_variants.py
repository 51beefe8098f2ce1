"""benchmarks/eval_variants.py trains through rnnkit.train("lm", ...) and reads its callbacks: a tiny
--quick run (the character comparison, two child processes) keeps it in step."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import eval_variants  # noqa: E402


def test_quick_char_comparison_writes_curves_tables_and_plot(tmp_path):
    assert eval_variants.main(["--quick", "--only", "char", "--out-dir", str(tmp_path)]) == 0
    for name in ("char-lstm", "char-lnlstm"):
        run = json.loads((tmp_path / f"{name}-seed0.json").read_text())
        assert run["options"]["cell"] == name.split("-")[1]
        assert [p["step"] for p in run["points"]] == [3, 6]
        assert all(p["valid_loss"] > 0 and p["load_average_1min"] >= 0 for p in run["points"])
        assert run["final"] == run["points"][-1] and run["seconds"] > 0
    rows = json.loads((tmp_path / "variants.json").read_text())["comparisons"]["char"]["rows"]
    assert set(rows) == {"char-lstm seed 0", "char-lnlstm seed 0"}
    assert (tmp_path / "variants.png").stat().st_size > 0


def test_the_runs_of_a_comparison_differ_only_in_cell_and_dropout():
    for comparison in eval_variants.COMPARISONS.values():
        a, b = ({k: v for k, v in opts.items() if k not in ("cell", "dropout")} for opts in comparison["runs"].values())
        assert a == b
