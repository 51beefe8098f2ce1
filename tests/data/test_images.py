"""Image files and their fixed features: decoding through Pillow, a corrupt file named, the crop
that makes features independent of margins, and each block's meaning."""

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.images import FEATURES, block_scales, feature_names, feature_size, image_features, read_image

Image = pytest.importorskip("PIL.Image")


def drawing(size=40, margin=(0, 0, 0, 0)):
    """A red disc with a black bar on a transparent background, with transparent margins (top, bottom, left, right)."""
    y, x = np.mgrid[:size, :size]
    rgba = np.zeros((size, size, 4), np.uint8)
    disc = (y - size / 2) ** 2 + (x - size / 2) ** 2 < (size / 2.2) ** 2
    rgba[disc] = (220, 20, 20, 255)
    rgba[size // 2 - 2 : size // 2 + 2, 4:-4] = (20, 20, 20, 255)
    t, b, l, r = margin
    return np.pad(rgba, ((t, b), (l, r), (0, 0)))


def test_an_image_reads_as_rgba_in_0_1_whatever_its_mode(tmp_path):
    Image.fromarray(drawing()).save(tmp_path / "a.png")
    Image.fromarray(drawing()[..., :3]).convert("P").save(tmp_path / "b.gif")
    Image.fromarray(drawing()[..., 0]).save(tmp_path / "c.png")  # grey
    a, b, c = (read_image(tmp_path / n) for n in ("a.png", "b.gif", "c.png"))
    assert a.shape == b.shape == c.shape == (40, 40, 4) and a.dtype == np.float32
    np.testing.assert_allclose(a, drawing() / 255.0, atol=1e-7)
    assert (b[..., 3] == 1).all() and (c[..., 0] == c[..., 1]).all()


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR broken", b"GIF89a"])
def test_a_corrupt_or_empty_file_is_a_one_line_error_naming_it(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"^{path}: not a readable image") as err:
        read_image(path)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="missing.png: not a readable image"):
        read_image(tmp_path / "missing.png")


def test_transparent_margins_change_no_feature():
    names = list(FEATURES)
    plain = image_features(drawing() / 255.0, names)
    padded = image_features(drawing(margin=(7, 0, 3, 11)) / 255.0, names)
    assert plain.shape == (feature_size(names),)
    np.testing.assert_allclose(padded, plain, atol=1e-6)


def test_each_block_says_what_it_should():
    rgba = drawing() / 255.0
    colours = image_features(rgba, ["colours"])
    assert colours.sum() == pytest.approx(1.0)
    top = np.argsort(colours)[-2:]  # red (3, 0, 0) and black (0, 0, 0) in 4 bins a channel
    assert sorted(top) == [0, (3 * 4 + 0) * 4 + 0]
    assert colours[top[-1]] > 0.7  # the disc is most of the visible pixels
    gradients = image_features(rgba, ["gradients"])
    assert np.linalg.norm(gradients) == pytest.approx(1.0, rel=1e-5)
    rotated = image_features(np.ascontiguousarray(np.rot90(rgba)), ["gradients"])
    assert not np.allclose(rotated, gradients, atol=1e-3)  # orientations, not just amounts
    shape = image_features(rgba, ["shape"])
    assert shape[-1] == pytest.approx(0.0)  # log(width / height) of the disc's box
    wide = image_features(drawing()[10:30] / 255.0, ["shape"])
    assert wide[-1] == pytest.approx(np.log(40 / 20), abs=0.1)


def test_feature_lists_are_checked_and_blocks_weigh_alike():
    assert feature_names(" pixels, shape ") == ["pixels", "shape"]
    for bad in ("", "pixels,pixels", "pixels,edges"):
        with pytest.raises(ValueError, match="--features: expected a comma-separated list"):
            feature_names(bad)
    scales = block_scales(["pixels", "shape"])
    assert scales.shape == (feature_size(["pixels", "shape"]),)
    assert (scales[:432] ** 2).sum() == pytest.approx(1.0) and (scales[432:] ** 2).sum() == pytest.approx(1.0)
