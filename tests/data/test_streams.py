import json

import numpy as np
import pytest

from rnnkit.data import ConditionedStreams, DataError, StreamBatches, allocate_streams


def test_streams_are_contiguous_time_major_columns():
    s = StreamBatches(np.arange(12), batch_size=3, seq_len=2)
    assert s.data.tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
    assert s.stream_length == 4 and len(s) == 2  # 3 (input, target) pairs per stream, windows of 2 → 2
    assert s.tokens_per_epoch == 9


def test_windows_shift_targets_by_one_and_the_last_may_be_shorter():
    s = StreamBatches(np.arange(12), batch_size=3, seq_len=2)
    first, last = list(s)
    assert first.x.tolist() == [[0, 4, 8], [1, 5, 9]] and first.y.tolist() == [[1, 5, 9], [2, 6, 10]]
    assert last.x.tolist() == [[2, 6, 10]] and last.y.tolist() == [[3, 7, 11]]
    assert first.x.dtype == np.int64 and first.condition is None


def test_every_target_follows_its_input_in_the_original_text():
    ids = np.random.default_rng(0).integers(0, 50, size=1003)
    s = StreamBatches(ids, batch_size=4, seq_len=7)
    n = s.stream_length
    seen = 0
    for b in s:
        for col in range(4):
            start = col * n + b.index * 7  # where this window's column starts in ids
            assert b.x[:, col].tolist() == ids[start : start + len(b.x)].tolist()
            assert b.y[:, col].tolist() == ids[start + 1 : start + 1 + len(b.y)].tolist()
        seen += b.y.size
    assert seen == s.tokens_per_epoch == (n - 1) * 4


def test_reset_marks_the_first_window_of_each_epoch():
    s = StreamBatches(np.arange(40), batch_size=2, seq_len=4)
    assert s.reset_state
    flags = [(b.reset, b.epoch, b.index) for b in (s.next() for _ in range(2 * len(s) + 1))]
    assert [f[0] for f in flags] == [True, False, False, False, False, True, False, False, False, False, True]
    assert flags[5][1:] == (1, 0)
    assert s.position == 1 and s.epoch == 2 and not s.reset_state


def test_iterating_gives_the_rest_of_the_epoch_then_the_next():
    s = StreamBatches(np.arange(40), batch_size=2, seq_len=4)
    s.next()
    assert [b.index for b in s] == [1, 2, 3, 4]
    assert s.epoch == 1 and s.position == 0
    assert len(list(s)) == len(s)


def test_resume_continues_at_exactly_the_same_window():
    ids = np.random.default_rng(1).integers(0, 30, size=500)
    a = StreamBatches(ids, batch_size=5, seq_len=8)
    for _ in range(17):
        a.next()
    state = json.loads(json.dumps(a.state_dict()))
    b = StreamBatches(ids, batch_size=5, seq_len=8)
    b.load_state_dict(state)
    for _ in range(len(a) + 3):
        x, y = a.next(), b.next()
        assert np.array_equal(x.x, y.x) and np.array_equal(x.y, y.y) and (x.epoch, x.index) == (y.epoch, y.index)


def test_resume_with_other_data_or_batching_is_an_error():
    ids = np.arange(500) % 7
    state = StreamBatches(ids, batch_size=5, seq_len=8).state_dict()
    with pytest.raises(DataError, match=r"different data or batching \(seq_len 8 \(now 9\)\)"):
        StreamBatches(ids, batch_size=5, seq_len=9).load_state_dict(state)
    other = ids.copy()
    other[3] = 6
    with pytest.raises(DataError, match=r"fingerprint"):
        StreamBatches(other, batch_size=5, seq_len=8).load_state_dict(state)
    with pytest.raises(DataError, match="incomplete"):
        StreamBatches(ids, batch_size=5, seq_len=8).load_state_dict({"position": 1})


