"""Images for captioning: files decoded by Pillow, and fixed features in NumPy.

No network learns the features: the captioner's training set is a few hundred images, too few
to train a convolutional encoder from scratch, and no pretrained weights may be downloaded. So
each image becomes a vector of four hand-made blocks (``FEATURES``), each of them a classic
descriptor:

    pixels     the RGB of the image shrunk to 12 × 12 (432)
    colours    a 4 × 4 × 4 histogram of the RGB of its visible pixels, weighted by opacity (64)
    gradients  HOG-like: the 32 × 32 grey image's gradient orientations (8 unsigned bins) summed
               by magnitude over 4 × 4 cells, the whole vector L2-normalised (128)
    shape      the opacity shrunk to 8 × 8 (the silhouette) and the width / height ratio (65)

Before any block, the image is cropped to the box of its visible pixels (opacity > 0.05) and
padded to a square, so a stamp's features do not depend on its margins or its size; colours are
composited over white, as a stamp is shown. Pillow shrinks (box filter: each output pixel the
mean of the pixels it covers); the descriptors are a few lines of NumPy each.

Measured with the nearest-neighbour caption on Tux Paint's validation stamps (chrF,
benchmarks/README.md): colours + gradients + shape 39.9, all four 32.0, pixels alone 26.0; the
caption task's default leaves the pixels out.

Shapes: an image (height, width, 4) float32 RGBA in [0, 1]; features (F,) float32, F the sum of
the chosen blocks' sizes (``feature_size``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError

VISIBLE = 0.05  # opacity above which a pixel belongs to the picture (antialiased edges are fainter)
PIXELS, SHAPE, GREY = 12, 8, 32  # the sides the blocks shrink the image to
COLOUR_BINS, ORIENTATIONS, CELLS = 4, 8, 4


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'rnnkit[images]'") from None
    return Image


def read_image(path) -> np.ndarray:
    """(height, width, 4) float32 RGBA in [0, 1] of a PNG, JPEG, GIF… file (a palette or grey
    image is converted); an unreadable file is a DataError naming it."""
    Image = _pillow()
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # decode now, inside the try: open() reads only the header
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if rgba.ndim != 3 or rgba.shape[0] == 0 or rgba.shape[1] == 0:
        raise DataError(f"{path}: not a readable image (size {rgba.shape[:2]})")
    return rgba


def square_crop(rgba: np.ndarray) -> tuple[np.ndarray, float]:
    """The visible box of an RGBA image, its colours over white, padded to a square (white,
    transparent) → ((side, side, 4), the box's width / height). A fully transparent image is kept whole."""
    visible = rgba[..., 3] > VISIBLE
    if visible.any():
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        rgba = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = rgba.shape[:2]
    alpha = rgba[..., 3:]
    over_white = np.concatenate([rgba[..., :3] * alpha + (1 - alpha), alpha], axis=2)
    side = max(h, w)
    square = np.zeros((side, side, 4), np.float32)
    square[..., :3] = 1.0
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = over_white
    return square, w / h


def _shrink(channels: np.ndarray, side: int) -> np.ndarray:
    """(n, n, C) in [0, 1] → (side, side, C), each output pixel the mean of those it covers (Pillow's box filter)."""
    Image = _pillow()
    out = [np.asarray(Image.fromarray(channels[..., c]).resize((side, side), Image.Resampling.BOX), np.float32)
           for c in range(channels.shape[2])]
    return np.stack(out, axis=2)


def pixels(square: np.ndarray, aspect: float) -> np.ndarray:
    return _shrink(square[..., :3], PIXELS).ravel()


def colours(square: np.ndarray, aspect: float) -> np.ndarray:
    rgb, alpha = square[..., :3].reshape(-1, 3), square[..., 3].ravel()
    bins = np.minimum((rgb * COLOUR_BINS).astype(np.int64), COLOUR_BINS - 1)
    index = (bins[:, 0] * COLOUR_BINS + bins[:, 1]) * COLOUR_BINS + bins[:, 2]
    hist = np.bincount(index, weights=alpha, minlength=COLOUR_BINS**3)
    return (hist / max(hist.sum(), 1e-8)).astype(np.float32)


def gradients(square: np.ndarray, aspect: float) -> np.ndarray:
    grey = _shrink(square[..., :3].mean(axis=2, keepdims=True), GREY)[..., 0].astype(np.float64)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: an edge's two sides alike
    bins = np.minimum((angle / np.pi * ORIENTATIONS).astype(np.int64), ORIENTATIONS - 1)
    cell = GREY // CELLS
    cells = (np.arange(GREY)[:, None] // cell) * CELLS + np.arange(GREY)[None, :] // cell
    hist = np.bincount((cells * ORIENTATIONS + bins).ravel(), weights=magnitude.ravel(), minlength=CELLS * CELLS * ORIENTATIONS)
    return (hist / max(np.linalg.norm(hist), 1e-8)).astype(np.float32)


def shape(square: np.ndarray, aspect: float) -> np.ndarray:
    return np.append(_shrink(square[..., 3:], SHAPE).ravel(), np.float32(np.log(aspect))).astype(np.float32)


#: the feature blocks: name → (function of the square crop and its aspect ratio, size)
FEATURES = {"pixels": (pixels, 3 * PIXELS * PIXELS), "colours": (colours, COLOUR_BINS**3),
            "gradients": (gradients, CELLS * CELLS * ORIENTATIONS), "shape": (shape, SHAPE * SHAPE + 1)}


def feature_names(spec: str, name: str = "--features") -> list[str]:
    """The blocks a comma-separated list names, each known and once; a bad one is a ValueError naming ``name``."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in FEATURES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"{name}: expected a comma-separated list of distinct blocks from {', '.join(FEATURES)}, got {spec!r}")
    return names


def feature_size(names: list[str]) -> int:
    return sum(FEATURES[n][1] for n in names)


def image_features(rgba: np.ndarray, names: list[str]) -> np.ndarray:
    """(F,) float32: the named blocks of one RGBA image, in order."""
    square, aspect = square_crop(rgba)
    return np.concatenate([FEATURES[n][0](square, aspect) for n in names]).astype(np.float32)


def features_of(paths, names: list[str]) -> tuple[list, list[str]]:
    """The features of each image file (None where it cannot be read) and the errors met, in order."""
    out, errors = [], []
    for path in paths:
        try:
            out.append(image_features(read_image(path), names))
        except DataError as exc:
            out.append(None)
            errors.append(str(exc))
    return out, errors


def block_scales(names: list[str]) -> np.ndarray:
    """(F,): 1/√size of each dimension's block, so that after standardising every block weighs
    alike in a distance (or a first layer), whatever its size."""
    return np.concatenate([np.full(FEATURES[n][1], 1.0 / np.sqrt(FEATURES[n][1]), np.float32) for n in names])
