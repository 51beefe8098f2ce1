"""Task caption on pictures the tests draw: a coloured square or disc, captioned with its colour and
shape, in a tree laid out as Tux Paint's stamps. The command line trains, resumes, evaluates and
captions; defects are counted, a bad image is one line naming it."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.caption import CaptionData, CaptionOptions, nearest_captions

Image = pytest.importorskip("PIL.Image")

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 220)}
SHAPES = ("square", "disc")


def draw(colour: str, shape: str, rng) -> Image.Image:
    size = int(rng.integers(24, 40))
    y, x = np.mgrid[:size, :size]
    inside = np.ones((size, size), bool) if shape == "square" else (y - size / 2) ** 2 + (x - size / 2) ** 2 < (size / 2) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (*np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 20, 3), 0, 255), 255)
    return Image.fromarray(np.pad(rgba, ((int(rng.integers(0, 6)),) * 2, (int(rng.integers(0, 6)),) * 2, (0, 0))))


@pytest.fixture(scope="module")
def stamps(tmp_path_factory):
    """48 stamps in 3 categories, each a colour and a shape ("A red disc."), and one SVG-only stamp."""
    root = tmp_path_factory.mktemp("stamps")
    rng = np.random.default_rng(0)
    for k in range(48):
        colour, shape = list(COLOURS)[k % 3], SHAPES[(k // 3) % 2]
        folder = root / ["shapes/flat", "things", "symbols"][k % 3]
        folder.mkdir(parents=True, exist_ok=True)
        draw(colour, shape, rng).save(folder / f"s{k:02d}.png")
        (folder / f"s{k:02d}.txt").write_text(f"A {colour} {shape}.\nfr.utf8=Un truc.\n", encoding="utf-8")
    (root / "things/vector.svg").write_text("<svg/>")
    (root / "things/vector.txt").write_text("A vector.\n")
    return root


TINY = ["--embed", "16", "--hidden", "32", "--batch-size", "8", "--dropout", "0", "--lr", "0.02", "--valid-every", "40",
        "--valid-fraction", "0.15", "--test-fraction", "0.15", "--seed", "2", "--beam", "3"]


@pytest.fixture(scope="module")
def trained(stamps, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["--quiet", "train", "caption", "--data", str(stamps), "--out", str(out), "--steps", "120", *TINY]) == 0
    return out


def test_the_captioner_learns_colour_and_shape(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["training"]["monitor"] == "chrf"
    assert config["data"]["train_stamps"] + config["data"]["valid_stamps"] + config["data"]["test_stamps"] == 48
    assert "1 svg only" in config["data"]["source"]
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses[-1] < 0.2 * losses[0]
    metrics = rnnkit.load(trained).evaluate()
    assert metrics["valid_greedy_chrf"] > 80 and metrics["test_greedy_chrf"] > 80, metrics
    assert {"valid_beam3_bleu", "test_beam3_chrf", "test_nearest_bleu", "test_loss", "test_stamps"} <= set(metrics)


def test_caption_prints_a_caption_for_each_image(trained, stamps, capsys):
    files = [str(stamps / "shapes/flat/s00.png"), str(stamps / "things/s04.png")]
    assert main(["caption", str(trained), *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == files
    assert [line.split("\t")[0] for line in lines] == ["A red square.", "A green disc."]
    assert main(["caption", str(trained), files[0], "--beam", "1"]) == 0
    assert capsys.readouterr().out.startswith("A red square.\t")


def test_a_corrupt_image_or_bad_beam_is_one_line_naming_it(trained, stamps, tmp_path, capsys):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["caption", str(trained), str(stamps / "things/s01.png"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}: not a readable image" in err
    assert main(["caption", str(trained), str(stamps / "things/s01.png"), "--beam", "0"]) == 2
    assert "--beam: expected a width >= 1, got 0" in capsys.readouterr().err


def test_a_resumed_run_ends_where_an_unbroken_one_does(stamps, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    every = [*TINY, "--valid-every", "20", "--monitor", "loss", "--dropout", "0.2"]  # the last --flag wins; dropout draws too
    assert main(["--quiet", "train", "caption", "--data", str(stamps), "--out", str(whole), "--steps", "40", *every]) == 0
    assert main(["--quiet", "train", "caption", "--data", str(stamps), "--out", str(parts), "--steps", "20", *every]) == 0
    assert main(["--quiet", "train", "--resume", str(parts), "--steps", "40"]) == 0
    assert json.loads((parts / "config.json").read_text())["metrics"]["step"] == 40
    assert (whole / "model.safetensors").read_bytes() == (parts / "model.safetensors").read_bytes()


def test_unreadable_images_are_counted_and_splits_are_by_stamp(stamps, tmp_path):
    copy = tmp_path / "copy"
    for f in stamps.rglob("*"):
        if f.is_file():
            (copy / f.relative_to(stamps)).parent.mkdir(parents=True, exist_ok=True)
            (copy / f.relative_to(stamps)).write_bytes(f.read_bytes())
    (copy / "things/s01.png").write_bytes(b"not an image")
    data = CaptionData(CaptionOptions(data=str(copy), valid_fraction=0.15, test_fraction=0.15), seed=0)
    assert data.description["unreadable"] == 1 and "s01.png: not a readable image" in data.description["source"]
    names = [s.name for part in data.parts.values() for s, _ in part]
    assert len(names) == len(set(names)) == 47
    assert data.encoding["features"] == ["colours", "gradients", "shape"]  # the default blocks


def test_the_baseline_takes_the_caption_of_the_nearest_training_image():
    train = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert nearest_captions(train, ["a", "b", "c"], np.array([[9.0, 1.0], [1.0, 8.0], [0.5, 0.5]])) == ["b", "c", "a"]


def test_bad_options_are_named(stamps, tmp_path, capsys):
    for flags, message in ((["--features", "pixels,edges"], "--features: expected a comma-separated list"),
                           (["--valid-fraction", "0.5", "--test-fraction", "0.5"], "--valid-fraction, --test-fraction"),
                           (["--data", str(tmp_path / "none")], "is not tuxpaint-stamps nor a folder")):
        assert main(["train", "caption", "--data", str(stamps), "--out", str(tmp_path / "m"), *flags]) == 2
        assert message in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "m")]) == 2  # nothing was written
