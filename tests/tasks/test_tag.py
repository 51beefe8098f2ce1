"""Task `tag` through the command line and the Python API, on small CoNLL files the tests write."""

import json
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.tag import cut_long

TINY = ["--steps", "120", "--lr", "0.02", "--hidden", "12", "--embed", "6", "--batch-size", "8", "--valid-every", "40", "--quiet"]


def write_conll(path, n=200, seed=0, scheme="BIO"):
    """Sentences of fillers, two-token PER names and one-token LOC names."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        lines = []
        for _ in range(int(rng.integers(2, 7))):
            r = rng.random()
            if r < 0.25:
                first = str(rng.choice(["alice", "bob", "carol"]))
                lines += [f"{first} B-PER", "smith " + ("E-PER" if scheme == "BIOES" else "I-PER")]
            elif r < 0.4:
                lines.append(f"{rng.choice(['paris', 'rome', 'oslo'])} {'S-LOC' if scheme == 'BIOES' else 'B-LOC'}")
            else:
                lines.append(f"{rng.choice(['went', 'to', 'saw', 'in', 'the', 'met'])} O")
        sentences.append("\n".join(lines))
    path.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("crf", [False, True])
def test_tagger_trains_tags_and_groups_entities(tmp_path, capsys, crf):
    data = write_conll(tmp_path / "ner.conll")
    out = tmp_path / "m"
    assert main(["train", "tag", "--data", str(data), "--out", str(out), *(["--crf"] if crf else []), *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["encoding"]["scheme"] == "BIO" and config["encoding"]["tags"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert config["metrics"]["f1"] > 0.9
    capsys.readouterr()
    assert main(["tag", str(out), "bob smith met carol smith in oslo"]) == 0
    printed = capsys.readouterr().out
    assert "bob/B-PER smith/I-PER" in printed
    assert "entities: bob smith PER; carol smith PER; oslo LOC" in printed


def test_bioes_scheme_and_python_api(tmp_path):
    data = write_conll(tmp_path / "ner.conll", scheme="BIOES")
    model = rnnkit.train("tag", tmp_path / "m", data=str(data), crf=True, steps=120, lr=0.02, hidden=12, embed=6, valid_every=40)
    assert model.encoding["scheme"] == "BIOES"
    result = model.tag([["alice", "smith", "went", "to", "rome"]])[0]
    assert result["entities"] == [("PER", "alice smith", 0, 2), ("LOC", "rome", 4, 5)]
    metrics = model.evaluate()
    assert metrics["test_f1"] > 0.9 and metrics["test_sentences"] == 20


def test_non_entity_tags_are_scored_by_accuracy(tmp_path):
    pos = tmp_path / "pos.conll"
    pos.write_text("\n\n".join(["the DT\ncat NN\nsat VB", "a DT\ndog NN\nran VB"] * 30) + "\n", encoding="utf-8")
    model = rnnkit.train("tag", tmp_path / "m", data=str(pos), steps=60, lr=0.02, hidden=8, embed=4, valid_every=30)
    assert model.encoding["scheme"] is None
    metrics = model.evaluate()
    assert metrics["test_accuracy"] == 1.0 and "test_f1" not in metrics


def test_long_sentences_are_cut_after_a_sentence_end():
    tokens = list("今天下雨。明天晴天。后天")
    pieces = cut_long([(tokens, ["O"] * len(tokens))], 8)
    assert ["".join(t) for t, _ in pieces] == ["今天下雨。", "明天晴天。后天"]  # 7 tokens fit
    pieces = cut_long([(list("abcdefghij"), ["O"] * 10)], 4)
    assert ["".join(t) for t, _ in pieces] == ["abcd", "efgh", "ij"]
    tags = ["O", "O", "B-PER", "I-PER", "I-PER", "O", "O"]  # a cut at 4 would split the name
    pieces = cut_long([(list("abcdefg"), tags)], 4)
    assert [t for _, t in pieces] == [["O", "O"], ["B-PER", "I-PER", "I-PER", "O"], ["O"]]


# ---- bad input: one line, exit code 2 ------------------------------------------------------------


def run_error(args, capsys):
    capsys.readouterr()  # what earlier steps of the test printed (training progress) is not this error
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_malformed_conll_line_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("alice B-PER\nsmith\n", encoding="utf-8")
    assert f"{bad}:2" in run_error(["train", "tag", "--data", str(bad), "--out", str(tmp_path / "m"), *TINY], capsys)


def test_tags_that_break_the_scheme_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("alice B-PER\nsmith E-PER\n", encoding="utf-8")
    err = run_error(["train", "tag", "--data", str(bad), "--scheme", "BIO", "--out", str(tmp_path / "m"), *TINY], capsys)
    assert f"{bad}:2" in err


def test_an_unknown_scheme_and_an_empty_text_are_named(tmp_path, capsys):
    data = write_conll(tmp_path / "ner.conll", n=40)
    err = run_error(["train", "tag", "--data", str(data), "--scheme", "IOX", "--out", str(tmp_path / "m"), *TINY], capsys)
    assert "--scheme: invalid value 'IOX'" in err
    rnnkit.train("tag", tmp_path / "m", data=str(data), steps=2, hidden=4, embed=4, valid_every=2)
    assert "has no tokens" in run_error(["tag", str(tmp_path / "m"), "   "], capsys)


def test_a_file_with_one_enormous_line_is_refused_at_once(tmp_path, capsys):
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"word " * 10_000_000)  # 50 MB without a newline: over 150 s before
    model = rnnkit.train("tag", tmp_path / "m", data=str(write_conll(tmp_path / "ner.conll", n=40)), steps=2, hidden=4,
                         embed=4, valid_every=2)
    capsys.readouterr()
    start = time.perf_counter()
    for args in (["train", "tag", "--data", str(huge), "--out", str(tmp_path / "m2"), *TINY],
                 ["evaluate", str(model.dir), "--data", str(huge)], ["tag", str(model.dir), "--data", str(huge)]):
        assert f"{huge}:1: the line is 47.7 MB long, more than the 1.0 MB" in run_error(args, capsys)
    assert time.perf_counter() - start < 10


def test_config_json_may_not_point_the_model_at_another_file(tmp_path, capsys):
    data = write_conll(tmp_path / "ner.conll", n=40)
    model = rnnkit.train("tag", tmp_path / "m", data=str(data), steps=2, hidden=4, embed=4, valid_every=2)
    capsys.readouterr()
    config = json.loads((model.dir / "config.json").read_text())
    config["task_options"]["data"] = "/etc/passwd"  # its first line was printed back
    (model.dir / "config.json").write_text(json.dumps(config))
    err = run_error(["evaluate", str(model.dir)], capsys)
    assert "config.json names /etc/passwd as its data, but that is not the file this model was trained on" in err
    assert "root" not in err
    assert main(["evaluate", str(model.dir), "--data", str(data)]) == 0  # a file the user names is read


def test_options_may_come_before_the_texts(tmp_path, capsys):
    model = rnnkit.train("tag", tmp_path / "m", data=str(write_conll(tmp_path / "ner.conll", n=40)), steps=2, hidden=4,
                         embed=4, valid_every=2)
    capsys.readouterr()
    assert main(["tag", str(model.dir), "--quiet", "alice smith went to paris", "bob saw rome"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "/" in line]) == 2
