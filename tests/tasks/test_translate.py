"""Task `translate` through the command line and the Python API, on a tiny word-reordering language."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main

WORDS = {"dog": "perro", "cat": "gato", "house": "casa", "red": "rojo", "big": "grande", "small": "pequeño",
         "sees": "ve", "has": "tiene"}
TINY = ["--steps", "250", "--lr", "0.01", "--hidden", "24", "--embed", "12", "--valid-every", "125", "--quiet"]


def write_pairs(path, n=400, seed=0):
    """English → a Spanish-like language whose adjectives follow their noun."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        subj, obj = rng.choice(["dog", "cat"]), rng.choice(["house", "dog", "cat"])
        adj, verb = rng.choice(["red", "big", "small"]), rng.choice(["sees", "has"])
        lines.append(f"the {subj} {verb} a {adj} {obj}\tel {WORDS[subj]} {WORDS[verb]} un {WORDS[obj]} {WORDS[adj]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("translate")
    out = tmp / "m"
    assert main(["train", "translate", "--data", str(write_pairs(tmp / "pairs.tsv")), "--out", str(out), *TINY]) == 0
    return out


def test_translates_with_reordering_and_draws_the_attention(trained, capsys, tmp_path):
    assert main(["translate", str(trained), "the cat has a small house", "--heatmap", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "el gato tiene un casa pequeño"
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_reports_bleu_and_chrf_of_greedy_and_beam(trained):
    metrics = rnnkit.load(trained).evaluate()
    assert metrics["test_pairs"] == 20
    for key in ("greedy_bleu", "greedy_chrf", "beam5_bleu", "beam5_chrf"):
        assert 90 <= metrics[key] <= 100 + 1e-9


def test_python_api_returns_scores_and_attention(trained):
    model = rnnkit.load(trained)
    r = model.translate(["the dog sees a red cat"], beam=3)[0]
    assert r["text"] == "el perro ve un gato rojo" and r["finished"]
    assert r["attention"].shape == (6, 6) and np.allclose(r["attention"].sum(axis=1), 1)
    assert r["log_prob"] <= 0


def test_unknown_words_are_read_as_unk_and_named(trained, capsys):
    assert main(["translate", str(trained), "the zebra sees a red cat"]) == 0
    assert "unknown to the model, read as <unk>: zebra" in capsys.readouterr().err


def test_an_output_unk_becomes_the_source_word_it_attends_to(tmp_path, capsys):
    """Names seen once are outside both vocabularies (--min-count 2): the model learns to put <unk>
    where the name goes, and the output copies the source word there (Luong et al. 2015)."""
    rng = np.random.default_rng(1)
    data = tmp_path / "names.tsv"
    data.write_text("\n".join(f"the {s} sees n{i}x\tel {WORDS[s]} ve a n{i}x" for i, s in enumerate(rng.choice(["dog", "cat"], 400)))
                    + "\n", encoding="utf-8")
    out = tmp_path / "m"
    assert main(["train", "translate", "--data", str(data), "--out", str(out), "--min-count", "2", *TINY]) == 0
    capsys.readouterr()
    assert main(["translate", str(out), "the cat sees zorro"]) == 0
    assert capsys.readouterr().out.strip() == "el gato ve a zorro"
    assert main(["translate", str(out), "the cat sees zorro", "--keep-unk"]) == 0
    assert capsys.readouterr().out.strip() == "el gato ve a <unk>"
    metrics = rnnkit.load(out).evaluate()
    assert metrics["greedy_bleu"] > metrics["greedy_bleu_keep_unk"]


def run_error(args, capsys):
    capsys.readouterr()  # what earlier steps of the test printed (training progress) is not this error
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("the dog\tel perro\nthe cat el gato\n", encoding="utf-8")
    assert f"{bad}:2" in run_error(["train", "translate", "--data", str(bad), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert "is empty" in run_error(["translate", str(trained), "  "], capsys)
    assert "needs --unidirectional" in run_error(["train", "translate", "--data", str(bad), "--attention", "luong-dot",
                                                   "--out", str(tmp_path / "m2"), *TINY], capsys)
    assert "--beam: expected a width >= 1" in run_error(["translate", str(trained), "the dog", "--beam", "0"], capsys)


def test_options_may_come_before_the_texts(trained, capsys):
    assert main(["translate", str(trained), "--beam", "1", "the dog sees a red cat", "the cat has a big house"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_heatmap_into_a_missing_directory_is_refused(trained, tmp_path, capsys):
    target = tmp_path / "nowhere" / "deeper" / "a.png"
    err = run_error(["translate", str(trained), "the dog", "--heatmap", str(target)], capsys)
    assert err.startswith("rnnkit: error: --heatmap:") and "does not exist" in err
    assert not (tmp_path / "nowhere").exists()


def test_config_json_may_not_point_the_model_at_another_file(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.tsv", n=60)
    model = rnnkit.train("translate", tmp_path / "m", data=str(data), steps=2, hidden=4, embed=4, valid_every=2)
    capsys.readouterr()
    config = json.loads((model.dir / "config.json").read_text())
    config["task_options"]["data"] = "/etc/passwd"
    (model.dir / "config.json").write_text(json.dumps(config))
    err = run_error(["evaluate", str(model.dir)], capsys)
    assert "config.json names /etc/passwd as its data, but that is not the file this model was trained on" in err
