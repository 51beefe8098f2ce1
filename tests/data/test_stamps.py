"""The stamps reader on a small tree laid out as Debian's tuxpaint-stamps-default: captions from
each .txt's first line, every defect left out and counted, the seeded split by stamp."""

from collections import Counter

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.images import features_of
from rnnkit.data.stamps import read_stamps, split_stamps

Image = pytest.importorskip("PIL.Image")


def png(path, colour=(200, 30, 30, 255), size=(20, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", size, colour).save(path)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def write_tree(root):
    png(root / "animals/birds/owl.png")
    write(root / "animals/birds/owl.txt", "An owl.\nfr.utf8=Une chouette.\n")
    png(root / "animals/badger.png", (90, 90, 90, 255))
    write(root / "animals/badger.txt", "\ufeffA badger.  \n")  # a BOM and trailing spaces
    png(root / "animals/badger_mirror.png")  # a variant without its own caption
    write(root / "food/apple.svg", "<svg/>")
    write(root / "food/apple.txt", "An apple.\n")
    write(root / "food/gift.txt", "A gift.\n")  # no picture at all
    png(root / "food/blank.png")
    write(root / "food/blank.txt", "\n\nA caption on the wrong line.\n")
    png(root / "food/latin.png")
    write(root / "food/latin.txt", "Une pomme àpp.\n".encode("latin-1"))
    write(root / "town/broken.png", b"\x89PNG\r\n\x1a\n not really")
    write(root / "town/broken.txt", "A broken sign.\n")


def test_captions_are_first_lines_and_every_defect_is_counted(tmp_path):
    write_tree(tmp_path)
    stamps, left_out = read_stamps(tmp_path)
    assert [(s.name, s.category, s.caption) for s in stamps] == [
        ("animals/badger", "animals", "A badger."), ("animals/birds/owl", "animals", "An owl."),
        ("town/broken", "town", "A broken sign.")]
    assert stamps[1].image == tmp_path / "animals/birds/owl.png"
    assert left_out == Counter({"svg only": 1, "no image": 1, "no caption": 1, "unreadable caption": 1, "no caption file": 1})


def test_an_undecodable_image_is_skipped_with_its_error_not_a_crash(tmp_path):
    write_tree(tmp_path)
    stamps, _ = read_stamps(tmp_path)
    features, errors = features_of([s.image for s in stamps], ["colours"])
    assert [f is None for f in features] == [False, False, True]
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'town/broken.png'}: not a readable image")


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere is not a directory of stamps"):
        read_stamps(tmp_path / "nowhere")


def test_the_split_is_seeded_by_stamp_and_covers_every_stamp_once(tmp_path):
    for k in range(40):
        png(tmp_path / f"c{k % 3}/s{k:02d}.png")
        (tmp_path / f"c{k % 3}/s{k:02d}.txt").write_text(f"Stamp {k}.\n")
    stamps, _ = read_stamps(tmp_path)
    parts = split_stamps(stamps, seed=0, valid_fraction=0.1, test_fraction=0.2)
    assert {k: len(v) for k, v in parts.items()} == {"test": 8, "valid": 4, "train": 28}
    names = [s.name for part in parts.values() for s in part]
    assert sorted(names) == sorted(s.name for s in stamps)
    assert all(part == sorted(part, key=lambda s: s.name) for part in parts.values())
    shuffled = list(np.random.default_rng(1).permutation(stamps))
    assert split_stamps(shuffled, seed=0, valid_fraction=0.1, test_fraction=0.2) == parts  # the order read does not matter
    assert split_stamps(stamps, seed=1, valid_fraction=0.1, test_fraction=0.2)["test"] != parts["test"]
