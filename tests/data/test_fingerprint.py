"""Fingerprints: a path from a model's config.json is read only while it is the data the model learnt from."""

import os
from types import SimpleNamespace

import pytest

from rnnkit.data import DataError
from rnnkit.data import fingerprint as fp


def options(data="", test=""):
    return SimpleNamespace(data=data, test=test)


def test_the_same_file_passes_and_the_sizes_are_compared_before_reading(tmp_path, monkeypatch):
    data = tmp_path / "train.tsv"
    data.write_text("pos\tgood\n")
    recorded = fp.record_data(options(str(data)))
    assert recorded == {"data": {"size": 9, "sha256": fp.fingerprint(data)["sha256"]}}
    fp.check_data(options(str(data)), recorded)  # unchanged: no error

    def no_reading(*args):
        raise AssertionError("a file of another size was opened")

    monkeypatch.setattr(fp, "_sha256", no_reading)
    with pytest.raises(DataError, match=r"config.json names /etc/passwd as its data, but that is not the file this "
                                        r"model was trained on \(its size differs: .* bytes, trained on 9\); pass --data"):
        fp.check_data(options("/etc/passwd"), recorded)


def test_a_file_of_the_same_size_but_other_content_is_refused(tmp_path):
    data = tmp_path / "train.tsv"
    data.write_text("pos\tgood\n")
    recorded = fp.record_data(options(str(data)))
    data.write_text("neg\tgood\n")
    with pytest.raises(DataError, match=r"its content differs \(SHA-256\)"):
        fp.check_data(options(str(data)), recorded)


def test_a_directory_of_classes_is_fingerprinted_by_its_visible_files(tmp_path):
    root = tmp_path / "styles"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "one.txt").write_text("alpha")
    (root / "b" / "two.txt").write_text("beta")
    (root / "b" / ".hidden").write_text("ignored")
    recorded = fp.record_data(options(str(root)))
    assert [name for name, _, _ in recorded["data"]["files"]] == ["a/one.txt", "b/two.txt"]
    (root / "b" / ".hidden").write_text("changed, and still ignored")
    fp.check_data(options(str(root)), recorded)
    (root / "b" / "two.txt").write_text("BETA")
    with pytest.raises(DataError, match=r"styles as its data, .* \(the content of its files differs\)"):
        fp.check_data(options(str(root)), recorded)
    (root / "c").mkdir()
    (root / "c" / "three.txt").write_text("gamma")
    with pytest.raises(DataError, match=r"its files or their sizes differ"):
        fp.check_data(options(str(root)), recorded)


def test_without_a_fingerprint_a_path_is_not_followed(tmp_path):
    data = tmp_path / "train.tsv"
    data.write_text("pos\tgood\n")
    for recorded in (None, {}, {"data": {"size": "9", "sha256": 1}}):  # an older model, or an edited config
        with pytest.raises(DataError, match=r"records no fingerprint of the file it was trained on .* pass --data FILE"):
            fp.check_data(options(str(data)), recorded)


def test_the_test_file_is_checked_too_and_built_in_sets_are_not_paths(tmp_path):
    data, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    data.write_text("pos\tgood\n")
    test.write_text("neg\tbad\n")
    recorded = fp.record_data(options(str(data), str(test)))
    assert set(recorded) == {"data", "test"}
    test.write_text("neg\tawful\n")
    with pytest.raises(DataError, match=r"as its --test file, but that is not the file"):
        fp.check_data(options(str(data), str(test)), recorded)
    assert fp.record_data(options("polarity"), lambda spec: spec == "polarity") == {}
    fp.check_data(options("polarity"), None, lambda spec: spec == "polarity")  # nothing to check


def test_a_fifo_or_a_device_of_the_recorded_size_is_never_opened(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # size 0, like an empty file: the hash would open it, and open blocks without a writer
    for path in (fifo, "/dev/zero"):
        with pytest.raises(DataError, match=r"(is a FIFO|is a character device|its size differs)"):
            fp.check_data(options(str(path)), {"data": {"size": 0, "sha256": "0" * 64}})


def test_a_forged_fingerprint_of_a_large_directory_stops_looking_early(tmp_path, monkeypatch):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(50):
        (root / f"{i:02d}.txt").write_text("x")
    forged = {"data": {"files": [["00.txt", 1, "0" * 64]]}}  # say, config.json naming / with one file
    seen = []
    real = fp.visible_files

    def counting(path, most=None):
        found = real(path, most)
        seen.append(len(found))
        return found

    monkeypatch.setattr(fp, "visible_files", counting)
    with pytest.raises(DataError, match=r"its files or their sizes differ"):
        fp.check_data(options(str(root)), forged)
    assert seen == [2]  # one more than recorded: enough to refuse
