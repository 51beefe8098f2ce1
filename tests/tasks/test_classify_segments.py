"""`classify --segments range`: a shortened series keeps each segment's minimum and maximum."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data import DataError

SMALL = dict(hidden=8, batch_size=8, lr=0.02, valid_every=30, valid_fraction=0.25, cv_folds=0, max_length=8, quiet=True)


def write_hum(path, n=80, seed=0):
    """Zero-mean oscillations of 64 steps, one value a half-period: class "loud" swings by 1, "quiet"
    by 0.3. Averaged over segments of 8 steps every series is flat; only the envelope tells them apart."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        loud = bool(rng.integers(2))
        series = (1.0 if loud else 0.3) * np.tile([1.0, -1.0], 32) + 0.02 * rng.standard_normal(64)
        lines.append(",".join(["loud" if loud else "quiet", *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def hum(tmp_path):
    return write_hum(tmp_path / "hum.csv")


def test_the_envelope_is_learnt_with_range_segments_and_lost_with_means(tmp_path, hum):
    ranged = rnnkit.train("classify", tmp_path / "r", data=str(hum), steps=90, segments="range", **SMALL)
    averaged = rnnkit.train("classify", tmp_path / "m", data=str(hum), steps=90, segments="mean", **SMALL)
    assert ranged.encoding["channels"] == 3 and averaged.encoding["channels"] == 1
    assert (ranged.encoding["segments"], averaged.encoding["segments"]) == ("range", "mean")
    assert ranged.evaluate()["valid_accuracy"] >= 0.9
    assert averaged.evaluate()["valid_accuracy"] <= 0.8  # 20 validation series of noise: chance


def test_a_loaded_range_model_reads_raw_series_and_names_their_channels(tmp_path, hum, capsys):
    rnnkit.train("classify", tmp_path / "r", data=str(hum), steps=2, segments="range", **SMALL)
    loaded = rnnkit.load(tmp_path / "r")
    (result,) = loaded.classify([np.tile([1.0, -1.0], 32)[:, None]])  # one channel, as the data
    assert set(result["probabilities"]) == {"loud", "quiet"}
    assert "segment mean, minimum, maximum" in loaded.describe()
    with pytest.raises(DataError, match=r"shape \(64, 3\); the model reads series of 1 channel"):
        loaded.classify([np.zeros((64, 3))])


def test_by_default_range_when_a_training_series_is_longer_than_max_length(tmp_path, hum):
    long = rnnkit.train("classify", tmp_path / "l", data=str(hum), steps=2, **SMALL)  # --segments auto
    short = rnnkit.train("classify", tmp_path / "s", data=str(hum), steps=2, **{**SMALL, "max_length": 64})
    assert (long.encoding["segments"], long.encoding["channels"]) == ("range", 3)
    assert (short.encoding["segments"], short.encoding["channels"]) == ("mean", 1)  # 64 steps: nothing to shorten


def test_a_model_from_before_segments_reads_its_series_as_means(tmp_path, hum):
    rnnkit.train("classify", tmp_path / "m", data=str(hum), steps=2, segments="mean", **SMALL)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    del config["task_options"]["segments"], config["encoding"]["segments"]
    path.write_text(json.dumps(config))
    loaded = rnnkit.load(tmp_path / "m")
    assert loaded.opts.segments == "mean" and loaded.classify([np.zeros((64, 1))])[0]["label"] in ("loud", "quiet")


def test_an_unknown_segments_value_is_named_with_its_choices(tmp_path, hum, capsys):
    with pytest.raises(SystemExit) as exit_:  # a fixed set of values: argparse's choices
        main(["train", "classify", "--data", str(hum), "--out", str(tmp_path / "x"), "--segments", "minmax"])
    assert exit_.value.code == 2
    assert "argument --segments: invalid choice: 'minmax' (choose from 'auto', 'mean', 'range')" in capsys.readouterr().err
    with pytest.raises(ValueError, match="segments: invalid value 'minmax'"):  # the Python API checks the same
        rnnkit.train("classify", tmp_path / "y", data=str(hum), segments="minmax", steps=2)


def test_an_exported_range_model_summarises_raw_series_in_its_graph(tmp_path, hum):
    onnx, ort = pytest.importorskip("onnx"), pytest.importorskip("onnxruntime")
    trained = rnnkit.train("classify", tmp_path / "r", data=str(hum), steps=30, **SMALL)  # --segments auto: range
    model = onnx.load(str(trained.export(tmp_path / "m.onnx")[0]))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert "each segment's mean, minimum and maximum" in meta["inputs"]
    # raw series of three lengths (longer than --max-length, shorter, equal), NaN past each length
    series = [np.tile([1.0, -1.0], 32)[:, None], 0.3 * np.tile([1.0, -1.0], 40)[:, None],
              np.linspace(-1, 1, 5)[:, None], np.cos(np.arange(SMALL["max_length"]))[:, None]]
    x = np.full((len(series), max(map(len, series)), 1), np.nan, np.float32)
    for b, s in enumerate(series):
        x[b, : len(s)] = s
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x, "lengths": np.array([len(s) for s in series])})[0]
    expected = [[r["probabilities"][c] for c in trained.labels] for r in trained.classify(series)]
    np.testing.assert_allclose(got, expected, atol=1e-5)
