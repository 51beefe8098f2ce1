"""Captioned images: Tux Paint's stamps (Debian's tuxpaint-stamps-default), or a folder laid out alike.

Each stamp is ``<category>/…/<name>.txt`` beside ``<name>.png`` (or ``.svg``); the first line of
the .txt is its English caption ("A badger."), the lines after it its translations. Debian's
2022.06.04 package holds 952 stamps in 16 categories: 785 with a PNG (about 130 px) and 165 with
an SVG only, which are left out (no renderer of SVG is installed beside Pillow).

    stamps, left_out = read_stamps(root)         # [Stamp], Counter of what was left out and why
    parts = split_stamps(stamps, seed=0)         # {"train", "valid", "test"}: seeded, by stamp

Left out, and counted: "svg only", "no image" (a caption without a picture), "no caption" (an
empty first line), "unreadable caption" (not UTF-8), "no caption file" (a PNG without a .txt,
such as the ``_mirror`` variants). Images that cannot be decoded are found, counted and skipped
when their features are computed (``images.features_of``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import catalog
from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


@dataclass(frozen=True)
class Stamp:
    name: str  # the path under the root, without its suffix: "animals/birds/adelaide-rosella"
    category: str  # the first folder: "animals"
    image: Path
    caption: str


def first_line(path: Path) -> str | None:
    """The caption of a stamp's .txt (its first line, stripped); None when the file is not UTF-8."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.lstrip("\ufeff").split("\n", 1)[0].strip()


def read_stamps(root) -> tuple[list[Stamp], Counter]:
    """Every captioned stamp with a raster image under ``root``, sorted by name, and a Counter of
    what was left out (see the module docstring). A stamp directly under ``root`` has the category "."."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data: {root} is not a directory of stamps (<category>/<name>.png with <name>.txt)")
    stamps, left_out = [], Counter()
    captions = sorted(root.rglob("*.txt"))
    for txt in captions:
        base = txt.with_suffix("")
        image = next((base.with_suffix(s) for s in IMAGE_SUFFIXES if base.with_suffix(s).is_file()), None)
        caption = first_line(txt)
        if image is None:
            left_out["svg only" if base.with_suffix(".svg").is_file() else "no image"] += 1
        elif caption is None:
            left_out["unreadable caption"] += 1
        elif not caption:
            left_out["no caption"] += 1
        else:
            name = base.relative_to(root).as_posix()
            stamps.append(Stamp(name, name.split("/")[0] if "/" in name else ".", image, caption))
    named = {txt.with_suffix("") for txt in captions}
    left_out["no caption file"] += sum(1 for s in IMAGE_SUFFIXES for p in root.rglob(f"*{s}") if p.with_suffix("") not in named)
    return stamps, +left_out


def tuxpaint_stamps() -> tuple[list[Stamp], Counter]:
    """``read_stamps`` of the installed stamps (``rnnkit data install tuxpaint-stamps``)."""
    return read_stamps(catalog.locate("tuxpaint-stamps"))


def split_stamps(stamps: list[Stamp], seed: int, valid_fraction: float = 0.1, test_fraction: float = 0.15) -> dict[str, list[Stamp]]:
    """{"train", "valid", "test"}: a seeded permutation of the stamps (by name, so the same
    stamps give the same parts), cut into the fractions; each part sorted by name."""
    ordered = sorted(stamps, key=lambda s: s.name)
    order = np.random.default_rng([seed, 52]).permutation(len(ordered))
    n_valid, n_test = round(valid_fraction * len(ordered)), round(test_fraction * len(ordered))
    cuts = {"test": order[:n_test], "valid": order[n_test : n_test + n_valid], "train": order[n_test + n_valid :]}
    return {part: [ordered[i] for i in sorted(idx)] for part, idx in cuts.items()}
