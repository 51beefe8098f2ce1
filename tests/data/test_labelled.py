import os

import numpy as np
import pytest

from rnnkit.data import labelled
from rnnkit.data import (
    DataError,
    check_tag_scheme,
    read_conll,
    read_labelled_text,
    read_series,
    read_series_csv,
    read_series_npz,
    read_ts,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- read_labelled_text ------------------------------------------------------------------------
def test_tsv_gives_texts_and_labels_skipping_the_header_and_blank_lines(tmp_path):
    path = write(tmp_path, "r.tsv", "label\ttext\npos\tGreat film!\n\n neg \t dull\tand long \n")
    assert read_labelled_text(path) == (["Great film!", "dull\tand long"], ["pos", "neg"])


def test_csv_splits_at_the_first_comma(tmp_path):
    path = write(tmp_path, "r.csv", "label,text\nneg,slow, long, dull\n")
    assert read_labelled_text(path) == (["slow, long, dull"], ["neg"])


def test_a_header_only_counts_on_the_first_line(tmp_path):
    path = write(tmp_path, "r.tsv", "pos\tfine\nlabel\ttext\n")
    assert read_labelled_text(path) == (["fine", "text"], ["pos", "label"])


@pytest.mark.parametrize("line, message", [
    ("pos Great film", r"r.tsv:3: no tab between label and text; write each example as label<TAB>text"),
    ("\tGreat film", r"r.tsv:3: empty label"),
    ("pos\t  ", r"r.tsv:3: empty text for label 'pos'"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "r.tsv", f"neg\tdull\n\n{line}\n")
    with pytest.raises(DataError, match=message):
        read_labelled_text(path)


def test_csv_without_a_comma_says_comma(tmp_path):
    with pytest.raises(DataError, match=r"r.csv:1: no comma between label and text; write each example as label,text"):
        read_labelled_text(write(tmp_path, "r.csv", "pos great\n"))


def test_a_file_with_only_the_header_has_no_examples(tmp_path):
    with pytest.raises(DataError, match=r"r.tsv: has no examples"):
        read_labelled_text(write(tmp_path, "r.tsv", "label\ttext\n\n"))


def test_non_utf8_text_names_the_file(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_bytes("pos\tcafé\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"r.tsv: is not UTF-8 text"):
        read_labelled_text(path)


# ---- read_conll --------------------------------------------------------------------------------
CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC


Peter NNP B-NP B-PER
Blackburn NNP B-NP I-PER"""


def test_conll_reads_first_and_last_column_per_sentence(tmp_path):
    sentences = read_conll(write(tmp_path, "a.conll", CONLL))
    assert sentences == [(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]


def test_conll_one_column_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"a.conll:3: one column \('rejects'\)"):
        read_conll(write(tmp_path, "a.conll", "EU B-ORG\n\nrejects\n"))


@pytest.mark.parametrize("text, message", [("\n\n", "is empty"), ("-DOCSTART- O\n\n", "has no sentences")])
def test_conll_without_sentences_is_an_error(tmp_path, text, message):
    with pytest.raises(DataError, match=rf"a.conll: {message}"):
        read_conll(write(tmp_path, "a.conll", text))


def test_pos_tags_are_not_checked_unless_a_scheme_is_given(tmp_path):
    path = write(tmp_path, "pos.conll", "The DT\ndog NN\n")
    assert read_conll(path) == [(["The", "dog"], ["DT", "NN"])]
    with pytest.raises(DataError, match=r"pos.conll:1: tag 'DT' is not a BIO tag"):
        read_conll(path, scheme="auto")


@pytest.mark.parametrize("scheme, tags, line, message", [
    ("BIO", ["B-PER", "X-PER"], 2, "tag 'X-PER' is not a BIO tag"),
    ("BIO", ["B-PER", "E-PER"], 2, "tag 'E-PER' is not a BIO tag"),
    ("BIO", ["O", "I-PER"], 2, "tag 'I-PER' does not continue a PER entity"),
    ("IOB2", ["B-LOC", "I-PER"], 2, "tag 'I-PER' does not continue a PER entity"),
    ("BIO", ["PER"], 1, "tag 'PER' is not a BIO tag"),
    ("BIOES", ["B-PER", "O"], 2, "tag 'O' comes inside a PER entity; close it with E-PER"),
    ("BIOES", ["O", "E-PER"], 2, "tag 'E-PER' does not continue a PER entity"),
    ("IOBES", ["S-PER", "B-LOC"], 2, "the sentence ends inside a LOC entity"),
])
def test_tags_that_break_the_scheme_name_file_and_line(tmp_path, scheme, tags, line, message):
    path = write(tmp_path, "t.conll", "".join(f"w{k} {t}\n" for k, t in enumerate(tags)))
    with pytest.raises(DataError, match=rf"t.conll:{line}: {message}"):
        read_conll(path, scheme=scheme)


def test_check_tag_scheme_infers_bio_or_bioes():
    bio = [(["a", "b", "c"], ["B-PER", "I-PER", "O"]), (["d"], ["B-LOC"])]
    bioes = [(["a", "b", "c"], ["B-PER", "E-PER", "S-LOC"])]
    assert check_tag_scheme(bio) == "BIO" == check_tag_scheme(bio, "iob2")
    assert check_tag_scheme(bioes) == "BIOES" == check_tag_scheme(bioes, "IOBES")
    assert check_tag_scheme([(["x"], ["O"])]) == "BIO"


def test_check_tag_scheme_names_sentence_and_token():
    with pytest.raises(DataError, match=r"sentence 2, token 3: tag 'I-LOC' does not continue a LOC entity"):
        check_tag_scheme([(["a"], ["O"]), (["a", "b", "c"], ["B-PER", "I-PER", "I-LOC"])])
    with pytest.raises(DataError, match=r"tag 'E-PER' is not a BIO tag"):
        check_tag_scheme([(["a", "b"], ["B-PER", "E-PER"])], "BIO")


def test_an_unknown_scheme_is_an_error():
    with pytest.raises(DataError, match=r"scheme: expected one of BIO, IOB2, BIOES, IOBES \(or 'auto'\), got 'BILOU'"):
        check_tag_scheme([(["a"], ["O"])], "BILOU")


# ---- numeric series: CSV -----------------------------------------------------------------------
def test_series_csv_reads_variable_lengths_as_t_by_1_float32(tmp_path):
    series, labels = read_series_csv(write(tmp_path, "s.csv", "up,1,2,3\n\ndown, 3.5 ,-1e1,,\n"))
    assert labels == ["up", "down"]
    assert [s.shape for s in series] == [(3, 1), (2, 1)] and series[0].dtype == np.float32
    np.testing.assert_array_equal(series[1][:, 0], [3.5, -10.0])


@pytest.mark.parametrize("text, message", [
    ("a,1,x,3\n", r"s.csv:1, column 3: 'x' is not a number; the file has no header line"),
    ("a,1\nb,1,,2\n", r"s.csv:2, column 3: '' is not a number$"),
    ("a,1\nb,1,nan\n", r"s.csv:2, column 3: 'nan' is not a finite number"),
    ("a,1\n\nb\n", r"s.csv:3: the series of label 'b' is empty"),
    ("a,1\n,2\n", r"s.csv:2: empty label"),
    ("a,1,2\nb,3,1e300\n", r"s.csv:2, column 3: '1e300' is beyond the range of the 32-bit floats models compute in"),
])
def test_series_csv_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_series_csv(write(tmp_path, "s.csv", text))


def test_a_series_a_line_may_be_longer_than_a_text_line(tmp_path):
    row = "up," + ",".join(["0.5"] * 500_000)  # 2 MB: a series of 500,000 steps
    series, _ = read_series_csv(write(tmp_path, "s.csv", row + "\n"))
    assert series[0].shape == (500_000, 1)
    with pytest.raises(DataError, match=r"t.tsv:1: the line is 1.9 MB long, more than the 1.0 MB"):
        read_labelled_text(write(tmp_path, "t.tsv", row.replace(",", "\t", 1) + "\n"))


# ---- numeric series: npz -----------------------------------------------------------------------
def test_npz_padded_array_with_lengths(tmp_path):
    X = np.arange(24, dtype=np.float64).reshape(3, 4, 2)
    X[1, 3] = np.nan  # padding: never looked at
    np.savez(tmp_path / "s.npz", X=X, y=np.array(["a", "b", "a"]), lengths=np.array([4, 3, 1]))
    series, labels = read_series_npz(tmp_path / "s.npz")
    assert labels == ["a", "b", "a"] and [s.shape for s in series] == [(4, 2), (3, 2), (1, 2)]
    assert series[0].dtype == np.float32
    np.testing.assert_array_equal(series[2], X[2, :1])


def test_npz_without_lengths_keeps_every_step(tmp_path):
    np.savez(tmp_path / "s.npz", X=np.zeros((2, 5, 3)), y=np.array([0.5, 1.5]))
    series, labels = read_series(tmp_path / "s.npz")
    assert labels == [0.5, 1.5] and [s.shape for s in series] == [(5, 3), (5, 3)]


def test_npz_object_array_needs_allow_pickle(tmp_path):
    X = np.empty(2, dtype=object)
    X[0], X[1] = np.ones((3, 2)), np.zeros((5, 2))
    np.savez(tmp_path / "s.npz", X=X, y=np.array([1, 2]))
    with pytest.raises(DataError, match=r"s.npz: holds an object array.*allow_pickle=True"):
        read_series_npz(tmp_path / "s.npz")
    series, labels = read_series_npz(tmp_path / "s.npz", allow_pickle=True)
    assert labels == [1, 2] and [s.shape for s in series] == [(3, 2), (5, 2)]


@pytest.mark.parametrize("arrays, message", [
    (dict(X=np.zeros((2, 3, 1))), r"has no array y \(found X\)"),
    (dict(X=np.zeros((2, 3)), y=np.zeros(2)), r"X: expected shape \(N, T, C\), got \(2, 3\) \(for univariate.*X\[..., None\]"),
    (dict(X=np.zeros((2, 3, 1)), y=np.zeros(3)), r"X has 2 series but y has 3 labels"),
    (dict(X=np.zeros((2, 3, 1)), y=np.zeros(2), lengths=np.array([3, 0])), r"lengths\[1\] = 0; expected 1 to 3"),
    (dict(X=np.zeros((2, 3, 1)), y=np.zeros(2), lengths=np.array([3, 4])), r"lengths\[1\] = 4; expected 1 to 3"),
])
def test_npz_shape_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(DataError, match=message):
        read_series_npz(tmp_path / "s.npz")


def test_npz_nan_names_series_step_and_channel(tmp_path):
    X = np.zeros((2, 3, 2))
    X[1, 2, 1] = np.nan
    np.savez(tmp_path / "s.npz", X=X, y=np.zeros(2))
    with pytest.raises(DataError, match=r"s.npz: X\[1\] has NaN or an infinite value at step 2, channel 1"):
        read_series_npz(tmp_path / "s.npz")


def test_npz_values_beyond_float32_name_series_step_and_channel(tmp_path):
    X = np.zeros((2, 4, 2))
    X[1, 3, 0] = -1e300
    np.savez(tmp_path / "s.npz", X=X, y=np.zeros(2))
    with pytest.raises(DataError, match=r"s.npz: X\[1\] at step 3, channel 0: -1e\+300 is beyond the range of the 32-bit"):
        read_series_npz(tmp_path / "s.npz")


def test_npz_arrays_that_unpack_past_the_limit_are_refused_before_loading(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "s.npz", X=np.zeros((100, 100, 1)), y=np.zeros(100))  # 80 KB of zeros
    monkeypatch.setattr(labelled, "ARRAYS_LIMIT", 20_000)
    assert (tmp_path / "s.npz").stat().st_size < 20_000
    with pytest.raises(DataError, match=r"s.npz: its arrays unpack to 79.\d KB, more than the 19.5 KB"):
        read_series_npz(tmp_path / "s.npz")


def test_a_fifo_named_as_npz_is_refused(tmp_path):
    os.mkfifo(tmp_path / "s.npz")  # no writer: opening it to read would block for ever
    with pytest.raises(DataError, match=r"s.npz: is a FIFO"):
        read_series_npz(tmp_path / "s.npz")


def test_npz_empty_series_in_an_object_array(tmp_path):
    X = np.empty(2, dtype=object)
    X[0], X[1] = np.ones((3, 2)), np.zeros((0, 2))
    np.savez(tmp_path / "s.npz", X=X, y=np.array([1, 2]))
    with pytest.raises(DataError, match=r"X\[1\] is an empty series"):
        read_series_npz(tmp_path / "s.npz", allow_pickle=True)


def test_a_file_that_is_not_npz_is_never_unpickled(tmp_path):
    path = tmp_path / "s.npz"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(DataError, match=r"s.npz: is not a .npz archive"):
        read_series_npz(path, allow_pickle=True)


def test_read_series_refuses_an_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match=r"s.json: unknown series format '.json'; give a .csv, .npz or .ts file"):
        read_series(tmp_path / "s.json")


# ---- the .ts format ----------------------------------------------------------------------------
TS = """# a comment
@problemName Toy
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run
@data
1,2,3:4,5,6:walk

1.5,2.5,?,?:3.5,4.5,?,?:run
"""


def test_ts_reads_channels_and_drops_trailing_padding(tmp_path):
    series, labels = read_ts(write(tmp_path, "toy.ts", TS))
    assert labels == ["walk", "run"]
    assert [s.shape for s in series] == [(3, 2), (2, 2)] and series[0].dtype == np.float32
    np.testing.assert_array_equal(series[0], [[1, 4], [2, 5], [3, 6]])
    assert read_series(tmp_path / "toy.ts")[1] == labels


@pytest.mark.parametrize("case, message", [
    ("1,?,3:4,5,6:walk", r"toy.ts:12: missing value '\?' at channel 0, step 1; only trailing padding may be missing"),
    ("1,2,3:4,5:walk", r"toy.ts:12: channels of different lengths \[3, 2\]"),
    ("1,2,3:walk", r"toy.ts:12: 1 channels, but the first case has 2"),
    ("1,2,3:4,5,6:jump", r"toy.ts:12: label 'jump' is not one of @classLabel's \['run', 'walk'\]"),
    ("1,2,3:4,x,6:run", r"toy.ts:12, channel 1, step 1: 'x' is not a number"),
    ("1,2,3:4,NaN,6:run", r"toy.ts:12, channel 1, step 1: 'NaN' is not a finite number"),
])
def test_ts_bad_cases_name_file_and_line(tmp_path, case, message):
    with pytest.raises(DataError, match=message):
        read_ts(write(tmp_path, "toy.ts", TS + case + "\n"))


@pytest.mark.parametrize("old, new, message", [
    ("@timeStamps false", "@timeStamps true", r"toy.ts:3: time stamps are not supported"),
    ("@classLabel true walk run", "@classLabel false", r"toy.ts:7: the file has no class labels"),
    ("@data\n", "", r"toy.ts:8: expected a header line \(@…\) or @data before the data"),
])
def test_ts_header_errors(tmp_path, old, new, message):
    with pytest.raises(DataError, match=message):
        read_ts(write(tmp_path, "toy.ts", TS.replace(old, new)))


def test_ts_without_cases_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"toy.ts: has no cases"):
        read_ts(write(tmp_path, "toy.ts", TS.split("@data")[0] + "@data\n"))
