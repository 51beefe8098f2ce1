"""classify --ensemble K: K networks of seeds --seed … --seed+K−1 whose probabilities are averaged,
trained one after another, saved, resumed and exported as one model."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

import rnnkit
from onnx_checks import assert_close, series_feed, session
from rnnkit.cli.main import main
from rnnkit.data.sources import load_classification
from rnnkit.tasks.classify import build_model, encode_inputs, networks_trained, predict, softmax
from rnnkit.training import model_dir as md

# a validation split (its best step is the ensemble's steps) and a tiny network
TINY = dict(steps=30, lr=0.02, hidden=8, batch_size=8, valid_every=10, cv_folds=0, quiet=True)


def write_series(path, n=60, seed=0):
    """Univariate series of 5 to 14 steps: class "up" rises, "down" falls, "flat" stays."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        label = str(rng.choice(["up", "down", "flat"]))
        slope = {"up": 1.0, "down": -1.0, "flat": 0.0}[label] * rng.uniform(0.2, 1)
        T = int(rng.integers(5, 15))
        series = slope * np.arange(T) / T + 0.3 * rng.standard_normal(T)
        lines.append(",".join([label, *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(*args):
    return [sys.executable, "-m", "rnnkit.cli.main", *map(str, args)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("data") / "series.csv")


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory, data):
    return rnnkit.train("classify", tmp_path_factory.mktemp("models") / "ensemble", data=str(data), ensemble=3, **TINY)


def member_probabilities(trained, items) -> list[np.ndarray]:
    """Each network's probabilities, its weights read from the directory on their own: the first
    from model.safetensors, network k from members.safetensors' ``member{k}.`` names."""
    inputs = encode_inputs(trained.encoding, trained.opts, items, "test")
    stored = [md.load_model_weights(trained.dir)]
    others = md.load_weights(trained.dir / "members.safetensors")
    stored += [{name.split(".", 1)[1]: v for name, v in others.items() if name.startswith(f"member{k}.")} for k in (1, 2)]
    result = []
    for weights in stored:
        network = build_model(trained.opts, trained.encoding, seed=123)
        network.load_state_dict(weights)
        result.append(softmax(predict(network, inputs, 8)))
    return result


def test_an_ensemble_averages_the_probabilities_of_its_networks(ensemble, data):
    assert len(ensemble.members) == 3
    best = ensemble.config["metrics"]["step"]
    assert ensemble.config["ensemble"]["steps"] == best and ensemble.config["ensemble"]["trained"] == 3
    assert sorted(md.load_weights(ensemble.dir / "members.safetensors")) == sorted(
        f"member{k}.{name}" for k in (1, 2) for name in md.load_model_weights(ensemble.dir))
    items = load_classification(str(data)).items[:12]
    each = member_probabilities(ensemble, items)
    assert min(np.abs(each[0] - each[k]).max() for k in (1, 2)) > 1e-3  # three different networks
    got = np.array([[r["probabilities"][label] for label in ensemble.labels] for r in ensemble.classify(items)])
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-12)


def test_the_networks_after_the_first_train_for_its_best_step_with_the_next_seeds(ensemble):
    """Each network's run is a model directory of its own while it trains: once they are all in
    members.safetensors, it is gone, and the metrics log is the first network's."""
    assert not (ensemble.dir / "member-run").exists()
    assert json.loads((ensemble.dir / "config.json").read_text())["status"] == "finished"
    assert all(r["step"] <= TINY["steps"] for r in md.read_metrics(ensemble.dir))


def test_evaluate_classify_and_info_use_every_network(ensemble, data, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(ensemble.dir)]) == 0
    printed = capsys.readouterr().out
    assert "valid_accuracy" in printed and "test_accuracy" not in printed
    metrics = ensemble.evaluate()
    valid = ensemble.config["ensemble"]["metrics"]  # the ensemble's, recorded when its last network was trained
    assert metrics["valid_accuracy"] == pytest.approx(valid["accuracy"]) and metrics["valid_loss"] == pytest.approx(valid["loss"])
    assert main(["classify", str(ensemble.dir), "--data", str(data), "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 60
    labels = [r["label"] for r in ensemble.classify(load_classification(str(data)).items)]
    assert [line.split()[0] for line in lines] == labels
    assert main(["info", str(ensemble.dir)]) == 0
    info = capsys.readouterr().out
    assert f"ensemble   3 networks (seeds 0…2), {ensemble.config['metrics']['step']} steps each" in info
    assert "of the first network" in info and ", of the ensemble" in info


def test_a_model_directory_from_before_ensembles_loads_as_one_network(tmp_path, data):
    single = rnnkit.train("classify", tmp_path / "m", data=str(data), **TINY)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["task_options"]["ensemble"]  # as an rnnkit without --ensemble wrote it
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    old = rnnkit.load(tmp_path / "m")
    assert old.opts.ensemble == 1 and len(old.members) == 1 and not (tmp_path / "m" / "members.safetensors").exists()
    items = load_classification(str(data)).items[:5]
    assert old.classify(items) == single.classify(items)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_an_ensemble_of_fewer_than_one_network_is_one_line_naming_it(tmp_path, data, capsys, value):
    assert main(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--ensemble", value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--ensemble: invalid value {value}" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


@pytest.mark.usefixtures("reference_backend")
def test_the_exported_ensemble_averages_its_networks_as_rnnkit_does(ensemble, data, tmp_path):
    model = onnx.load(str(ensemble.export(tmp_path / "ensemble.onnx")[0]))
    items = load_classification(str(data)).items[:16]
    got = session(model).run(None, series_feed(items))[0]
    expected = [[r["probabilities"][label] for label in ensemble.labels] for r in ensemble.classify(items)]
    assert_close(got, expected, "probabilities")
    assert np.abs(member_probabilities(ensemble, items)[0] - got).max() > 1e-3  # not the first network's alone


@pytest.mark.usefixtures("reference_backend")
def test_an_exported_text_ensemble_embeds_the_tokens_for_each_network(tmp_path):
    rng = np.random.default_rng(2)
    lines = [f"{label}\t{' '.join(rng.choice(['the', 'a', 'film'], 3))} {rng.choice(words)}"
             for label, words in [("pos", ["good", "great"]), ("neg", ["bad", "dull"])] for _ in range(30)]
    (tmp_path / "reviews.tsv").write_text("\n".join(lines) + "\n")
    trained = rnnkit.train("classify", tmp_path / "m", data=str(tmp_path / "reviews.tsv"), ensemble=2, embed=4, **TINY)
    texts = ["the film good", "a dull film", "great", "bad bad the"]
    ids = encode_inputs(trained.encoding, trained.opts, texts, "texts")
    x = np.zeros((len(ids), max(map(len, ids))), np.int64)
    for i, row in enumerate(ids):
        x[i, : len(row)] = row
    model = onnx.load(str(trained.export(tmp_path / "m.onnx")[0]))
    got = session(model).run(None, {"x": x, "lengths": np.array([len(r) for r in ids], np.int64)})[0]
    assert_close(got, [[r["probabilities"][label] for label in trained.labels] for r in trained.classify(texts)], "probabilities")


def test_a_regressor_ensemble_averages_values(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(50):
        slope = rng.uniform(-1, 1)
        rows.append(",".join([f"{slope:.4f}", *(f"{v:.4f}" for v in slope * np.arange(8) / 8 + 0.05 * rng.standard_normal(8))]))
    (tmp_path / "slopes.csv").write_text("\n".join(rows) + "\n")
    trained = rnnkit.train("classify", tmp_path / "m", data=str(tmp_path / "slopes.csv"), ensemble=2, **TINY)
    items = load_classification(str(tmp_path / "slopes.csv")).items[:6]
    values = [r["value"] for r in trained.classify(items)]
    alone = []
    for network in list(trained.members):
        trained.members = [network]
        alone.append([r["value"] for r in trained.classify(items)])
    np.testing.assert_allclose(values, np.mean(alone, axis=0), rtol=1e-6)
    assert np.abs(np.subtract(*alone)).max() > 1e-4


def test_a_signal_while_a_later_network_trains_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, data, capsys):
    """SIGTERM during the third network: the first two are kept (the resumed run does not train
    them again), the third resumes from its checkpoint, and every weight equals a run never stopped."""
    options = ["--data", data, "--ensemble", "3", "--cv-folds", "0", "--steps", "600", "--valid-every", "600",
               "--log-every", "5", "--hidden", "8", "--batch-size", "8", "--lr", "0.01", "--dropout", "0.2"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(cli("train", "classify", "--out", whole, "--quiet", *options), check=True, capture_output=True)
    proc = subprocess.Popen(cli("train", "classify", "--out", broken, "--quiet", *options),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = broken / "member-run"

    def third_network_under_way() -> bool:
        try:
            return json.loads((run / "config.json").read_text())["training"]["seed"] == 2 and len(md.read_metrics(run)) >= 3
        except (OSError, ValueError, md.ModelDirError):
            return False

    start = time.time()
    while not third_network_under_way():
        assert time.time() - start < 120 and proc.poll() is None, "the third network did not start"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "network 3 of the ensemble's 3" in err and f"`rnnkit train --resume {broken}`" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    config = json.loads((broken / "config.json").read_text())
    assert config["status"] == "interrupted" and config["ensemble"]["trained"] == 2
    assert len(rnnkit.load(broken).members) == 2  # loadable meanwhile: the networks trained so far
    stopped = json.loads((run / "checkpoint" / "state.json").read_text())["state"]["step"]
    assert 15 <= stopped < 600
    capsys.readouterr()
    records = []
    rnnkit.train("classify", broken, resume=True, callbacks=[records.append])
    err = capsys.readouterr().err
    assert "network 2 of 3" not in err and "network 3 of 3" in err
    assert min(r["step"] for r in records) > stopped  # the third network went on from its checkpoint
    for name in ("model.safetensors", "members.safetensors"):
        a, b = md.load_weights(whole / name), md.load_weights(broken / name)
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), name
    assert json.loads((broken / "config.json").read_text())["status"] == "finished"


def test_the_networks_counted_need_an_ensemble_record_for_the_step_kept():
    """config.json counts an ensemble's networks only for the step the first one kept; a config without
    the record (or without metrics: a damaged file) counts the first network alone, never a KeyError."""
    assert networks_trained({"ensemble": {"steps": 20, "trained": 3}, "metrics": {"step": 20}}) == 3
    assert networks_trained({"ensemble": {"steps": 20, "trained": 3}, "metrics": {"step": 30}}) == 1
    assert networks_trained({"metrics": {"step": 20}}) == 1
    assert networks_trained({}) == 1