def test_too_short_text_says_how_many_tokens_are_needed():
    with pytest.raises(DataError, match=r"validation text has 50 tokens, too few for batch_size 4 × seq_len 16: it needs at least 68"):
        StreamBatches(np.arange(50), batch_size=4, seq_len=16, name="validation text")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, r"batch_size: expected an integer >= 1, got 0"),
        ({"seq_len": 2.5}, r"seq_len: expected an integer >= 1, got 2.5"),
        ({"ids": np.ones((3, 4), dtype=int)}, r"ids: expected a 1-D array of token ids"),
        ({"ids": np.array([1, -2, 3] * 10)}, r"ids: token ids must be >= 0"),
    ],
)
def test_bad_arguments_are_errors(kwargs, match):
    args = {"ids": np.arange(30), "batch_size": 2, "seq_len": 3, **kwargs}
    with pytest.raises(DataError, match=match):
        StreamBatches(**args)


# ---- conditioned streams -----------------------------------------------------------------------
def test_allocation_is_proportional_with_at_least_one_stream_each():
    k, n = allocate_streams([600, 300, 100], 10)
    assert k == [6, 3, 1] and n == 100
    k, n = allocate_streams([1000, 990, 10], 4)  # the tiny class still gets its stream
    assert k[2] == 1 and sum(k) == 4 and n == min(1000 // k[0], 990 // k[1])


def test_conditioned_streams_give_each_stream_its_class():
    classes = {"comedy": np.full(600, 1), "history": np.full(300, 2), "poems": np.full(100, 3)}
    s = ConditionedStreams(classes, batch_size=10, seq_len=9)
    assert s.labels == ["comedy", "history", "poems"]
    assert s.streams_per_class == {"comedy": 6, "history": 3, "poems": 1}
    b = s.next()
    assert b.condition.tolist() == [0] * 6 + [1] * 3 + [2]
    assert b.condition.shape == (10,) and b.reset
    # each stream holds only its own class's tokens
    assert np.array_equal(b.x, np.broadcast_to(b.condition + 1, b.x.shape))


def test_conditioned_streams_are_contiguous_within_a_class():
    classes = [np.arange(1000, 1400), np.arange(2000, 2200)]
    s = ConditionedStreams(classes, batch_size=3, seq_len=5)
    assert s.streams_per_class == {"0": 2, "1": 1}
    assert s.data[:, 0].tolist() == list(range(1000, 1200))
    assert s.data[:, 1].tolist() == list(range(1200, 1400))
    assert s.data[:, 2].tolist() == list(range(2000, 2200))
    assert s.repeated == {"0": 0, "1": 0} and s.unused == {"0": 0, "1": 0}


def test_a_class_smaller_than_one_stream_is_repeated_to_fill_it():
    s = ConditionedStreams({"big": np.arange(900), "tiny": np.array([7, 8, 9])}, batch_size=3, seq_len=4)
    assert s.streams_per_class == {"big": 2, "tiny": 1}
    assert s.data[:6, 2].tolist() == [7, 8, 9, 7, 8, 9]
    assert s.repeated["tiny"] == s.stream_length - 3


def test_conditioned_resume_continues_at_the_same_window():
    classes = {"a": np.arange(300) % 11, "b": np.arange(200) % 13}
    a = ConditionedStreams(classes, batch_size=4, seq_len=6)
    for _ in range(9):
        a.next()
    b = ConditionedStreams(classes, batch_size=4, seq_len=6)
    b.load_state_dict(a.state_dict())
    x, y = a.next(), b.next()
    assert np.array_equal(x.x, y.x) and np.array_equal(x.condition, y.condition) and x.index == y.index == 9


def test_conditioned_errors():
    with pytest.raises(DataError, match=r"batch_size 2 is smaller than the number of classes \(3\).*batch_size >= 3"):
        ConditionedStreams([np.arange(100)] * 3, batch_size=2, seq_len=4)
    with pytest.raises(DataError, match=r"classes \['b'\] have fewer than 2 tokens"):
        ConditionedStreams({"a": np.arange(100), "b": np.arange(1)}, batch_size=2, seq_len=4)
    with pytest.raises(DataError, match=r"too short for batch_size 4 × seq_len 40.*every stream needs 41 tokens.*a \(100 tokens for 3 streams\)"):
        ConditionedStreams({"a": np.arange(100), "b": np.arange(60)}, batch_size=4, seq_len=40)
